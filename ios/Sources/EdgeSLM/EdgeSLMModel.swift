import Foundation
import Tokenizers

/// A language model from an edgeslm bundle folder (manifest.json + model.mlpackage | model.pte +
/// tokenizer.json). Generation runs off the main actor; `stop()` ends it after the current token.
public actor EdgeSLMModel {
    public nonisolated let manifest: Manifest
    public private(set) var lastStats = GenerationStats()
    private let bundle: URL
    private let engine: Engine
    private var tokenizer: Tokenizer?
    private var stopRequested = false

    public init(bundle: URL) throws {
        let manifest = try Manifest.load(from: bundle)
        self.manifest = manifest
        self.bundle = bundle
        switch (manifest.backend, (manifest.artifact as NSString).pathExtension) {
        case ("coreml", "mlpackage"):
            engine = try CoreMLEngine(package: bundle.appendingPathComponent(manifest.artifact),
                                      computeUnits: manifest.lowering?.metadata.computeUnits)
        #if EDGESLM_EXECUTORCH
        case ("executorch", "pte"):
            engine = try ExecuTorchEngine(bundle: bundle)
        #endif
        default:
            throw EdgeSLMError.unsupportedBackend(manifest.backend, artifact: manifest.artifact)
        }
    }

    /// Ends a running `generate` after the token being computed.
    public func stop() { stopRequested = true }

    /// Tokenizes `prompt`, prefills it in one forward, then samples up to `maxTokens` tokens, calling
    /// `onToken` with each decoded text piece. Returns the generated text; stats in `lastStats`.
    @discardableResult
    public func generate(prompt: String, maxTokens: Int = 128, config: GenerationConfig = GenerationConfig(),
                         onToken: (@Sendable (String) -> Void)? = nil) async throws -> String {
        let tokenizer = try await loadTokenizer()
        let promptIds = tokenizer.encode(text: prompt).map { Int32($0) }
        let maxSeq = manifest.model.maxSeqLen
        guard !promptIds.isEmpty, promptIds.count < maxSeq else {
            throw EdgeSLMError.contextFull(needed: promptIds.count + 1, maxSeqLen: maxSeq)
        }
        stopRequested = false
        var stats = GenerationStats(modelLoadMs: engine.loadMs, promptTokens: promptIds.count,
                                    backend: engine.backend)
        var sampler = Sampler(seed: config.seed)
        let eos = Set(manifest.model.eosIds)
        let t0 = Date()
        try engine.reset()
        var logits = try engine.forward(tokens: promptIds, start: 0)
        stats.prefillMs = Date().timeIntervalSince(t0) * 1000
        stats.prefillTokensPerS = Double(promptIds.count) / max(stats.prefillMs / 1000, 1e-9)

        var generated: [Int] = []
        var position = promptIds.count
        var decodeStart = Date()
        stats.stopReason = "max_tokens"
        while generated.count < maxTokens {
            let token = sampler.sample(logits, config)
            generated.append(token)
            if generated.count == 1 {
                stats.ttftMs = Date().timeIntervalSince(t0) * 1000
                decodeStart = Date()
            }
            onToken?(tokenizer.decode(tokens: [token]))
            if config.stopAtEOS && eos.contains(token) { stats.stopReason = "eos"; break }
            if stopRequested || Task.isCancelled { stats.stopReason = "stopped"; break }
            if position >= maxSeq - 1 { stats.stopReason = "context"; break }
            if generated.count == maxTokens { break }
            logits = try engine.forward(tokens: [Int32(token)], start: position)
            position += 1
        }
        stats.generatedTokens = generated.count
        stats.decodeMs = Date().timeIntervalSince(decodeStart) * 1000
        stats.decodeTokensPerS = generated.count > 1 ? Double(generated.count - 1) / max(stats.decodeMs / 1000, 1e-9) : 0
        lastStats = stats
        return tokenizer.decode(tokens: generated.filter { !eos.contains($0) })
    }

    private func loadTokenizer() async throws -> Tokenizer {
        if let tokenizer { return tokenizer }
        let loaded = try await AutoTokenizer.from(modelFolder: bundle)   // tokenizer.json + tokenizer_config.json
        tokenizer = loaded
        return loaded
    }
}
