package dev.edgeslm

import java.io.Closeable
import java.io.File
import java.util.concurrent.Callable
import java.util.concurrent.ConcurrentLinkedQueue
import java.util.concurrent.ExecutorService
import java.util.concurrent.Executors
import java.util.concurrent.Future
import java.util.concurrent.TimeUnit
import java.util.concurrent.atomic.AtomicBoolean

/**
 * One loaded bundle (a folder with model.pte, tokenizer.json, manifest.json) and its worker thread.
 * Plain JVM code (no android.*): the host test compiles this same file with kotlinc.
 *
 * Threading: one model = one worker thread. generate() queues a job and returns a Future at once (never
 * blocks the caller); jobs run one after another on the worker, which is the only thread that touches the
 * native handle after open. stop() may be called from any thread: it ends the running job after its
 * current token (via the C callback's return value) and the queued ones before they start. close() stops,
 * waits for the worker, then frees the native model; later calls fail with EdgeSlmException.
 *
 * Steps of a job: check not stopped -> edgeslm_generate_text (or edgeslm_generate for ids) on the worker,
 * streaming onTokenId/onToken -> edgeslm_get_stats -> onStats, or onError on any failure.
 */
class EdgeSlmModel private constructor(private val handle: Long, val bundleDir: File) : Closeable {
    val vocabSize: Long
    val maxSeqLen: Long
    /** -1 when the model has no bos id. */
    val bosId: Long
    val eosIds: LongArray
    /** false: the bundle has no tokenizer.json the runtime can read; only the id API works. */
    val hasTokenizer: Boolean

    private val worker: ExecutorService
    @Volatile private var workerThread: Thread? = null
    private val closed = AtomicBoolean(false)
    private val jobs = ConcurrentLinkedQueue<Job>()   // queued + running jobs, for stop()

    init {
        val meta = NativeBridge.metadata(handle)       // read once: the getters never touch the handle
        vocabSize = meta[0]
        maxSeqLen = meta[1]
        bosId = meta[2]
        hasTokenizer = meta[3] != 0L
        eosIds = NativeBridge.eosIds(handle)
        worker = Executors.newSingleThreadExecutor { r ->
            Thread(r, "edgeslm-" + bundleDir.name).also { it.isDaemon = true; workerThread = it }
        }
    }

    /** The stats of the load and of the last finished generation (read on the worker, never concurrently). */
    @Volatile
    var lastStats: Stats = submitOnWorker(Callable { Stats.fromNative(NativeBridge.stats(handle)) }).get()
        private set

    /** Generate from text (the runtime's C++ tokenizer). Returns immediately. */
    fun generate(prompt: String, config: GenerationConfig, callback: GenerationCallback): Future<GenerationResult> =
        enqueue(callback) { sink ->
            if (!hasTokenizer) throw EdgeSlmException("bundle has no usable tokenizer.json: use generateIds", 1)
            NativeBridge.generateText(handle, prompt.toByteArray(Charsets.UTF_8), config.chat,
                config.maxNewTokens, config.temperature, config.topP, config.seed, config.stopAtEos, sink)
        }

    /** Generate from prompt token ids (a fresh sequence). config.chat is ignored: wrap the ids yourself. */
    fun generateIds(promptIds: LongArray, config: GenerationConfig, callback: GenerationCallback): Future<GenerationResult> {
        val ids = promptIds.copyOf()
        return enqueue(callback) { sink ->
            NativeBridge.generateIds(handle, ids, config.maxNewTokens, config.temperature, config.topP,
                config.seed, config.stopAtEos, sink)
        }
    }

    /** Text -> ids with the bundle's tokenizer (blocks until the worker is free). */
    fun encode(text: String, addSpecial: Boolean = true): LongArray =
        submitOnWorker(Callable { NativeBridge.encode(handle, text.toByteArray(Charsets.UTF_8), addSpecial) }).get()

