"""`edgeslm package BUNDLE --android DIR`: the Gradle project with the bundle as a library asset (hashes
re-verified), the android-arm64 runtime libraries in jniLibs/arm64-v8a, the runtime sources for the NDK
build, INTEGRATION.md; a second bundle added to an existing project; one-line refusals with nothing written.
Gradle/AGP and the NDK cannot run here (not reachable from this machine): the build files are checked for
structure and for agreement with the Kotlin/C++ sources (tests/test_android_jvm.py compiles and runs those).
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from edgeslm.bundle import load_bundle
from edgeslm.cli.main import main
from edgeslm.errors import EdgeSLMError
from edgeslm.native import build_runner
from edgeslm.package import package_android
from edgeslm.package.android import ASSETS, CPP, JNILIBS
from tests.native_helpers import once, require_qemu

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "android"


@pytest.fixture(scope="module")
def runtime() -> Path:
    require_qemu()                                   # the android-arm64 build needs the aarch64 cross g++
    return once("deploy-android-arm64", lambda: build_runner("android-arm64", progress=False))


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """A real android-arm64 ExecuTorch bundle of a 1-layer tiny llama (context 32: export stays short)."""
    from tests.tiny_checkpoints import make_tiny_checkpoint

    from edgeslm import api
    root = tmp_path_factory.mktemp("pkg-android")
    ckpt = make_tiny_checkpoint("llama", root / "ckpt", num_layers=1)
    api.export(ckpt, out=root / "tiny-chat", backend="executorch", target="android-arm64", quant="fp32",
               max_seq_len=32, progress=False)
    return root / "tiny-chat"


def test_package_android_writes_gradle_project_with_bundle_and_runtime(bundle, runtime, tmp_path, capsys):
    out = tmp_path / "MyApp"
    assert main(["package", str(bundle), "--android", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["target"] == "android-arm64" and report["abi"] == "arm64-v8a" and report["mode"] == "new"
    assert report["asset"] == "edgeslm/tiny-chat" and "stand-in" in report["note"]
    for rel in ("settings.gradle.kts", "build.gradle.kts", "gradle/libs.versions.toml", "README.md",
                "INTEGRATION.md", "edgeslm-package.json", "edgeslm-android/build.gradle.kts",
                "edgeslm-android/src/main/cpp/CMakeLists.txt", "edgeslm-android/src/main/cpp/edgeslm_jni.cpp",
                "edgeslm-android/src/main/kotlin/dev/edgeslm/EdgeSlm.kt",
                "edgeslm-android/src/main/kotlin/dev/edgeslm/EdgeSlmModel.kt",
                "sample/src/main/kotlin/dev/edgeslm/sample/MainActivity.kt",
                f"{CPP}/include/edgeslm.h", f"{CPP}/runtime/CMakeLists.txt", f"{CPP}/runtime/common/capi.cpp"):
        assert (out / rel).is_file(), rel
    assert not list(out.rglob("__init__.py")) and not (out / CPP / "runtime/micro").exists()
    # the bundle: byte-identical, every sha256 checked again
    asset = out / ASSETS / "tiny-chat"
    copied = load_bundle(asset)
    assert copied.manifest == load_bundle(bundle).manifest
    assert report["files_verified"] == len(copied.manifest["files"]) and (asset / "model.pte").is_file()
    # the runtime: libedgeslm.so + every ExecuTorch lib it links, aarch64 ELF, no glibc loader in jniLibs
    jni = out / JNILIBS
    names = sorted(p.name for p in jni.iterdir())
    assert names == sorted(report["runtime"]["libraries"])
    assert "libedgeslm.so" in names and "libexecutorch.so" in names and "libexecutorch_backend_xnnpack.so" in names
    assert not any(n.startswith(("ld-linux", "libc.so")) for n in names)
    for lib in jni.iterdir():
        head = lib.read_bytes()[:20]
        assert head[:4] == b"\x7fELF" and int.from_bytes(head[18:20], "little") == 183, lib   # EM_AARCH64
        assert lib.read_bytes() == (runtime / lib.name if lib.name == "libedgeslm.so" else runtime / "lib" / lib.name).read_bytes()
    needed = set(re.findall(rb"lib[a-z_]+\.so", (jni / "libedgeslm.so").read_bytes()))
    assert {n.decode() for n in needed if n.startswith(b"libexecutorch")} <= set(names)
    guide = (out / "INTEGRATION.md").read_text()
    assert 'EdgeSlm.load(context, "edgeslm/tiny-chat")' in guide and "bionic" in guide
    assert "-Pedgeslm.buildRuntime=true" in guide and ":edgeslm-android:assembleRelease" in guide
    assert json.loads((out / "edgeslm-package.json").read_text())["resource"] == f"{ASSETS}/tiny-chat"

    # a second bundle into the same project: added next to the first, the user's files untouched
    (out / "sample" / "my-notes.txt").write_text("mine")
    second = tmp_path / "second bundle!"
    shutil.copytree(bundle, second)
    report = package_android(second, out, runtime=runtime)
    assert report["mode"] == "update" and report["asset"] == "edgeslm/second-bundle"
    load_bundle(out / ASSETS / "second-bundle")
    load_bundle(asset)
    assert (out / "sample" / "my-notes.txt").read_text() == "mine"
    assert not [p for p in out.rglob("*") if ".staging-" in p.name or ".old-" in p.name]
    # the table form of the CLI names the stand-in
    assert main(["package", str(bundle), "--android", str(out)]) == 0
    text = capsys.readouterr().out
    assert "stand-in" in text and "./gradlew :sample:installDebug" in text


def test_package_android_into_an_app_module_writes_assets_only(bundle, tmp_path, capsys):
    module = tmp_path / "MyApp" / "app"
    (module / "src/main").mkdir(parents=True)
    (module / "src/main/AndroidManifest.xml").write_text("<manifest/>\n")
    (module / "build.gradle.kts").write_text("plugins { id(\"com.android.application\") }\n")
    assert main(["package", str(bundle), "--android", str(module), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["mode"] == "module" and report["runtime"] is None
    assert report["resource"] == "src/main/assets/edgeslm/tiny-chat" and "edgeslm-android" in report["note"]
    load_bundle(module / report["resource"])                                # copied and re-verified
    assert sorted(str(p.relative_to(module)) for p in module.rglob("*") if p.is_file() and "assets" not in p.parts) == \
        ["build.gradle.kts", "src/main/AndroidManifest.xml"]                   # nothing else written


def _edited(bundle: Path, tmp_path: Path, **changes) -> Path:
    other = tmp_path / "edited"
    shutil.rmtree(other, ignore_errors=True)
    shutil.copytree(bundle, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest.update(changes)
    (other / "manifest.json").write_text(json.dumps(manifest))
    return other


@pytest.mark.parametrize("target", [
    {"name": "ios-arm64", "triple": "arm64-apple-ios18.0", "arch": "arm64"},
    {"name": "cortex-m4", "triple": "thumbv7em-none-eabihf", "arch": "cortex-m4"},
    {"name": "host", "triple": "native", "arch": "native"}], ids=lambda t: t["name"])
def test_package_android_refuses_other_targets(bundle, runtime, tmp_path, capsys, target):
    other = _edited(bundle, tmp_path, target=target)
    out = tmp_path / "out"
    assert main(["package", str(other), "--android", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert f"exported for target '{target['name']}', not an arm64 Android device" in err
    assert "re-export with --target android-arm64" in err and not out.exists()


def test_package_android_refuses_bad_input(bundle, runtime, tmp_path):
    out = tmp_path / "out"
    other = _edited(bundle, tmp_path, backend="coreml")
    with pytest.raises(EdgeSLMError, match="backend 'coreml' does not run in the Android library.*--backend executorch"):
        package_android(other, out, runtime=runtime)
    other = _edited(bundle, tmp_path)
    (other / "tokenizer.json").unlink()                           # a file the manifest lists
    with pytest.raises(EdgeSLMError, match="tokenizer.json: file listed in the manifest is missing"):
        package_android(other, out, runtime=runtime)
    with pytest.raises(EdgeSLMError, match="not a bundle"):
        package_android(tmp_path, out, runtime=runtime)
    assert not out.exists()
    # an existing folder that is not an edgeslm Android project is left alone
    (out / "app").mkdir(parents=True)
    (out / "settings.gradle.kts").write_text('include(":app")\n')
    with pytest.raises(EdgeSLMError, match="DIR exists and is neither an edgeslm Android project .* nor an Android module.*--force"):
        package_android(bundle, out, runtime=runtime)
    assert sorted(p.name for p in out.iterdir()) == ["app", "settings.gradle.kts"]
    # an incomplete runtime folder: one line, nothing written
    broken = tmp_path / "broken-runtime"
    broken.mkdir()
    fresh = tmp_path / "fresh"
    with pytest.raises(EdgeSLMError, match="runtime build is incomplete.*build-runner --target android-arm64"):
        package_android(bundle, fresh, runtime=broken)
    assert not fresh.exists() and not list(tmp_path.glob(".fresh.staging-*"))


def test_gradle_files_agree_with_the_sources():
    """No Gradle/AGP here: check the build files' structure and that they name files and ids that exist."""
    settings = (TEMPLATE / "settings.gradle.kts").read_text()
    assert 'include(":edgeslm-android")' in settings and 'include(":sample")' in settings
    catalog = (TEMPLATE / "gradle/libs.versions.toml").read_text()
    for key in ("agp", "kotlin", "ndk", "cmake", "compileSdk", "minSdk"):
        assert re.search(rf'^{key} = "[0-9.]+"$', catalog, re.M), key
    lib = (TEMPLATE / "edgeslm-android/build.gradle.kts").read_text()
    assert "alias(libs.plugins.android.library)" in lib and 'namespace = "dev.edgeslm"' in lib
    assert 'path = file("src/main/cpp/CMakeLists.txt")' in lib and 'abiFilters += "arm64-v8a"' in lib
    assert "jniLibs" in lib and "useLegacyPackaging = false" in lib
    sample = (TEMPLATE / "sample/build.gradle.kts").read_text()
    assert 'implementation(project(":edgeslm-android"))' in sample and "alias(libs.plugins.android.application)" in sample
    for alias in set(re.findall(r"libs\.plugins\.([a-z.]+)\)", lib + sample)):
        assert f"{alias.replace('.', '-')} = {{ id = " in catalog, alias
    for alias in set(re.findall(r"libs\.([a-z]+(?:\.[a-z]+)+)\)", sample)) - {"plugins.android.application", "plugins.kotlin.android"}:
        assert f"{alias.replace('.', '-')} = {{ group = " in catalog, alias
    cmake = (TEMPLATE / "edgeslm-android/src/main/cpp/CMakeLists.txt").read_text()
    assert "add_library(edgeslm_jni SHARED edgeslm_jni.cpp)" in cmake and "jniLibs/${ANDROID_ABI}" in cmake
    # the library name Kotlin loads is the CMake target; every native Kotlin declares is registered in C++
    kotlin = (TEMPLATE / "edgeslm-android/src/main/kotlin/dev/edgeslm/NativeBridge.kt").read_text()
    assert 'const val LIBRARY = "edgeslm_jni"' in kotlin
    cpp = (TEMPLATE / "edgeslm-android/src/main/cpp/edgeslm_jni.cpp").read_text()
    natives = set(re.findall(r"external fun (\w+)\(", kotlin))
    registered = set(re.findall(r'\{const_cast<char\*>\("(\w+)"\)', cpp))
    assert natives == registered and len(natives) == 11
    # the Android-only file is the only one that imports android.*
    sources = list((TEMPLATE / "edgeslm-android/src/main/kotlin").rglob("*.kt"))
    assert [p.name for p in sources if "import android." in p.read_text()] == ["EdgeSlm.kt"]
    manifest = (TEMPLATE / "sample/src/main/AndroidManifest.xml").read_text()
    assert 'android:name=".MainActivity"' in manifest and "android.intent.category.LAUNCHER" in manifest
    layout = (TEMPLATE / "sample/src/main/res/layout/activity_main.xml").read_text()
    activity = (TEMPLATE / "sample/src/main/kotlin/dev/edgeslm/sample/MainActivity.kt").read_text()
    for view in re.findall(r"R\.id\.(\w+)", activity):
        assert f'android:id="@+id/{view}"' in layout, view
