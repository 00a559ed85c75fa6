"""edgeslm profile end to end on tiny llama bundles (fp32, int8): local and qemu-aarch64 through the CLI
(subprocess) and the API; the metric schema; the accuracy gate (ok, and "wrong" with exit 3 for a doctored
reference); bad input as one-line errors (unknown device, prompt longer than the context, another
backend, a missing runtime library); fake devices that hang or crash; argv with shell metacharacters.

qemu tests skip when qemu-aarch64 or the cross compiler is missing, and fail instead under CI=true.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgeslm.bundle import write_manifest
from edgeslm.farm import DRIVERS, open_device
from edgeslm.farm.local import LocalDevice
from edgeslm.farm.metrics import FIELDS
from edgeslm.farm.profile import exit_code, profile
from edgeslm.farm.qemu_aarch64 import QemuAarch64Device
from tests.native_helpers import llama_bundle, once, require_qemu

EDGESLM = [sys.executable, "-m", "edgeslm.cli.main"]
FAST = dict(prompt_lengths=(8, 32), max_new_tokens=8, reps=2, warmup=0, progress=False)
FAST_ARGS = ["--prompt-lengths", "8,32", "--max-new-tokens", "8", "--reps", "2", "--warmup", "0"]
SUMMARY = {"mean", "std", "median", "min", "max", "samples"}
PROVENANCE = {"device_id", "device_fingerprint", "backend", "quant", "threads", "edgeslm_version",
              "edgeslm_commit", "toolchain", "latency_kind"}
METACHARS = "b; $(touch pwned) 'q' `id` & |x \"y\" *"


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.getbasetemp() / "native-llama"      # shared with test_native_runtime.py
    return once("llama-bundles", lambda: {q: llama_bundle(root, q) for q in ("fp32", "int8")})


def cli(*args, cwd=None, timeout=900):
    return subprocess.run([*EDGESLM, *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=cwd)


def assert_one_line_error(proc, *needles, code=2):
    assert proc.returncode == code, (proc.returncode, proc.stderr[-2000:])
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("edgeslm ")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def doctored(bundle: Path, dest: Path, **changes) -> Path:
    """A copy of the bundle with manifest keys changed (dotted paths), re-hashed so it still loads."""
    shutil.copytree(bundle, dest)
    manifest = json.loads((dest / "manifest.json").read_text())
    for dotted, value in changes.items():
        *parents, leaf = dotted.split(".")
        node = manifest
        for key in parents:
            node = node[key]
        node[leaf] = value
    write_manifest(dest, manifest)
    return dest


def check_result(r: dict, *, reps: int, lengths: tuple[int, ...]) -> None:
    assert r["status"] == "ok" and r["error"] is None and r["accuracy"]["status"] == "ok", r["error"]
    assert set(FIELDS) <= set(r) and PROVENANCE <= set(r["provenance"])
    keys = [str(n) for n in lengths]
    assert sorted(r["ttft_ms"]) == sorted(keys) and sorted(r["prefill_tokens_per_s"]) == sorted(keys)
    for s in [*r["ttft_ms"].values(), *r["prefill_tokens_per_s"].values(), r["decode_tokens_per_s"]]:
        assert set(s) == SUMMARY and s["min"] > 0 and s["min"] <= s["median"] <= s["max"]
    assert len(r["decode_tokens_per_s"]["samples"]) == reps * len(lengths)
    assert r["ttft_ms_range"][0] <= r["ttft_ms_range"][1]
    assert r["model_load_ms"]["median"] > 0 and r["planned_arena_bytes"] > 0 and r["artifact_bytes"] > 0
    assert r["accuracy"]["got"] == r["accuracy"]["expected"] and len(r["accuracy"]["expected"]) == 16
    assert r["provenance"]["backend"] == "executorch" and r["provenance"]["threads"] >= 1
    if r["latency_kind"] == "measured":
        # the runner's own peak RSS: a tiny model, not the spawning Python process (~200 MB+)
        assert 1 << 20 < r["peak_rss_bytes"] < 150 << 20 and r["memory_bytes"] == r["peak_rss_bytes"]
        assert r["peak_rss_note"] is None and r["provenance"]["device_fingerprint"]["cpu_model"]
    else:
        assert r["latency_kind"].startswith("emulated") and r["peak_rss_bytes"] is None
        assert "qemu" in r["peak_rss_note"] and r["memory_bytes"] == r["guest_heap_bytes"] > 0
        assert r["provenance"]["device_fingerprint"]["qemu_cpu"] == "cortex-a76"


@pytest.mark.parametrize("quant", ("fp32", "int8"))
def test_profile_cli_local_and_qemu(bundles, quant, tmp_path):
    require_qemu()
    out = tmp_path / "p.json"
    proc = cli("profile", bundles[quant], "--device", "local", "--device", "qemu-aarch64", *FAST_ARGS,
               "--out", out, "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    assert doc == json.loads(out.read_text()) and doc["schema"] == "edgeslm.profile/1" and doc["status"] == "ok"
    assert [r["device"] for r in doc["results"]] == ["local", "qemu-aarch64"]
    assert doc["bundle"]["quant"] == quant and doc["settings"]["prompt_lengths"] == [8, 32]
    for r in doc["results"]:
        check_result(r, reps=2, lengths=(8, 32))
        assert r["accuracy"]["checks_reference"] == (quant == "fp32")


def test_profile_cli_table_and_default_out(bundles, tmp_path):
    proc = cli("profile", bundles["int8"], *FAST_ARGS, "--quiet", cwd=tmp_path)   # default device: local
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "local" in proc.stdout and "OK" in proc.stdout and "decode tok/s" in proc.stdout
    written = list((tmp_path / "profiles").glob("llama-int8-*.json"))
    assert len(written) == 1 and str(written[0]) in proc.stdout.replace("\n", "")


def test_profile_api_devices_and_android_target(bundles, tmp_path):
    """API with Device objects (own work dirs); qemu-aarch64:android-arm64 runs the self-contained folder."""
    require_qemu()
    devices = [LocalDevice(workdir=tmp_path / "local"), QemuAarch64Device(workdir=tmp_path / "guest"),
               QemuAarch64Device("android-arm64", workdir=tmp_path / "android")]
    doc = profile(bundles["int8"], devices, out=tmp_path / "r.json", **FAST)
    assert exit_code(doc) == 0 and (tmp_path / "r.json").is_file()
    assert [r["device"] for r in doc["results"]] == ["local", "qemu-aarch64", "qemu-aarch64:android-arm64"]
    for r in doc["results"]:
        check_result(r, reps=2, lengths=(8, 32))
    assert doc["results"][2]["provenance"]["device_fingerprint"]["sysroot"] is None   # its own loader
    assert (tmp_path / "android" / "bundles").is_dir() and (tmp_path / "guest" / "runners").is_dir()


def test_wrong_reference_is_loud_exit_3(bundles, tmp_path):
    m = json.loads((bundles["fp32"] / "manifest.json").read_text())
    bad = list(m["accuracy"]["bundle_greedy"])
    bad[3] = (bad[3] + 1) % m["model"]["vocab_size"]
    copy = doctored(bundles["fp32"], tmp_path / "doctored", **{"accuracy.bundle_greedy": bad})
    proc = cli("profile", copy, "--device", "local", *FAST_ARGS, "--out", tmp_path / "p.json")
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert "WRONG" in proc.stdout and "WRONG local" in proc.stderr and "step 3" in proc.stderr
    r = json.loads((tmp_path / "p.json").read_text())["results"][0]
    assert r["status"] == "wrong" and r["accuracy"]["first_mismatch"] == 3 and r["accuracy"]["got"] != bad
    assert r["decode_tokens_per_s"]["mean"] > 0          # still measured, just marked wrong


def test_bad_input_one_line_errors(bundles, tmp_path):
    bundle = bundles["fp32"]
    assert_one_line_error(cli("profile", bundle, "--device", "pixel9"), "unknown device 'pixel9'", "local")
    assert_one_line_error(cli("profile", bundle, "--device", "local", "--prompt-lengths", "16,96"),
                          "prompt length 96", "context of 96")
    assert_one_line_error(cli("profile", bundle, "--prompt-lengths", "16,x"), "--prompt-lengths")
    assert_one_line_error(cli("profile", tmp_path / "nope"), "no such bundle")
    other = doctored(bundle, tmp_path / "coreml", backend="coreml")
    assert_one_line_error(cli("profile", other, "--device", "local"), "backend 'coreml' has no native runner")
    assert_one_line_error(cli("build-runner", "--target", "cortex-m99"), "unknown target")


@pytest.mark.parametrize("device,target", [("local", "host"), ("qemu-aarch64", "linux-arm64")])
def test_missing_runtime_library(bundles, tmp_path, device, target):
    from edgeslm.native import build_runner
    if device != "local":
        require_qemu()
    broken = tmp_path / "runner"
    shutil.copytree(once(f"deploy-{target}", lambda: build_runner(target, progress=False)), broken)
    (broken / "lib" / "libexecutorch_threadpool.so").unlink()
    proc = cli("profile", bundles["int8"], "--device", device, "--runner-dir", f"{target}={broken}", *FAST_ARGS)
    assert_one_line_error(proc, "libexecutorch_threadpool.so is missing", f"build-runner --target {target}")


class FakeHangingDevice(LocalDevice):
    """A fake device: every run is `sleep 60`, as a runner that hangs."""
    def run(self, argv, timeout_s):
        return super().run(["sleep", "60"], timeout_s)


class FakeCrashingDevice(LocalDevice):
    """A fake device: every run segfaults (the shell kills itself with SIGSEGV)."""
    def run(self, argv, timeout_s):
        return super().run(["sh", "-c", "echo boom >&2; kill -SEGV $$"], timeout_s)


def test_fake_hanging_and_crashing_devices_are_reported(bundles, tmp_path):
    hang, crash = FakeHangingDevice(workdir=tmp_path / "h"), FakeCrashingDevice(workdir=tmp_path / "c")
    crash.id = "fake-crash"
    t0 = time.perf_counter()
    doc = profile(bundles["int8"], [hang, crash], timeout_s=1.5, **FAST)
    assert time.perf_counter() - t0 < 20 and exit_code(doc) == 4 and doc["status"] == "error"
    hung, crashed = doc["results"]
    assert hung["status"] == "error" and "timed out after 1.5 s" in hung["error"]
    assert crashed["status"] == "error" and "crashed (SIGSEGV)" in crashed["error"]
    for r in (hung, crashed):
        assert set(FIELDS) <= set(r) and r["decode_tokens_per_s"] is None and r["accuracy"]["status"] == "not run"


def test_argv_with_shell_metacharacters_is_verbatim(bundles, tmp_path):
    dev = LocalDevice(workdir=tmp_path / "w")
    args = ["a b", METACHARS, "$HOME", "--x=;ls", ""]
    done = dev.run(["printf", "%s\\n", *args], timeout_s=30)
    assert done.returncode == 0 and done.stdout.split("\n")[:-1] == args
    assert not list(tmp_path.rglob("pwned"))

    odd = tmp_path / METACHARS
    shutil.copytree(bundles["int8"], odd)
    devices = [dev]
    if shutil.which("qemu-aarch64") and shutil.which("aarch64-linux-gnu-g++"):
        devices.append(QemuAarch64Device(workdir=tmp_path / "g"))
    doc = profile(odd, devices, **FAST)
    assert doc["status"] == "ok", [r["error"] for r in doc["results"]]
    for r in doc["results"]:
        assert all(run["bundle"].endswith("/" + METACHARS) for run in r["runs"].values())
    assert not list(tmp_path.rglob("pwned")) and not Path("pwned").exists()


def test_devices_registry_push_pull(tmp_path):
    assert {"local", "qemu-aarch64"} <= set(DRIVERS)
    assert "qemu-aarch64" in cli("profile", "--help").stdout
    dev = open_device("local")
    assert dev.id == "local" and dev.target.name == "host" and dev.latency_kind == "measured"
    local = LocalDevice(workdir=tmp_path / "w")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f.txt").write_text("hi")
    local.push(tmp_path / "src", "a/b")
    local.push(tmp_path / "src", "a/b")                      # replaces, never nests
    assert (tmp_path / "w" / "a" / "b" / "f.txt").read_text() == "hi" and not (tmp_path / "w/a/b/src").exists()
    local.pull("a/b/f.txt", tmp_path / "back.txt")
    assert (tmp_path / "back.txt").read_text() == "hi"
    for remote in ("../escape", "/abs/path"):
        with pytest.raises(Exception, match="relative to the device"):
            local.push(tmp_path / "src", remote)
    done = local.run(["definitely-not-a-program-xyz"], timeout_s=5)
    assert done.returncode == 127 and "cannot start" in done.stderr