    /** Ids -> text with the bundle's tokenizer (blocks until the worker is free). */
    fun decode(ids: LongArray, skipSpecial: Boolean = true): String =
        String(submitOnWorker(Callable { NativeBridge.decode(handle, ids, skipSpecial) }).get(), Charsets.UTF_8)

    /** Ends the running generation after its current token and drops the queued ones. Any thread. */
    fun stop() {
        for (job in jobs) job.stopped.set(true)
    }

    /** Stops, waits for the worker to finish, frees the native model. Idempotent; any thread. */
    override fun close() {
        if (!closed.compareAndSet(false, true)) return
        stop()
        worker.execute { NativeBridge.close(handle) }   // runs after the running job: last use of the handle
        worker.shutdown()
        if (Thread.currentThread() !== workerThread) {  // from a callback: the worker ends after it returns
            while (!worker.awaitTermination(10, TimeUnit.SECONDS)) { /* a long token: keep waiting */ }
        }
    }

    val isClosed: Boolean get() = closed.get()

    private class Job(val callback: GenerationCallback) {
        val stopped = AtomicBoolean(false)
    }

    private fun <T> submitOnWorker(task: Callable<T>): Future<T> {
        if (closed.get()) throw EdgeSlmException("model is closed: ${bundleDir.path}")
        return worker.submit(task)
    }

    private fun enqueue(callback: GenerationCallback, run: (TokenSink) -> Unit): Future<GenerationResult> {
        val job = Job(callback)
        jobs.add(job)
        try {
            return submitOnWorker(Callable { runJob(job, run) })
        } catch (e: Exception) {
            jobs.remove(job)
            throw e
        }
    }

    /** On the worker: one generation, its events, its result (or the error, rethrown into the Future). */
    private fun runJob(job: Job, run: (TokenSink) -> Unit): GenerationResult {
        val tokens = ArrayList<Long>()
        val text = StringBuilder()
        try {
            if (job.stopped.get()) {                     // stop() before the job started: nothing ran
                val stats = lastStats.copy(promptTokens = 0, generatedTokens = 0, stopReason = "stopped")
                job.callback.onStats(stats)
                return GenerationResult(LongArray(0), "", stats)
            }
            val sink = object : TokenSink {
                override fun onTokenId(id: Long): Boolean {
                    tokens.add(id)
                    job.callback.onTokenId(id)
                    return !job.stopped.get()
                }

                override fun onText(utf8: ByteArray): Boolean {
                    val piece = String(utf8, Charsets.UTF_8)
                    text.append(piece)
                    job.callback.onToken(piece)
                    return !job.stopped.get()
                }
            }
            run(sink)
            val stats = Stats.fromNative(NativeBridge.stats(handle))
            lastStats = stats
            job.callback.onStats(stats)
            return GenerationResult(tokens.toLongArray(), text.toString(), stats)
        } catch (e: Throwable) {
            val error = e as? EdgeSlmException ?: EdgeSlmException("generation failed: $e").also { it.initCause(e) }
            try { job.callback.onError(error) } catch (ignored: Throwable) { }
            throw error
        } finally {
            jobs.remove(job)
        }
    }

    companion object {
        /**
         * Opens a bundle folder on the filesystem (the runtime mmaps model.pte: a real file, not an asset
         * stream). threads <= 0 keeps the process's CPU pool. Blocks for the load: call it off the main thread
         * (EdgeSlm.loadAsync on Android). Throws EdgeSlmException with the runtime's message.
         */
        @JvmStatic
        @JvmOverloads
        fun open(bundleDir: String, threads: Int = 0): EdgeSlmModel {
            NativeBridge.ensureLoaded()
            val dir = File(bundleDir)
            val handle = NativeBridge.open(dir.path.toByteArray(Charsets.UTF_8), threads)
            return EdgeSlmModel(handle, dir)
        }

        /** Version of the native runtime (edgeslm_version). */
        @JvmStatic
        fun runtimeVersion(): String {
            NativeBridge.ensureLoaded()
            return NativeBridge.version()
        }
    }
}
