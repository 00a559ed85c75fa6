// Host-JVM driver of the Android library's core (android/edgeslm-android/src/main/kotlin, compiled with the
// same sources by tests/test_android_jvm.py): one scenario per run, one JSON object on stdout.
//
//   generate BUNDLE MAX_NEW (--ids 1,2,3 | --text PROMPT [--chat])   tokens/text/stats of one generation
//   stop BUNDLE MAX_NEW --ids ...        stop() from the main thread after 3 tokens (callbacks are slow)
//   close BUNDLE MAX_NEW --ids ...       close() while generating; then generate on the closed model
//   missing PATH                         open a missing bundle: the exception's status and message
//   context BUNDLE N                     a prompt of N ids (longer than the context): onError + Future
//   two BUNDLE_A BUNDLE_B MAX_NEW --ids ...   two models generating at once on two caller threads
//   assets APK_ASSETS FILES_DIR ASSET MAX_NEW --ids ...   EdgeSlm.load(context, asset) twice through the
//                                        stand-in Context/AssetManager of tests/android_host/stubs
package dev.edgeslm.hosttest

import android.content.Context
import android.content.res.AssetManager
import dev.edgeslm.EdgeSlm
import dev.edgeslm.EdgeSlmException
import dev.edgeslm.EdgeSlmModel
import dev.edgeslm.GenerationCallback
import dev.edgeslm.GenerationConfig
import dev.edgeslm.GenerationResult
import dev.edgeslm.Stats
import java.io.File
import java.util.concurrent.CountDownLatch
import java.util.concurrent.ExecutionException
import java.util.concurrent.Future
import java.util.concurrent.TimeUnit
import java.util.concurrent.atomic.AtomicInteger

fun jsonString(s: String): String {
    val b = StringBuilder("\"")
    for (c in s) {
        when {
            c == '"' -> b.append("\\\"")
            c == '\\' -> b.append("\\\\")
            c == '\n' -> b.append("\\n")
            c.toInt() < 0x20 -> b.append(String.format("\\u%04x", c.toInt()))
            else -> b.append(c)
        }
    }
    return b.append('"').toString()
}

fun ids(a: LongArray): String = a.joinToString(", ", "[", "]")

/** Records every callback; optionally sleeps per token (a slow consumer, so stop/close land mid-run). */
class Recorder(private val sleepMs: Long = 0) : GenerationCallback {
    val ids = ArrayList<Long>()
    val pieces = ArrayList<String>()
    var stats: Stats? = null
    var error: EdgeSlmException? = null
    var threadName = ""
    val tokensSeen = CountDownLatch(3)
    val events = AtomicInteger()

    override fun onToken(text: String) { pieces.add(text); events.incrementAndGet() }
    override fun onTokenId(id: Long) {
        threadName = Thread.currentThread().name
        ids.add(id)
        tokensSeen.countDown()
        if (sleepMs > 0) Thread.sleep(sleepMs)
    }
    override fun onStats(stats: Stats) { this.stats = stats }
    override fun onError(error: EdgeSlmException) { this.error = error }
}

fun resultJson(r: GenerationResult, rec: Recorder): String =
    "{\"tokens\": ${ids(r.tokens)}, \"callback_ids\": ${ids(rec.ids.toLongArray())}, " +
        "\"text\": ${jsonString(r.text)}, \"pieces\": ${rec.pieces.joinToString(", ", "[", "]") { jsonString(it) }}, " +
        "\"stop_reason\": ${jsonString(r.stats.stopReason)}, \"stats\": ${r.stats.toJson()}, " +
        "\"callback_stats\": ${rec.stats != null}, \"worker\": ${jsonString(rec.threadName)}}"

fun parseIds(s: String): LongArray = s.split(",").filter { it.isNotBlank() }.map { it.trim().toLong() }.toLongArray()

fun start(model: EdgeSlmModel, args: List<String>, cfg: GenerationConfig, rec: Recorder): Future<GenerationResult> =
    when (args[0]) {
        "--ids" -> model.generateIds(parseIds(args[1]), cfg, rec)
        "--text" -> model.generate(args[1], cfg.copy(chat = args.contains("--chat")), rec)
        else -> throw IllegalArgumentException("expected --ids or --text, got ${args[0]}")
    }

fun errorJson(e: EdgeSlmException): String =
    "{\"status\": ${e.status}, \"status_name\": ${jsonString(e.statusName)}, \"message\": ${jsonString(e.message ?: "")}}"

