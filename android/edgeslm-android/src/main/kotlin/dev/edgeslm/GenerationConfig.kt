package dev.edgeslm

/**
 * Sampling settings, same meaning as edgeslm_gen_config (runtime/include/edgeslm.h).
 *
 * temperature <= 0 is greedy (argmax, first index on ties); topP in (0, 1]; the seed reseeds the model's
 * RNG at every generate call, so the same config gives the same tokens. chat wraps the prompt in the
 * bundle's chat prompt (as `edgeslm run --chat`). stopAtEos = false ignores eos (benchmarks).
 */
data class GenerationConfig @JvmOverloads constructor(
    val maxNewTokens: Int = 128,
    val temperature: Float = 0f,
    val topP: Float = 1f,
    val seed: Long = 0L,
    val chat: Boolean = false,
    val stopAtEos: Boolean = true
) {
    init {
        require(maxNewTokens >= 0) { "maxNewTokens must be >= 0, got $maxNewTokens" }
        require(topP > 0f && topP <= 1f) { "topP must be in (0, 1], got $topP" }
    }
}
