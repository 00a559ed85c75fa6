import Foundation

/// One forward over the model: tokens at positions [start, start + tokens.count) -> last-position logits.
/// Engines keep the KV cache; `reset()` starts a new sequence.
protocol Engine: AnyObject {
    var backend: String { get }
    var loadMs: Double { get }
    func forward(tokens: [Int32], start: Int) throws -> [Float]
    func reset() throws
}
