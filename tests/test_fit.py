"""edgeslm fit end to end on a tiny random llama with the local device (host target).

One search exports three candidates (ExecuTorch fp32/int8 and TVM int8) and skips TVM fp32 on its memory
estimate; the runs after it reuse those bundles from the work folder (only re-measured), so the module
costs three tiny exports. Memory figures are the runner's peak RSS on this host.

The model: llama, hidden 64, 2 layers, vocab 8192 (so the [V, hidden] tables make the recipes differ by
megabytes, above the ~13 MB the runner itself takes; its 1.5 MB tokenizer.json costs the runner ~9 MB),
context 64. Estimates (edgeslm fit --dry-run): ExecuTorch int8 23.0 MB, fp32 25.5 MB, TVM int8 29.9 MB,
fp32 35.7 MB; the budget of 33 MB sits between the last two (measured here: 24.9, 26.4, 29.4 MB).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgeslm.cli.main import main

BUDGET = "33MB"
BUDGET_BYTES = 33 * 1024 ** 2
# Estimate vs measured peak RSS: within 8% on this host for 0.1 M - 3.3 M parameter llamas (calibration in
# sdk/fit/estimate.py). 25% leaves room for runner builds that move the ~14 MB baseline a little; beyond
# that the calibration is stale and this test should fail.
MAX_ESTIMATE_ERROR = 0.25


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    from tiny_checkpoints import make_tiny_checkpoint
    return make_tiny_checkpoint("llama", tmp_path_factory.mktemp("fit-ckpt"), vocab_size=8192)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("fit-work")


def _fit(ckpt, out, work, *extra) -> int:
    return main(["fit", str(ckpt), "--target", "host", "--context", "64", "--work", str(work), "-o", str(out),
                 "--prompt-length", "16", "--max-new-tokens", "16", "--reps", "2", "--quiet", *extra])


@pytest.fixture(scope="module")
def searched(ckpt, work, tmp_path_factory):
    out = tmp_path_factory.mktemp("fit-out") / "best"
    code = _fit(ckpt, out, work, "--backends", "executorch,tvm", "--recipes", "fp32,int8",
                "--max-memory", BUDGET, "--max-quality-loss", "0.5")
    return code, out, json.loads((out / "fit.json").read_text()) if (out / "fit.json").is_file() else None


def test_fit_picks_the_fastest_bundle_within_bounds(searched):
    from edgeslm.bundle import load_bundle

    code, out, report = searched
    assert code == 0 and report is not None
    rows = {r["candidate"]: r for r in report["candidates"]}
    assert set(rows) == {"executorch/fp32", "executorch/int8", "tvm/fp32", "tvm/int8"}
    best = [r for r in rows.values() if r["status"] == "best"]
    assert len(best) == 1 and report["best"] == best[0]["candidate"]
    ok = [r for r in rows.values() if r["status"] in ("best", "pass")]
    assert best[0]["measured"]["decode_tokens_per_s"] == max(r["measured"]["decode_tokens_per_s"] for r in ok)
    m = best[0]["measured"]
    assert m["memory_for_bound_bytes"] <= BUDGET_BYTES and best[0]["kl"] <= 0.5 and m["decode_tokens_per_s"] > 0
    bundle = load_bundle(out)      # the bundle itself, hashes verified, with the table next to it
    assert (bundle.backend, bundle.manifest["quant"]["name"]) == (best[0]["backend"], best[0]["recipe"])
    assert (out / "fit.md").read_text().count("\n| ") == 1 + len(rows)   # header + one line per candidate
    for r in rows.values():        # every candidate not chosen says why
        assert r["status"] in ("best", "pass") or r["reasons"], r


def test_memory_estimate_skips_without_exporting(searched, work):
    _, _, report = searched
    rows = {r["candidate"]: r for r in report["candidates"]}
    skipped = rows["tvm/fp32"]
    assert skipped["status"] == "skipped" and skipped["estimate"]["total_bytes"] > BUDGET_BYTES
    assert "not exported" in skipped["reasons"][0] and "over by" in skipped["reasons"][0]
    assert not (work / "tvm-fp32").exists() and skipped["measured"] is None
    for name in ("executorch/fp32", "executorch/int8", "tvm/int8"):      # two backends exported and measured
        assert rows[name]["estimate"]["total_bytes"] <= BUDGET_BYTES
        assert (work / name.replace("/", "-") / "manifest.json").is_file()
        assert rows[name]["measured"]["device_status"] == "ok"


def test_estimate_error_is_reported_and_bounded(searched):
    _, out, report = searched
    md = (out / "fit.md").read_text()
    for r in report["candidates"]:
        m = r["measured"]
        if not m:
            continue
        assert m["memory_kind"] == "peak RSS" and m["compared_estimate_bytes"] == r["estimate"]["total_bytes"]
        err = (m["compared_estimate_bytes"] - m["measured_memory_bytes"]) / m["measured_memory_bytes"]
        assert m["estimate_error"] == pytest.approx(err)
        assert abs(err) < MAX_ESTIMATE_ERROR, (r["candidate"], err)
        assert f"{err * 100:+.1f}%" in md


def test_nothing_meets_a_speed_bound_exit_2_out_untouched(searched, ckpt, work, tmp_path, capsys):
    out = tmp_path / "existing"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    capsys.readouterr()
    code = _fit(ckpt, out, work, "--backends", "executorch", "--recipes", "int8", "--max-memory", BUDGET,
                "--min-decode-tps", "1e9", "--force")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "closest: executorch/int8" in err[0] and "--min-decode-tps 1e+09" in err[0]
    assert "short by" in err[0] and "fix:" in err[0]
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]       # --force did not replace it
    report = json.loads((work / "fit.json").read_text())              # the table is left in the work folder
    assert report["candidates"][0]["export"]["reused"] is True          # no second export


def test_budget_below_every_estimate_names_the_closest(ckpt, tmp_path):
    import edgeslm
    from edgeslm.fit import NothingFits

    with pytest.raises(NothingFits) as info:
        edgeslm.fit(ckpt, target="host", out=tmp_path / "out", max_memory="12MB", context=64,
                    work=tmp_path / "work", backends=["executorch", "tvm"], recipes=["fp32", "int8"],
                    progress=False)
    rows = info.value.report["candidates"]
    smallest = min(rows, key=lambda r: r["estimate"]["total_bytes"])
    assert all(r["status"] == "skipped" for r in rows)
    assert f"closest: {smallest['candidate']}: estimated memory" in str(info.value)
    assert not (tmp_path / "out").exists()
    assert not any(p.is_dir() for p in (tmp_path / "work").iterdir())   # nothing exported


def test_dry_run_and_bad_input(ckpt, tmp_path, capsys):
    code = main(["fit", str(ckpt), "--target", "cortex-m4", "--max-memory", "256KB", "--dry-run", "-o",
                 str(tmp_path / "o"), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and {r["candidate"] for r in report["candidates"]} == {"micro/int8", "tvm/int8"}
    assert all("estimated flash" in r["reasons"][0] for r in report["candidates"])   # 8192 x 64 table > 1 MB
    assert not (tmp_path / "o").exists()
    for argv, needle in [(["--max-memory", "lots"], "is not a size"),
                         (["--max-memory", "1GB", "--backends", "micro"], "cannot build for target 'host'"),
                         (["--max-memory", "1GB", "--context", "100000"], "outside the model's range"),
                         (["--max-memory", "1GB", "--recipes", "nosuch"], "unknown quantization recipe")]:
        assert main(["fit", str(ckpt), "--target", "host", "-o", str(tmp_path / "o"), *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and needle in err[0], err
    assert main(["fit", str(ckpt), "--target", "cortex-m4", "--max-memory", "1MB", "--min-decode-tps", "5",
                 "-o", str(tmp_path / "o")]) == 2
    assert "QEMU counts instructions" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_parse_size():
    from edgeslm.errors import EdgeSLMError
    from edgeslm.fit.bounds import parse_size
    assert parse_size("512MB") == 512 * 1024 ** 2 and parse_size("1.5G") == int(1.5 * 1024 ** 3)
    assert parse_size("256KiB") == 262144 and parse_size("1000") == 1000
    for bad in ("", "-1MB", "12XB", "MB"):
        with pytest.raises(EdgeSLMError):
            parse_size(bad)


def test_kv_cache_variants_are_candidates(ckpt, work, tmp_path, capsys):
    """--kv-caches float16,int8: each ExecuTorch candidate once per KV-cache dtype; the estimate's cache part
    equals the bytes the exported bundle's caches take (int8: D + 4 bytes a row), both measured."""
    from edgeslm.bundle import load_bundle

    out = tmp_path / "kv"
    code = _fit(ckpt, out, work, "--backends", "executorch", "--recipes", "int8", "--kv-caches", "float16,int8",
                "--max-memory", BUDGET)
    assert code == 0
    report = json.loads((out / "fit.json").read_text())
    rows = {r["candidate"]: r for r in report["candidates"]}
    assert set(rows) == {"executorch/int8+kv-float16", "executorch/int8+kv-int8"}
    for kv, row in [("float16", rows["executorch/int8+kv-float16"]), ("int8", rows["executorch/int8+kv-int8"])]:
        assert row["status"] in ("best", "pass") and row["measured"]["device_status"] == "ok", row
        meta = load_bundle(row["export"]["path"]).manifest["lowering"]["metadata"]
        assert meta["kv_cache_dtype"] == kv
        assert row["estimate"]["parts"]["kv_cache"] == meta["kv_cache_bytes"]
    assert rows["executorch/int8+kv-int8"]["estimate"]["total_bytes"] < \
        rows["executorch/int8+kv-float16"]["estimate"]["total_bytes"]
    capsys.readouterr()
    assert _fit(ckpt, tmp_path / "bad", work, "--kv-caches", "bfloat16", "--max-memory", BUDGET, "--dry-run") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bfloat16" in err[0] and "fix:" in err[0]
