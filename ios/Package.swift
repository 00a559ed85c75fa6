// swift-tools-version:5.9
// EdgeSLM: run an edgeslm bundle on iOS 18+ / macOS 15+.
//   EdgeSLM        the library: EdgeSLMModel (Core ML engine; ExecuTorch engine when EDGESLM_EXECUTORCH=1)
//   EdgeSLMBundle  the bundle written by `edgeslm package --ios` as a resource (EdgeSLMBundle.url)
//   EdgeSLMSample  a small SwiftUI app over both (separate target)
// The ExecuTorch engine links libedgeslm (runtime/, built for iOS against ExecuTorch's frameworks):
// build with `EDGESLM_EXECUTORCH=1 swift build` once the library is on the linker path.
import PackageDescription

let withExecuTorch = Context.environment["EDGESLM_EXECUTORCH"] == "1"

var edgeSLMDependencies: [Target.Dependency] = [
    .product(name: "Transformers", package: "swift-transformers"),
]
var edgeSLMSettings: [SwiftSetting] = []
var extraTargets: [Target] = []
if withExecuTorch {
    edgeSLMDependencies.append("CEdgeSLM")
    edgeSLMSettings.append(.define("EDGESLM_EXECUTORCH"))
    extraTargets.append(.systemLibrary(name: "CEdgeSLM", path: "Sources/CEdgeSLM"))
}

let package = Package(
    name: "EdgeSLM",
    platforms: [.iOS(.v18), .macOS(.v15)],
    products: [
        .library(name: "EdgeSLM", targets: ["EdgeSLM"]),
        .library(name: "EdgeSLMBundle", targets: ["EdgeSLMBundle"]),
        .executable(name: "EdgeSLMSample", targets: ["EdgeSLMSample"]),
    ],
    dependencies: [
        .package(url: "https://github.com/huggingface/swift-transformers", from: "0.1.17"),
    ],
    targets: [
        .target(name: "EdgeSLM", dependencies: edgeSLMDependencies, swiftSettings: edgeSLMSettings),
        .target(name: "EdgeSLMBundle", resources: [.copy("Resources/model")]),
        .executableTarget(name: "EdgeSLMSample", dependencies: ["EdgeSLM", "EdgeSLMBundle"]),
        .testTarget(name: "EdgeSLMTests", dependencies: ["EdgeSLM", "EdgeSLMBundle"]),
    ] + extraTargets
)
