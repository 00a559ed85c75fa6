"""edgeslm's own bundles for benchmarks/peers.py, cached under .cache/peers keyed by what produced them.

Steps of edgeslm_bundle(ckpt, backend, quant):
  1. source digest of the backend's compiler + sdk/models + sdk/quant (working tree, so an uncommitted
     change by whoever edits the export also invalidates the cache)
  2. .cache/peers/<model>-edgeslm-<backend>-<quant>-<ctx>-<digest> loads -> reuse it
  3. else api.export(...) into that folder (edgeslm stages and renames: nothing half-written), timed

The native runner (edgeslm-runner, the binary devices use) is built once by edgeslm.native.build_runner.
"""
from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "peers"
# What an edgeslm bundle depends on, per backend (relative to the repo root).
SOURCES = {
    "executorch": ["compilers/executorch", "compilers/base.py", "sdk/models", "sdk/quant", "sdk/ingest"],
    "tvm": ["compilers/tvm", "compilers/base.py", "sdk/models", "sdk/quant", "sdk/ingest"],
}


def source_digest(paths: list[str]) -> str:
    """sha256 over (relative path, bytes) of every .py/.json/.toml/.cpp/.h file under `paths`, 12 hex."""
    h = hashlib.sha256()
    for rel in paths:
        base = ROOT / rel
        files = [base] if base.is_file() else sorted(p for p in base.rglob("*")
                                                      if p.is_file() and "__pycache__" not in p.parts)
        for f in files:
            if f.suffix in (".py", ".json", ".toml", ".cpp", ".h", ".c"):
                h.update(str(f.relative_to(ROOT)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:12]


def bundle_dir(model: str, backend: str, quant: str, max_seq_len: int) -> Path:
    return CACHE / f"{model}-edgeslm-{backend}-{quant}-{max_seq_len}-{source_digest(SOURCES[backend])}"


def _loads(path: Path) -> bool:
    from edgeslm.bundle import load_bundle
    from edgeslm.errors import EdgeSLMError
    try:
        load_bundle(path)
        return True
    except EdgeSLMError:
        return False


def edgeslm_bundle(ckpt: Path, model: str, backend: str, quant: str, max_seq_len: int,
                   allow_stale: bool = False, cached_only: bool = False) -> tuple[Path, float | None]:
    """(bundle folder, export seconds or None when reused). Export time is also in the manifest.
    allow_stale: when the sources changed since the newest bundle for (model, backend, quant, ctx) was made,
    reuse it anyway (the folder name carries the digest it was built from; peers.py says so in the table)."""
    from edgeslm import api
    out = bundle_dir(model, backend, quant, max_seq_len)
    if _loads(out):
        return out, None
    if allow_stale:
        older = sorted(CACHE.glob(f"{model}-edgeslm-{backend}-{quant}-{max_seq_len}-*"),
                       key=lambda p: p.stat().st_mtime, reverse=True)
        for cand in older:
            if cand.is_dir() and _loads(cand):
                print(f"[peers] reusing {cand.name} (built from other sources than the tree's "
                      f"{out.name.rsplit('-', 1)[1]})", file=sys.stderr, flush=True)
                return cand, None
    if cached_only:
        raise RuntimeError(f"not exported yet ({out.name}; --cached-only)")
    print(f"[peers] exporting {out.name} (edgeslm {backend} {quant}) ...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    api.export(ckpt, out=out, backend=backend, target="host", quant=quant, max_seq_len=max_seq_len,
               force=True, progress=False)
    return out, time.perf_counter() - t0


def export_seconds(bundle: Path) -> float | None:
    """Export time recorded by edgeslm in the manifest (covers reused bundles too)."""
    from edgeslm.bundle import load_bundle
    return load_bundle(bundle).manifest.get("export_seconds")


# edgeslm's quantized-linear ops and their weight arguments (packed weights, scales), streamed once a token.
_LINEAR_OPS = ("edgeslm::linear_q", "edgeslm::mlp_q", "edgeslm::qkv_rope_q")


def pte_linear_bytes(pte: Path) -> int | None:
    """Bytes of the constant tensors the .pte's edgeslm quantized-linear ops read (each tensor once, so a
    tied lm_head counts once): what a decoded token streams besides one embedding row and the KV cache.
    None when the program has none of those ops (XNNPACK-delegated bundles: estimate instead)."""
    from executorch.exir._serialize._program import deserialize_pte_binary
    from executorch.exir.scalar_type import ScalarType
    from executorch.exir.schema import KernelCall, Tensor

    size = {ScalarType.BYTE: 1, ScalarType.CHAR: 1, ScalarType.HALF: 2, ScalarType.FLOAT: 4}
    plan = deserialize_pte_binary(pte.read_bytes()).program.execution_plan[0]
    seen: set[int] = set()
    total = 0
    for ins in plan.chains[0].instructions:
        call = ins.instr_args
        if not isinstance(call, KernelCall):
            continue
        op = plan.operators[call.op_index].name
        if not op.startswith(_LINEAR_OPS):
            continue
        for idx in call.args:
            t = plan.values[idx].val
            if isinstance(t, Tensor) and t.allocation_info is None and t.data_buffer_idx > 0 and idx not in seen:
                seen.add(idx)
                n = 1
                for d in t.sizes:
                    n *= d
                total += n * size[t.scalar_type]
    return total or None


if __name__ == "__main__":   # pre-build bundles: python benchmarks/peers_edgeslm.py executorch:int4 tvm:int8 ...
    from edgeslm import api
    ckpt = api.quickstart(ROOT / ".cache" / "quickstart-smollm2", progress=False)
    for spec in sys.argv[1:]:
        b, q = spec.split(":")
        print(edgeslm_bundle(ckpt, "smollm2", b, q, 640), flush=True)
