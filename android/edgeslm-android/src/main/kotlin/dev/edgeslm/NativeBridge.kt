package dev.edgeslm

/**
 * The private natives of src/main/cpp/edgeslm_jni.cpp (registered in JNI_OnLoad). Handles are
 * edgeslm_model pointers as Long; every failing call throws EdgeSlmException with edgeslm_last_error.
 * Strings cross as UTF-8 byte arrays (JNI's own strings are "modified UTF-8": wrong for emoji).
 * Not thread-safe per handle: EdgeSlmModel calls these for one handle from its worker thread only.
 */
internal object NativeBridge {
    /** Name of the JNI library: libedgeslm_jni.so (it links libedgeslm.so, found next to it). */
    const val LIBRARY = "edgeslm_jni"

    @Volatile
    private var loaded = false

    @JvmStatic
    @Synchronized
    fun ensureLoaded() {
        if (!loaded) {
            System.loadLibrary(LIBRARY)
            loaded = true
        }
    }

    @JvmStatic external fun version(): String
    @JvmStatic external fun open(bundleDir: ByteArray, threads: Int): Long
    @JvmStatic external fun close(handle: Long)
    /** [vocab_size, max_seq_len, bos_id (-1: none), has_tokenizer (0/1)] */
    @JvmStatic external fun metadata(handle: Long): LongArray
    @JvmStatic external fun eosIds(handle: Long): LongArray
    /** Stats as 6 doubles, 6 int64s, stop_reason, threads (see Stats.fromNative). */
    @JvmStatic external fun stats(handle: Long): DoubleArray
    @JvmStatic external fun reset(handle: Long)

    /** edgeslm_reset + edgeslm_generate over prompt ids; sink.onTokenId per token. */
    @JvmStatic external fun generateIds(handle: Long, prompt: LongArray, maxNewTokens: Int, temperature: Float,
                                        topP: Float, seed: Long, stopAtEos: Boolean, sink: TokenSink)

    /** edgeslm_generate_text: sink.onTokenId per token and sink.onText per complete UTF-8 piece. */
    @JvmStatic external fun generateText(handle: Long, prompt: ByteArray, chat: Boolean, maxNewTokens: Int,
                                         temperature: Float, topP: Float, seed: Long, stopAtEos: Boolean,
                                         sink: TokenSink)

    /** The bundle tokenizer (edgeslm_get_tokenizer): text -> ids, ids -> UTF-8 bytes. */
    @JvmStatic external fun encode(handle: Long, text: ByteArray, addSpecial: Boolean): LongArray
    @JvmStatic external fun decode(handle: Long, ids: LongArray, skipSpecial: Boolean): ByteArray
}

/** Called from native code during a generate; return false to stop (the C callback then returns 1). */
internal interface TokenSink {
    fun onTokenId(id: Long): Boolean
    fun onText(utf8: ByteArray): Boolean
}