fun main(args: Array<String>) {
    val a = args.toList()
    val out = when (a[0]) {
        "generate" -> {
            val model = EdgeSlmModel.open(a[1])
            val rec = Recorder()
            val callerThread = Thread.currentThread().name
            val r = start(model, a.drop(3), GenerationConfig(maxNewTokens = a[2].toInt()), rec).get()
            // the bundle tokenizer on its own: the prompt's ids and the generated text again
            val tokenizer = if (a[3] == "--text") ", \"encoded\": ${ids(model.encode(a[4]))}, " +
                "\"decoded\": ${jsonString(model.decode(r.tokens))}" else ""
            model.close()
            resultJson(r, rec).dropLast(1) + ", \"caller\": ${jsonString(callerThread)}, " +
                "\"runtime\": ${jsonString(EdgeSlmModel.runtimeVersion())}, \"vocab\": ${model.vocabSize}, " +
                "\"max_seq_len\": ${model.maxSeqLen}, \"eos_ids\": ${ids(model.eosIds)}$tokenizer}"
        }
        "stop" -> {
            val model = EdgeSlmModel.open(a[1])
            val max = a[2].toInt()
            val rec = Recorder(sleepMs = 20)
            val cfg = GenerationConfig(maxNewTokens = max, stopAtEos = false)
            val running = start(model, a.drop(3), cfg, rec)
            val queued = start(model, a.drop(3), cfg, Recorder())     // waits behind the first one
            check(rec.tokensSeen.await(30, TimeUnit.SECONDS)) { "no tokens within 30 s" }
            model.stop()                                               // from the main thread
            val r = running.get()
            val q = queued.get()
            // the model is still usable after a stop
            val again = start(model, a.drop(3), cfg.copy(maxNewTokens = 2), Recorder()).get()
            model.close()
            "{\"stopped\": ${resultJson(r, rec)}, \"queued_tokens\": ${q.tokens.size}, " +
                "\"queued_reason\": ${jsonString(q.stats.stopReason)}, \"after_stop_tokens\": ${again.tokens.size}}"
        }
        "close" -> {
            val model = EdgeSlmModel.open(a[1])
            val rec = Recorder(sleepMs = 20)
            val running = start(model, a.drop(3), GenerationConfig(maxNewTokens = a[2].toInt(), stopAtEos = false), rec)
            check(rec.tokensSeen.await(30, TimeUnit.SECONDS)) { "no tokens within 30 s" }
            model.close()                                              // stops and waits for the worker
            val doneWhenCloseReturned = running.isDone
            val r = running.get()
            val after = try {
                model.generateIds(longArrayOf(1, 2), GenerationConfig(), Recorder())
                "no exception"
            } catch (e: EdgeSlmException) {
                e.message ?: ""
            }
            model.close()                                              // idempotent
            "{\"done_when_close_returned\": $doneWhenCloseReturned, \"result\": ${resultJson(r, rec)}, " +
                "\"after_close\": ${jsonString(after)}}"
        }
        "missing" -> try {
            EdgeSlmModel.open(a[1])
            "{\"opened\": true}"
        } catch (e: EdgeSlmException) {
            errorJson(e)
        }
        "context" -> {
            val model = EdgeSlmModel.open(a[1])
            val rec = Recorder()
            val prompt = LongArray(a[2].toInt()) { 5L }
            val future = model.generateIds(prompt, GenerationConfig(maxNewTokens = 4), rec)
            val thrown = try {
                future.get()
                null
            } catch (e: ExecutionException) {
                e.cause as? EdgeSlmException
            }
            model.close()
            "{\"future\": ${if (thrown == null) "null" else errorJson(thrown)}, " +
                "\"on_error\": ${rec.error?.let { errorJson(it) } ?: "null"}, \"callback_stats\": ${rec.stats != null}}"
        }
        "two" -> {
            val models = listOf(EdgeSlmModel.open(a[1]), EdgeSlmModel.open(a[2]))
            val cfg = GenerationConfig(maxNewTokens = a[3].toInt())
            val results = arrayOfNulls<String>(2)
            val go = CountDownLatch(1)
            val threads = (0..1).map { i ->
                Thread({
                    go.await()
                    val rec = Recorder()
                    results[i] = resultJson(start(models[i], a.drop(4), cfg, rec).get(), rec)
                }, "caller-$i")
            }
            threads.forEach { it.start() }
            go.countDown()
            threads.forEach { it.join(120_000) }
            models.forEach { it.close() }
            "{\"a\": ${results[0]}, \"b\": ${results[1]}}"
        }
        "assets" -> {
            val context = object : Context() {
                override fun getAssets() = AssetManager(File(a[1]))
                override fun getFilesDir() = File(a[2])
                override fun getApplicationContext(): Context = this
            }
            val first = EdgeSlm.load(context, a[3])
            val copied = File(context.filesDir, a[3])
            val stamp = File(copied, "model.pte").lastModified()
            val rec = Recorder()
            val r = start(first, a.drop(5), GenerationConfig(maxNewTokens = a[4].toInt()), rec).get()
            first.close()
            Thread.sleep(20)
            val second = EdgeSlm.load(context, a[3])                   // same manifest: no second copy
            val recopied = File(copied, "model.pte").lastModified() != stamp
            second.close()
            val missing = try {
                EdgeSlm.load(context, "edgeslm/nope")
                "no exception"
            } catch (e: EdgeSlmException) {
                e.message ?: ""
            }
            "{\"dir\": ${jsonString(second.bundleDir.path)}, \"result\": ${resultJson(r, rec)}, " +
                "\"recopied\": $recopied, \"missing\": ${jsonString(missing)}}"
        }
        else -> throw IllegalArgumentException("unknown scenario ${a[0]}")
    }
    println(out)
}
