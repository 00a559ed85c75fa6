package dev.edgeslm

/**
 * An error of the native runtime (or of the API's use): [message] is the runtime's one-line message
 * (edgeslm_last_error), [status] the edgeslm_status code of runtime/include/edgeslm.h (0 when the error
 * comes from the Kotlin side, e.g. a closed model).
 */
class EdgeSlmException(message: String, val status: Int = 0) : RuntimeException(message) {
    /** The edgeslm_status name, e.g. "EDGESLM_ERR_NOT_FOUND". */
    val statusName: String
        get() = STATUS_NAMES.getOrElse(status) { "status $status" }

    companion object {
        /** Index = edgeslm_status value (edgeslm.h). */
        @JvmField
        val STATUS_NAMES = listOf("EDGESLM_OK", "EDGESLM_ERR_INVALID_ARGUMENT", "EDGESLM_ERR_NOT_FOUND",
            "EDGESLM_ERR_LOAD", "EDGESLM_ERR_CONTEXT_FULL", "EDGESLM_ERR_RUNTIME", "EDGESLM_ERR_STATE",
            "EDGESLM_ERR_NO_MEMORY")
    }
}
