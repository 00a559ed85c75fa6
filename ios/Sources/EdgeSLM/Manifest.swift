import Foundation

/// The part of an edgeslm bundle's manifest.json the engines need (schema version 1).
public struct Manifest: Decodable, Sendable {
    public struct Model: Decodable, Sendable {
        public let architecture: String
        public let vocabSize: Int
        public let maxSeqLen: Int
        public let bosId: Int?
        public let eosIds: [Int]
    }
    public struct Target: Decodable, Sendable { public let name: String }
    public struct Quant: Decodable, Sendable { public let name: String }
    public struct FileEntry: Decodable, Sendable { public let sha256: String; public let bytes: Int }
    public struct Lowering: Decodable, Sendable {
        public struct Metadata: Decodable, Sendable { public let computeUnits: String? }
        public let metadata: Metadata
    }

    public let schemaVersion: Int
    public let backend: String
    public let artifact: String
    public let model: Model
    public let target: Target
    public let quant: Quant
    public let files: [String: FileEntry]
    public let lowering: Lowering?

    static func load(from bundle: URL) throws -> Manifest {
        let url = bundle.appendingPathComponent("manifest.json")
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw EdgeSLMError.missingResource(url, fix: "pass the folder written by `edgeslm export` / `edgeslm package`")
        }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let manifest: Manifest
        do {
            manifest = try decoder.decode(Manifest.self, from: Data(contentsOf: url))
        } catch {
            throw EdgeSLMError.badManifest(url, reason: "\(error)")
        }
        guard manifest.schemaVersion == 1 else {
            throw EdgeSLMError.badManifest(url, reason: "schema \(manifest.schemaVersion) is not 1; re-export the bundle")
        }
        for name in [manifest.artifact, "tokenizer.json"] {
            let file = bundle.appendingPathComponent(name)
            if !FileManager.default.fileExists(atPath: file.path) {
                throw EdgeSLMError.missingResource(file, fix: "re-run `edgeslm package` so the bundle is complete")
            }
        }
        return manifest
    }
}

public enum EdgeSLMError: Error, CustomStringConvertible, Equatable {
    case missingResource(URL, fix: String)
    case badManifest(URL, reason: String)
    case unsupportedBackend(String, artifact: String)
    case contextFull(needed: Int, maxSeqLen: Int)
    case runtime(String)

    public var description: String {
        switch self {
        case let .missingResource(url, fix): return "\(url.path): missing — fix: \(fix)"
        case let .badManifest(url, reason): return "\(url.path): bad manifest (\(reason))"
        case let .unsupportedBackend(backend, artifact):
            return "bundle backend '\(backend)' (\(artifact)) has no engine in this build — fix: export with "
                + "--backend coreml, or build with EDGESLM_EXECUTORCH=1 for .pte bundles"
        case let .contextFull(needed, maxSeqLen):
            return "prompt + generation needs \(needed) positions, the bundle holds \(maxSeqLen)"
        case let .runtime(message): return message
        }
    }
}
