"""benchmarks/peers: the fraction of the bandwidth bound against the triad readings adjacent to each run.

Pure bookkeeping (no peer runs): rounds recorded by merge_round, the median over rounds, each round against
the larger of the readings just before and after it, and the indices of --append's merged readings.
"""
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import peers  # noqa: E402
import peers_report  # noqa: E402


def _result(decode: list[float]) -> dict:
    return {"runs": {"16": {"decode_tokens_per_s": decode, "ttft_ms": [10.0] * len(decode)},
                     "512": {"skipped": "context"}},
            "peak_rss_bytes": 1}


def test_merge_round_keeps_each_rounds_mean_and_reading():
    row = {"peer": "edgeslm-executorch", "bits": "int4", "status": "ok"}
    peers.merge_round(row, _result([100.0, 200.0]), reading=0)
    peers.merge_round(row, _result([300.0, float("nan")]), reading=3)
    run = row["runs"]["16"]
    assert run["rounds"] == [{"reading": 0, "decode_mean": 150.0}, {"reading": 3, "decode_mean": 300.0}]
    assert run["decode_tokens_per_s"][:3] == [100.0, 200.0, 300.0]       # samples still pooled
    assert "rounds" not in row["runs"]["512"]


def test_adjacent_fraction_uses_the_larger_neighbour_and_the_median():
    readings = [20.0, 40.0, 30.0, 60.0]          # GB/s, in the order taken
    rounds = [{"reading": 0, "decode_mean": 400.0},   # vs max(20, 40) = 40 -> 0.75
              {"reading": 1, "decode_mean": 150.0},   # vs max(40, 30) = 40 -> 0.28
              {"reading": 3, "decode_mean": 700.0}]   # the last reading, alone -> 0.875
    step = 75e6                                   # bytes a token
    # the median; the smaller neighbour or the reading before alone would give 0.875
    assert peers_report.adjacent_fraction(rounds, readings, step) == pytest.approx(0.75)
    assert peers_report.adjacent_fraction(rounds, [], step) is None
    assert peers_report.adjacent_fraction([], readings, step) is None


def test_append_moves_the_new_rounds_past_the_old_readings(tmp_path, monkeypatch):
    stem = tmp_path / "peers"
    old_row = {"peer": "llamacpp", "bits": "int4", "status": "not built", "reason": "old"}
    stem.with_suffix(".json").write_text(json.dumps(
        {"rows": [old_row], "bandwidth": [{"gbps": 50.0}], "bandwidth_adjacent_gbps": [50.0, 45.0]}))
    new_row = {"peer": "edgeslm-executorch", "bits": "int4", "status": "ok",
               "runs": {"16": {"rounds": [{"reading": 0, "decode_mean": 300.0}]}}}
    seen = {}
    monkeypatch.setattr(peers_report, "summarize",
                        lambda rows, ckpt, bw, new, adjacent: seen.update(rows=rows, adjacent=adjacent) or [])
    monkeypatch.setattr(peers_report, "markdown", lambda summary, meta: "table\n")
    args = SimpleNamespace(append=True, threads=2, new_tokens=8, reps=1, rounds=1, warmup=0)
    peers_report.finish([new_row], ckpt=tmp_path, model="tiny", ids={}, args=args, ctx=64,
                        bandwidth=[{"gbps": 30.0}], adjacent=[30.0, 35.0], stem=stem)
    assert seen["adjacent"] == [50.0, 45.0, 30.0, 35.0]
    moved = next(r for r in seen["rows"] if r["peer"] == "edgeslm-executorch")
    assert moved["runs"]["16"]["rounds"][0]["reading"] == 2
    saved = json.loads(stem.with_suffix(".json").read_text())
    assert saved["bandwidth_adjacent_gbps"] == [50.0, 45.0, 30.0, 35.0]
