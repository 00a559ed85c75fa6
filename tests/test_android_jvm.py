"""The Android library's JNI bridge and Kotlin core on the host JVM, against the real native runtime.

What runs: android/edgeslm-android/src/main/cpp/edgeslm_jni.cpp compiled with the host g++ against the JDK's
jni.h and the host build of runtime/ (build_runner("host")), every Kotlin file of the library plus
tests/android_host/HostMain.kt compiled with Debian's kotlinc, then `java -Djava.library.path=...` runs one
scenario per call and prints JSON.
Stand-ins: the host JVM and glibc x86_64 runtime play the phone's ART and bionic arm64 runtime (no NDK,
android.jar or emulator is reachable here); the Android-only EdgeSlm.kt compiles and runs against
tests/android_host/stubs (Context, AssetManager over a folder, Handler, Looper: the members it uses, with
their real signatures). The Kotlin and C++ sources are the library's own.

Checks: the same tokens (and text) as `edgeslm run --json` for the same bundle and prompt, plain and --chat;
stop() from another thread mid-generation; close() while generating; a missing bundle as an
EdgeSlmException with the runtime's message; a prompt over the context through onError and the Future;
two models generating at once on two threads; EdgeSlm.load(context, "edgeslm/<name>") copying an asset
bundle to filesDir once. Compiled outputs are cached by source digest (kotlinc
takes ~20 s to start).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from edgeslm.cli.main import main
from edgeslm.native import build_runner
from edgeslm.native.build import cache_root
from tests.native_helpers import llama_bundle, once

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "android" / "edgeslm-android" / "src" / "main"
HOST_MAIN = ROOT / "tests" / "android_host" / "HostMain.kt"
STUBS = ROOT / "tests" / "android_host" / "stubs"   # STAND-IN android.* classes (Context, AssetManager, Handler)
N = 12                                   # new tokens per generation
PROMPT = "Once upon a time"


def _require(tool: str, package: str) -> str:
    path = shutil.which(tool)
    if path is None:
        msg = f"{tool} not installed (apt-get install -y {package}; the Makefile installs it)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def _java_home() -> Path:
    javac = Path(_require("javac", "default-jdk-headless")).resolve()
    home = javac.parents[1]
    assert (home / "include" / "jni.h").is_file(), f"no jni.h under {home}"
    return home


def _has_text_api(lib: Path) -> bool:
    out = subprocess.run(["nm", "-D", "--defined-only", str(lib)], capture_output=True, text=True, check=True).stdout
    return " edgeslm_generate_text" in out


def _build(deploy: Path) -> dict:
    """libedgeslm_jni.so + Kotlin classes, cached under <cache>/android-host/<digest>."""
    kotlinc = _require("kotlinc", "kotlin")
    java_home = _java_home()
    sources = sorted((LIBRARY / "kotlin").rglob("*.kt")) + [HOST_MAIN]
    stubs = sorted(STUBS.rglob("*.java"))
    jni = LIBRARY / "cpp" / "edgeslm_jni.cpp"
    header = deploy / "include" / "edgeslm.h"
    text_api = _has_text_api(deploy / "libedgeslm.so")
    digest = hashlib.sha256()
    for p in [*sources, *stubs, jni, header, deploy / "libedgeslm.so"]:
        digest.update(p.name.encode() + b"\0" + p.read_bytes())
    digest.update(f"{java_home} text={text_api}".encode())
    out = cache_root() / "android-host" / digest.hexdigest()[:16]
    lib, classes = out / "libedgeslm_jni.so", out / "classes"
    if not (out / "done").is_file():
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        flags = [] if text_api else ["-DEDGESLM_JNI_NO_TEXT"]
        subprocess.run(["g++", "-std=c++17", "-O2", "-fPIC", "-shared", "-Wall", "-Wextra", "-Werror", *flags,
                        f"-I{java_home}/include", f"-I{java_home}/include/linux", f"-I{deploy}/include",
                        str(jni), "-o", str(lib), f"-L{deploy}", "-ledgeslm", f"-Wl,-rpath,{deploy}"],
                       check=True, capture_output=True, text=True)
        # android.* stand-ins first (javac), so EdgeSlm.kt (the Android-only file) compiles and runs too
        subprocess.run(["javac", "-d", str(classes), *map(str, stubs)], check=True, capture_output=True, text=True)
        proc = subprocess.run([kotlinc, "-cp", str(classes), *map(str, sources), "-d", str(classes)],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-3000:]
        (out / "done").write_text("ok\n")
    stdlib = Path("/usr/share/java/kotlin-stdlib.jar")
    assert stdlib.is_file(), "Debian's kotlin package ships /usr/share/java/kotlin-stdlib.jar"
    return {"dir": out, "classpath": f"{classes}:{stdlib}", "text_api": text_api}


@pytest.fixture(scope="module")
def host(tmp_path_factory) -> dict:
    deploy = once("deploy-host", lambda: build_runner("host", progress=False))
    return once("android-host-jvm", lambda: _build(deploy))


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.getbasetemp() / "native-llama"      # shared with test_native_runtime.py
    return once("llama-bundles", lambda: {q: llama_bundle(root, q) for q in ("fp32", "int8")})


def jvm(host: dict, *args) -> dict:
    proc = subprocess.run(["java", f"-Djava.library.path={host['dir']}", "-cp", host["classpath"],
                           "dev.edgeslm.hosttest.HostMainKt", *map(str, args)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def edgeslm_run(bundle: Path, capsys, *, chat: bool = False) -> dict:
    capsys.readouterr()
    assert main(["run", str(bundle), "-p", PROMPT, "-n", str(N), "--json", *(["--chat"] if chat else [])]) == 0
    return json.loads(capsys.readouterr().out)


def _ids(values) -> str:
    return ",".join(str(v) for v in values)


@pytest.mark.parametrize("chat", [False, True], ids=["plain", "chat"])
def test_kotlin_generates_the_tokens_of_edgeslm_run(host, bundles, capsys, chat):
    bundle = bundles["fp32"]
    expected = edgeslm_run(bundle, capsys, chat=chat)
    assert len(expected["tokens"]) >= 1
    # ids in (the prompt ids `edgeslm run` encoded): the token-id entry of the Kotlin API
    got = jvm(host, "generate", bundle, N, "--ids", _ids(expected["prompt_tokens"]))
    assert got["tokens"] == expected["tokens"], (got, expected)
    assert got["callback_ids"] == got["tokens"] and got["callback_stats"] is True
    assert got["stats"]["prompt_tokens"] == len(expected["prompt_tokens"])
    assert got["stats"]["generated_tokens"] == len(expected["tokens"])
    assert got["worker"] == "edgeslm-llama-fp32" and got["caller"] == "main"   # generate ran on the worker
    assert (got["vocab"], got["max_seq_len"]) == (384, 96) and got["stats"]["planned_arena_bytes"] > 0
    huge = got["stats"]["weights_huge_page_bytes"]                      # edgeslm_stats' last field, through JNI
    # only whole 2 MB pages the program fills are advised: never more than the file (this 0.5 MB one: 0)
    size = (Path(bundle) / "model.pte").stat().st_size
    assert isinstance(huge, int) and huge % (2 << 20) == 0 and 0 <= huge <= size, (huge, size)
    assert host["text_api"], "libedgeslm does not export edgeslm_generate_text"
    # text in, text out: the runtime's C++ tokenizer (and chat prompt) through generate(prompt, ...)
    args = ["--text", PROMPT, *(["--chat"] if chat else [])]
    got = jvm(host, "generate", bundle, N, *args)
    assert got["tokens"] == expected["tokens"], (got, expected)
    assert got["stats"]["prompt_tokens"] == len(expected["prompt_tokens"])
    assert got["text"] == "".join(got["pieces"]) == expected["text"]
    assert got["decoded"] == expected["text"]                                # encode/decode on their own
    if not chat:
        assert got["encoded"] == expected["prompt_tokens"]


def test_stop_from_another_thread_ends_the_generation(host, bundles, capsys):
    bundle = bundles["fp32"]
    prompt = edgeslm_run(bundle, capsys)["prompt_tokens"]
    got = jvm(host, "stop", bundle, 80, "--ids", _ids(prompt))          # callbacks sleep 20 ms per token
    stopped = got["stopped"]
    assert stopped["stop_reason"] == "stopped" and 3 <= len(stopped["tokens"]) < 80
    assert stopped["stats"]["generated_tokens"] == len(stopped["tokens"]) and stopped["callback_stats"]
    assert got["queued_tokens"] == 0 and got["queued_reason"] == "stopped"   # queued job never ran
    assert got["after_stop_tokens"] == 2                                      # the model stays usable


def test_close_while_generating_waits_for_the_worker(host, bundles, capsys):
    bundle = bundles["fp32"]
    prompt = edgeslm_run(bundle, capsys)["prompt_tokens"]
    got = jvm(host, "close", bundle, 80, "--ids", _ids(prompt))
    assert got["done_when_close_returned"] is True
    assert got["result"]["stop_reason"] == "stopped" and len(got["result"]["tokens"]) < 80
    assert got["after_close"] == f"model is closed: {bundle}"


def test_errors_are_exceptions_with_the_runtime_message(host, bundles, tmp_path):
    got = jvm(host, "missing", tmp_path / "no-such-bundle")
    assert got["status_name"] == "EDGESLM_ERR_NOT_FOUND"
    assert got["message"] == f"{tmp_path / 'no-such-bundle'}: bundle directory not found"
    got = jvm(host, "context", bundles["fp32"], 200)                      # context is 96 tokens
    assert got["future"]["status_name"] == "EDGESLM_ERR_CONTEXT_FULL"
    assert "exceed the context of 96 tokens" in got["future"]["message"]
    assert got["on_error"] == got["future"] and got["callback_stats"] is False


def test_two_models_generate_at_once_on_two_threads(host, bundles, capsys):
    expected = {q: edgeslm_run(bundles[q], capsys) for q in ("fp32", "int8")}
    prompt = expected["fp32"]["prompt_tokens"]
    assert expected["int8"]["prompt_tokens"] == prompt
    got = jvm(host, "two", bundles["fp32"], bundles["int8"], N, "--ids", _ids(prompt))
    assert got["a"]["tokens"] == expected["fp32"]["tokens"]
    assert got["b"]["tokens"] == expected["int8"]["tokens"]
    assert got["a"]["worker"] == "edgeslm-llama-fp32" and got["b"]["worker"] == "edgeslm-llama-int8"


def test_asset_bundle_is_copied_to_files_dir_once(host, bundles, capsys, tmp_path):
    bundle = bundles["fp32"]
    expected = edgeslm_run(bundle, capsys)
    apk_assets = tmp_path / "assets"
    shutil.copytree(bundle, apk_assets / "edgeslm" / "tiny")
    files = tmp_path / "files"
    got = jvm(host, "assets", apk_assets, files, "edgeslm/tiny", N, "--ids", _ids(expected["prompt_tokens"]))
    assert got["dir"] == str(files / "edgeslm" / "tiny") and got["recopied"] is False
    assert got["result"]["tokens"] == expected["tokens"]
    from edgeslm.bundle import load_bundle
    assert load_bundle(files / "edgeslm" / "tiny").manifest == load_bundle(bundle).manifest
    assert not list((files / "edgeslm").glob(".*staging*"))
    assert got["missing"].startswith("asset 'edgeslm/nope' is not an edgeslm bundle (no manifest.json)")
