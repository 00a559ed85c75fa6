package dev.edgeslm

/**
 * Measurements of the last generate call (and of the load), mirroring edgeslm_stats field by field.
 * Times in ms, rates in tokens/s. [toJson] uses the runner's metric names (edgeslm.farm.metrics), so numbers
 * from an app compare directly with `edgeslm profile` rows.
 */
data class Stats(
    val modelLoadMs: Double,
    val ttftMs: Double,
    val prefillMs: Double,
    val prefillTokensPerS: Double,
    val decodeMs: Double,
    val decodeTokensPerS: Double,
    val promptTokens: Long,
    val generatedTokens: Long,
    val position: Long,
    val plannedArenaBytes: Long,
    val peakRssBytes: Long,
    val peakHeapBytes: Long,
    /** max_tokens | eos | stopped | context | none ("stopped": stop() or a callback ended it). */
    val stopReason: String,
    val threads: Int,
    /** Program bytes the kernel backs with huge pages (0: 4 KB pages, the usual case on Android). */
    val weightsHugePageBytes: Long = 0
) {
    fun toJson(): String {
        val fields = listOf(
            "model_load_ms" to modelLoadMs, "ttft_ms" to ttftMs, "prefill_ms" to prefillMs,
            "prefill_tokens_per_s" to prefillTokensPerS, "decode_ms" to decodeMs,
            "decode_tokens_per_s" to decodeTokensPerS, "prompt_tokens" to promptTokens,
            "generated_tokens" to generatedTokens, "position" to position,
            "planned_arena_bytes" to plannedArenaBytes, "peak_rss_bytes" to peakRssBytes,
            "peak_heap_bytes" to peakHeapBytes, "threads" to threads,
            "weights_huge_page_bytes" to weightsHugePageBytes)
        val body = fields.joinToString(", ") { (k, v) -> "\"$k\": $v" }
        return "{$body, \"stop_reason\": \"$stopReason\"}"
    }

    companion object {
        /** edgeslm_stop_reason values; 3 (the callback returned nonzero) is how stop() ends a generation. */
        private val STOP_REASONS = listOf("none", "max_tokens", "eos", "stopped", "context")

        /** From the flat array of NativeBridge.stats: 6 doubles, 6 int64s, stop_reason, threads,
         *  weights_huge_page_bytes. */
        internal fun fromNative(a: DoubleArray): Stats = Stats(
            a[0], a[1], a[2], a[3], a[4], a[5], a[6].toLong(), a[7].toLong(), a[8].toLong(), a[9].toLong(),
            a[10].toLong(), a[11].toLong(), STOP_REASONS.getOrElse(a[12].toInt()) { "unknown" }, a[13].toInt(),
            a[14].toLong())
    }
}
