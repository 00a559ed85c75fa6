"""The CLI as a user meets it: subprocesses, exit codes, one-line errors, nothing half-written."""
import json
import os
import shutil
import subprocess
import sys

import pytest

EDGESLM = [sys.executable, "-m", "edgeslm.cli.main"]


def cli(*args, check_rc=None):
    proc = subprocess.run([*EDGESLM, *map(str, args)], capture_output=True, text=True, timeout=900)
    if check_rc is not None:
        assert proc.returncode == check_rc, proc.stderr[-2000:]
    return proc


def assert_one_line_error(proc, *needles):
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("edgeslm ")]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture(scope="module")
def cli_bundle(tiny_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "bundle"
    proc = cli("export", tiny_checkpoint("llama"), "--backend", "executorch", "--target", "host", "--quant", "fp32",
               "--max-seq-len", "64", "-o", out, "--json", check_rc=0)
    manifest = json.loads(proc.stdout)
    assert manifest["path"] == str(out) and manifest["backend"] == "executorch"
    return out


def test_export_run_info_eval(cli_bundle, tmp_path):
    run = json.loads(cli("run", cli_bundle, "--prompt", "Hello world", "--max-new-tokens", "6", "--json",
                         check_rc=0).stdout)
    assert set(run) == {"prompt_tokens", "tokens", "text", "stop_reason", "stats"}
    assert len(run["tokens"]) == 6 and run["prompt_tokens"][0] == 1       # BOS from the tokenizer
    assert {"ttft_ms", "decode_tokens_per_s", "peak_rss_bytes", "model_load_ms"} <= set(run["stats"])
    again = json.loads(cli("run", cli_bundle, "-p", "Hello world", "-n", "6", "--json", check_rc=0).stdout)
    assert again["tokens"] == run["tokens"]                                  # greedy is deterministic

    info = json.loads(cli("info", cli_bundle, "--json", check_rc=0).stdout)
    assert info["model"]["max_seq_len"] == 64 and info["quant"]["name"] == "fp32"
    assert "Xnnpack" in cli("info", cli_bundle, check_rc=0).stdout or info["lowering"]["delegated"]

    text = tmp_path / "t.txt"
    text.write_text("The quick brown fox jumps over the lazy dog. " * 4)
    ev = json.loads(cli("eval", cli_bundle, "--text", text, "--json", check_rc=0).stdout)
    assert ev["tokens"] > 10 and ev["top1_agreement"] == 1.0
    assert ev["perplexity_bundle"] == pytest.approx(ev["perplexity_float"], rel=1e-4)


def test_targets_lists_profiles():
    rows = json.loads(cli("targets", "--json", check_rc=0).stdout)
    names = {r["name"] for r in rows}
    assert {"host", "linux-arm64", "android-arm64"} <= names
    assert all("executorch" in r["available_backends"] for r in rows if r["name"] == "host")


def test_bad_inputs_give_one_line_and_exit_2(cli_bundle, tiny_checkpoint, tmp_path):
    ckpt = tiny_checkpoint("llama")
    assert_one_line_error(cli("export", ckpt, "-o", cli_bundle), "output directory exists", "--force")
    assert_one_line_error(cli("export", ckpt, "-o", tmp_path / "o", "--target", "toaster"), "unknown target")
    assert_one_line_error(cli("export", ckpt, "-o", tmp_path / "o", "--quant", "int3"), "unknown quantization recipe")
    assert cli("export", ckpt, "-o", tmp_path / "o", "--backend", "nope").returncode == 2   # argparse choices
    assert_one_line_error(cli("export", tmp_path / "missing", "-o", tmp_path / "o"), "missing")
    assert not (tmp_path / "o").exists()

    long_prompt = "word " * 200
    assert_one_line_error(cli("run", cli_bundle, "-p", long_prompt), "context is 64", "--max-seq-len")
    assert_one_line_error(cli("run", tmp_path, "-p", "hi"), "manifest.json missing")
    assert_one_line_error(cli("eval", cli_bundle, "--text", tmp_path / "none.txt"), "no such text file")

    tampered = tmp_path / "tampered"
    shutil.copytree(cli_bundle, tampered)
    data = bytearray((tampered / "model.pte").read_bytes())
    data[len(data) // 2] ^= 0x55
    (tampered / "model.pte").write_bytes(bytes(data))
    assert_one_line_error(cli("run", tampered, "-p", "hi"), "model.pte", "sha256", "re-export")


def test_export_refuses_pickle_checkpoint_without_unpickling(tiny_checkpoint, tmp_path):
    ckpt = tmp_path / "pickled"
    ckpt.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(tiny_checkpoint("llama") / name, ckpt / name)
    (ckpt / "pytorch_model.bin").write_bytes(b"\x80\x04cos\nsystem\n(S'touch /tmp/pwned'\ntR.")
    proc = cli("export", ckpt, "-o", tmp_path / "o")
    assert_one_line_error(proc, "safetensors")
    assert not (tmp_path / "o").exists()


def test_force_replaces_atomically(cli_bundle, tiny_checkpoint, tmp_path):
    out = tmp_path / "again"
    shutil.copytree(cli_bundle, out)
    (out / "stale.txt").write_text("old")
    cli("export", tiny_checkpoint("llama"), "--max-seq-len", "32", "-o", out, "--force", "--quiet", check_rc=0)
    assert not (out / "stale.txt").exists()
    assert json.loads((out / "manifest.json").read_text())["model"]["max_seq_len"] == 32
    assert [p.name for p in tmp_path.iterdir()] == ["again"]      # no staging leftovers


def test_export_a_gguf_file_directly(tmp_path):
    from test_quickstart import write_tiny_gguf
    gguf_file = tmp_path / "tiny.gguf"
    write_tiny_gguf(gguf_file)
    out = tmp_path / "b"
    env_cache = {"EDGESLM_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run([*EDGESLM, "export", str(gguf_file), "-o", str(out), "--max-seq-len", "32", "--json"],
                          capture_output=True, text=True, timeout=900, env={**os.environ, **env_cache})
    assert proc.returncode == 0, proc.stderr[-2000:]
    m = json.loads(proc.stdout)
    assert m["model"]["config"]["hidden_size"] == 16 and m["accuracy"]["top1_agreement"] == 1.0
    assert (tmp_path / "cache" / "gguf").is_dir()          # converted once, reused next time
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00 truncated")
    assert_one_line_error(cli("export", bad, "-o", tmp_path / "o2"), "bad.gguf")
