"""Build and test the Swift package on macOS (`swift build`, `swift test`) with a packaged tiny Core ML
bundle. No Swift toolchain exists on Linux: skipped there with the reason."""
import platform
import shutil
import subprocess

import pytest

pytestmark = pytest.mark.skipif(platform.system() != "Darwin" or shutil.which("swift") is None,
                                reason="Swift package build/test needs macOS with Xcode 16+ (no Swift toolchain "
                                       f"on {platform.system()}); see ios/README.md")


def test_swift_build_and_test(tiny_checkpoint, tmp_path):
    from edgeslm import api
    from edgeslm.package import package_ios
    bundle = api.export(tiny_checkpoint("llama"), out=tmp_path / "b", backend="coreml", target="macos-arm64",
                        quant="fp16", max_seq_len=32, progress=False)
    pkg = tmp_path / "pkg"
    package_ios(bundle.path, pkg)
    for argv in (["swift", "build"], ["swift", "test"]):
        done = subprocess.run(argv, cwd=pkg, capture_output=True, text=True, timeout=1800)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
