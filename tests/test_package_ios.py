"""`edgeslm package BUNDLE --ios DIR` and the Swift package template: structure, the bundle as a resource
with verified hashes, clear refusals. Swift itself cannot be compiled here (no toolchain on Linux):
test_ios_swift.py runs `swift build` / `swift test` on macOS only."""
import json
import re
import shutil

import pytest

from edgeslm.bundle import load_bundle
from edgeslm.cli.main import main
from edgeslm.package import package_ios
from edgeslm.errors import EdgeSLMError


@pytest.fixture(scope="module")
def coreml_bundle(tiny_checkpoint, tmp_path_factory):
    """A real (tiny) Core ML bundle, exported without the accuracy step's cost mattering: max_seq_len 16."""
    from edgeslm import api
    out = tmp_path_factory.mktemp("pkg") / "bundle"
    return api.export(tiny_checkpoint("llama"), out=out, backend="coreml", target="ios-arm64", quant="int8",
                      max_seq_len=24, progress=False)


def test_package_ios_writes_swift_package_with_verified_bundle(coreml_bundle, tmp_path, capsys):
    out = tmp_path / "MyModel"
    assert main(["package", str(coreml_bundle.path), "--ios", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["backend"] == "coreml" and report["files_verified"] == len(coreml_bundle.manifest["files"])
    for rel in ("Package.swift", "README.md", "Sources/EdgeSLM/EdgeSLMModel.swift", "Sources/EdgeSLM/CoreMLEngine.swift",
                "Sources/EdgeSLM/ExecuTorchEngine.swift", "Sources/CEdgeSLM/module.modulemap",
                "Sources/CEdgeSLM/edgeslm.h", "Sources/EdgeSLMSample/EdgeSLMSampleApp.swift",
                "Tests/EdgeSLMTests/EdgeSLMTests.swift", "edgeslm-package.json"):
        assert (out / rel).is_file(), rel
    assert not (out / "__init__.py").exists()
    resource = out / "Sources/EdgeSLMBundle/Resources/model"
    copied = load_bundle(resource)                                  # every sha256 checked again
    assert copied.manifest == coreml_bundle.manifest and not (resource / "README.md").exists()
    assert (resource / "model.mlpackage/Manifest.json").is_file()
    assert 'header "edgeslm.h"' in (out / "Sources/CEdgeSLM/module.modulemap").read_text()
    # tampering after packaging is caught by the same verification
    blob = next(resource.rglob("weight.bin"))
    blob.write_bytes(blob.read_bytes()[:-1])
    with pytest.raises(EdgeSLMError, match="weight.bin: file does not match its sha256"):
        load_bundle(resource)
    # refusing to overwrite, then --force replaces
    assert main(["package", str(coreml_bundle.path), "--ios", str(out)]) == 2
    assert "output directory exists" in capsys.readouterr().err
    assert main(["package", str(coreml_bundle.path), "--ios", str(out), "--force", "--json"]) == 0
    load_bundle(resource)


def test_swift_package_template_is_consistent():
    from edgeslm.package.ios import _template
    root = _template()
    pkg = (root / "Package.swift").read_text()
    assert pkg.startswith("// swift-tools-version:5.9")
    assert ".iOS(.v18)" in pkg and ".macOS(.v15)" in pkg                   # MLState
    for target in ("EdgeSLM", "EdgeSLMBundle", "EdgeSLMSample", "EdgeSLMTests", "CEdgeSLM"):
        assert f'name: "{target}"' in pkg, target
        folder = root / ("Tests" if target.endswith("Tests") else "Sources") / target
        assert folder.is_dir(), folder
    assert 'resources: [.copy("Resources/model")]' in pkg
    swift = {p.name: p.read_text() for p in root.rglob("*.swift")}
    api = swift["EdgeSLMModel.swift"]
    assert "public init(bundle: URL) throws" in api and "public func stop()" in api
    assert re.search(r"public func generate\(prompt: String, maxTokens: Int = \d+, config: GenerationConfig", api)
    assert "onToken:" in api and "async throws -> String" in api
    assert "MLState" in swift["CoreMLEngine.swift"] and "makeState()" in swift["CoreMLEngine.swift"]
    # the Swift engines read the names the converter writes
    from edgeslm.compilers.coreml.convert import INPUTS, OUTPUT
    for name in (*INPUTS, OUTPUT):
        assert f'"{name}"' in swift["CoreMLEngine.swift"], name
    # every C function the ExecuTorch engine calls exists in the runtime header
    header = (root.parent / "runtime/include/edgeslm.h").read_text() if (root.parent / "runtime").is_dir() else \
        (_template().parent / "runtime/include/edgeslm.h").read_text()
    for fn in set(re.findall(r"\b(edgeslm_[a-z_]+)\(", swift["ExecuTorchEngine.swift"])):
        assert re.search(rf"\b{fn}\(", header) or f"typedef struct {fn} " in header, fn   # fn or struct init
    # stats keys are the runner's metric names
    from edgeslm.farm.metrics import FIELDS
    for key in ("model_load_ms", "ttft_ms", "prefill_tokens_per_s", "decode_tokens_per_s"):
        assert f'"{key}"' in swift["Stats.swift"] and key in FIELDS
    # balanced braces: a cheap guard against a truncated edit in code no compiler checks here
    for name, text in swift.items():
        code = re.sub(r'//.*|"(?:[^"\\]|\\.)*"', "", text)                 # without comments and strings
        assert code.count("{") == code.count("}") and code.count("(") == code.count(")"), name


def test_package_refuses_bad_input(coreml_bundle, tmp_path, capsys):
    with pytest.raises(EdgeSLMError, match="not a bundle"):
        package_ios(tmp_path, tmp_path / "out")
    other = tmp_path / "tvm-bundle"
    shutil.copytree(coreml_bundle.path, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["backend"] = "tvm"
    (other / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(EdgeSLMError, match="backend 'tvm' has no iOS engine.*--backend coreml"):
        package_ios(other, tmp_path / "out")
    manifest.update(backend="executorch", target={"name": "host", "triple": "native", "arch": "native"})
    (other / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(EdgeSLMError, match="exported for target 'host', not an Apple device"):
        package_ios(other, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert main(["package", str(coreml_bundle.path)]) == 2
    assert "no platform given" in capsys.readouterr().err


def test_ios_device_needs_macos():
    import platform

    from edgeslm.farm import DRIVERS, open_device
    assert "ios" in DRIVERS
    if platform.system() == "Darwin":
        pytest.skip("on macOS the driver talks to xcrun devicectl")
    with pytest.raises(EdgeSLMError, match="device 'ios' needs a macOS host with Xcode \\(xcrun devicectl\\)"):
        open_device("ios")


def test_run_on_a_coreml_bundle_here_is_one_line(coreml_bundle, capsys):
    assert main(["run", str(coreml_bundle.path), "-p", "hello"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "this host cannot run the bundle: Core ML runs only on macOS" in err
