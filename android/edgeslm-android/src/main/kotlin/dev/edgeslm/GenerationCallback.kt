package dev.edgeslm

/**
 * Receives one generation's events, on the model's worker thread (never the caller's): post to your UI
 * thread yourself, or wrap the callback with EdgeSlm.onMainThread on Android.
 *
 * Order: onTokenId/onToken per new token, then exactly one of onStats (success, also after stop()) or
 * onError. An exception thrown from a callback stops the generation and is passed to onError.
 */
interface GenerationCallback {
    /** A new piece of text: complete UTF-8 characters (a character split across tokens is held back). */
    fun onToken(text: String)

    /** The id of each new token (before its text). */
    fun onTokenId(id: Long) {}

    fun onStats(stats: Stats) {}

    fun onError(error: EdgeSlmException) {}
}

/** What a generate call's Future completes with. */
class GenerationResult(val tokens: LongArray, val text: String, val stats: Stats)
