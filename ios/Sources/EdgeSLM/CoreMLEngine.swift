import CoreML
import Foundation

/// Core ML engine: the bundle's model.mlpackage (compiled on first load), KV cache held in an MLState.
/// Inputs tokens int32 [1, T] and input_pos int32 [T]; output logits float32 [1, V] (see compilers/coreml).
final class CoreMLEngine: Engine {
    let backend = "coreml"
    let loadMs: Double
    private let model: MLModel
    private var state: MLState

    init(package: URL, computeUnits: String?) throws {
        let start = Date()
        let config = MLModelConfiguration()
        switch computeUnits {
        case "CPU_ONLY": config.computeUnits = .cpuOnly
        case "CPU_AND_GPU": config.computeUnits = .cpuAndGPU
        case "CPU_AND_NE": config.computeUnits = .cpuAndNeuralEngine
        default: config.computeUnits = .all
        }
        let compiled = try MLModel.compileModel(at: package)   // .mlpackage -> .mlmodelc (cached by the OS)
        model = try MLModel(contentsOf: compiled, configuration: config)
        state = model.makeState()
        loadMs = Date().timeIntervalSince(start) * 1000
    }

    func reset() throws { state = model.makeState() }

    func forward(tokens: [Int32], start: Int) throws -> [Float] {
        let n = tokens.count
        let ids = try MLMultiArray(shape: [1, NSNumber(value: n)], dataType: .int32)
        let pos = try MLMultiArray(shape: [NSNumber(value: n)], dataType: .int32)
        for i in 0..<n {
            ids[[0, NSNumber(value: i)]] = NSNumber(value: tokens[i])
            pos[i] = NSNumber(value: Int32(start + i))
        }
        let input = try MLDictionaryFeatureProvider(dictionary: ["tokens": ids, "input_pos": pos])
        let output = try model.prediction(from: input, using: state)
        guard let logits = output.featureValue(for: "logits")?.multiArrayValue else {
            throw EdgeSLMError.runtime("Core ML model returned no 'logits' output")
        }
        let vocab = logits.shape.last!.intValue
        return logits.withUnsafeBufferPointer(ofType: Float.self) { Array($0.suffix(vocab)) }
    }
}
