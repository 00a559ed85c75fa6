import Foundation

/// Measurements of one generate call, in the schema of edgeslm-runner's JSON and edgeslm.farm.metrics
/// (names, units: ms and tokens/s), so app numbers and farm numbers compare directly.
public struct GenerationStats: Codable, Sendable, Equatable {
    public var modelLoadMs: Double = 0
    public var ttftMs: Double = 0
    public var prefillMs: Double = 0
    public var prefillTokensPerS: Double = 0
    public var decodeMs: Double = 0
    public var decodeTokensPerS: Double = 0
    public var promptTokens: Int = 0
    public var generatedTokens: Int = 0
    public var stopReason: String = "none"   // max_tokens | eos | callback | context | stopped
    public var backend: String = ""

    enum CodingKeys: String, CodingKey {
        case modelLoadMs = "model_load_ms", ttftMs = "ttft_ms", prefillMs = "prefill_ms"
        case prefillTokensPerS = "prefill_tokens_per_s", decodeMs = "decode_ms"
        case decodeTokensPerS = "decode_tokens_per_s", promptTokens = "prompt_tokens"
        case generatedTokens = "generated_tokens", stopReason = "stop_reason", backend
    }
}

/// Sampling settings (same meaning as edgeslm_gen_config): temperature <= 0 is greedy.
public struct GenerationConfig: Sendable {
    public var temperature: Float = 0
    public var topP: Float = 1
    public var seed: UInt64 = 0
    public var stopAtEOS = true
    public init(temperature: Float = 0, topP: Float = 1, seed: UInt64 = 0, stopAtEOS: Bool = true) {
        self.temperature = temperature; self.topP = topP; self.seed = seed; self.stopAtEOS = stopAtEOS
    }
}

/// Greedy (first index on ties) or temperature + top-p sampling over float logits.
struct Sampler {
    private var state: UInt64

    init(seed: UInt64) { state = seed &+ 0x9E37_79B9_7F4A_7C15 }

    mutating func sample(_ logits: [Float], _ config: GenerationConfig) -> Int {
        if config.temperature <= 0 { return Sampler.argmax(logits) }
        let maxLogit = logits.max() ?? 0
        var probs = logits.map { expf(($0 - maxLogit) / config.temperature) }
        let total = probs.reduce(0, +)
        probs = probs.map { $0 / total }
        let order = probs.indices.sorted { probs[$0] > probs[$1] }
        var kept: [Int] = []
        var mass: Float = 0
        for i in order where mass < config.topP { kept.append(i); mass += probs[i] }
        var r = nextUniform() * mass
        for i in kept { r -= probs[i]; if r <= 0 { return i } }
        return kept.last ?? 0
    }

    static func argmax(_ x: [Float]) -> Int {
        var best = 0
        for i in x.indices where x[i] > x[best] { best = i }
        return best
    }

    private mutating func nextUniform() -> Float {   // splitmix64
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return Float((z ^ (z >> 31)) >> 40) / Float(1 << 24)
    }
}
