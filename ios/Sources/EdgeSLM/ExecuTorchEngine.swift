#if EDGESLM_EXECUTORCH
import CEdgeSLM
import Foundation

/// ExecuTorch engine over edgeslm's C API (runtime/include/edgeslm.h): the same native runtime the farm
/// profiles, built for iOS with ExecuTorch's Core ML / XNNPACK backends linked in.
final class ExecuTorchEngine: Engine {
    let backend = "executorch"
    let loadMs: Double
    private var handle: OpaquePointer?

    init(bundle: URL) throws {
        var opts = edgeslm_options()
        edgeslm_options_init(&opts)
        var model: OpaquePointer?
        let status = edgeslm_open(bundle.path, &opts, &model)
        guard status == EDGESLM_OK, let model else {
            throw EdgeSLMError.runtime("edgeslm_open: \(String(cString: edgeslm_last_error(nil)))")
        }
        handle = model
        var stats = edgeslm_stats()
        stats.struct_size = UInt32(MemoryLayout<edgeslm_stats>.size)
        edgeslm_get_stats(model, &stats)
        loadMs = stats.model_load_ms
    }

    deinit { edgeslm_close(handle) }

    func reset() throws { try check(edgeslm_reset(handle)) }

    func forward(tokens: [Int32], start: Int) throws -> [Float] {
        let ids = tokens.map { Int64($0) }
        try ids.withUnsafeBufferPointer { try check(edgeslm_prefill(handle, $0.baseAddress, $0.count)) }
        var logits: UnsafePointer<Float>?
        var vocab = 0
        try check(edgeslm_get_logits(handle, &logits, &vocab))
        return Array(UnsafeBufferPointer(start: logits, count: vocab))
    }

    private func check(_ status: edgeslm_status) throws {
        if status != EDGESLM_OK { throw EdgeSLMError.runtime(String(cString: edgeslm_last_error(handle))) }
    }
}
#endif
