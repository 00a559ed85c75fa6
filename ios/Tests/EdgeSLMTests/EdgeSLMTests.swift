import EdgeSLMBundle
import XCTest
@testable import EdgeSLM

final class EdgeSLMTests: XCTestCase {
    func testGreedySamplerTakesFirstMaximum() {
        var sampler = Sampler(seed: 1)
        XCTAssertEqual(sampler.sample([0.1, 2.0, 2.0, -1], GenerationConfig()), 1)
    }

    func testTopPSamplingStaysInTheNucleus() {
        var sampler = Sampler(seed: 7)
        let config = GenerationConfig(temperature: 1, topP: 0.5, seed: 7)
        for _ in 0..<100 { XCTAssertEqual(sampler.sample([10, 0, 0, 0], config), 0) }
    }

    func testMissingManifestIsAClearError() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent(UUID().uuidString)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        XCTAssertThrowsError(try EdgeSLMModel(bundle: dir)) { error in
            XCTAssertTrue("\(error)".contains("manifest.json: missing"))
        }
    }

    func testPackagedBundleGeneratesGreedyTokens() async throws {
        // The bundle `edgeslm package --ios` put into EdgeSLMBundle (a Core ML bundle on iOS 18 / macOS 15).
        let model = try EdgeSLMModel(bundle: EdgeSLMBundle.url)
        let text = try await model.generate(prompt: "The capital of France is", maxTokens: 8)
        let stats = await model.lastStats
        XCTAssertEqual(stats.generatedTokens, 8)
        XCTAssertGreaterThan(stats.decodeTokensPerS, 0)
        XCTAssertFalse(text.isEmpty)
    }
}
