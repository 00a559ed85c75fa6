"""Helpers shared by the native runtime tests.

- `toy_bundle(dir)`: a tiny hand-written model that follows the bundle contract (forward(tokens[1,T],
  input_pos[T]) -> logits[1,V], mutable cache updated in place at input_pos, LLM constant methods),
  lowered to XNNPACK in a few seconds. It exercises every path of the C API without the real decoder.
- `llama_bundle(dir, quant)`: a real tiny llama bundle through `edgeslm.api.export` (the decoder path).
- `require_qemu()`: skip when qemu-aarch64 / the cross compiler are absent, but fail under CI=true.
- `once(key, fn)`: process-wide memo, so test modules share one export / build per pytest session.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

_MEMO: dict = {}


def once(key, fn):
    """fn() computed once per process (pytest session) and shared by every test module."""
    if key not in _MEMO:
        _MEMO[key] = fn()
    return _MEMO[key]


TOY_VOCAB, TOY_DIM, TOY_SEQ = 64, 16, 32
TOY_BOS, TOY_EOS = 1, (2, 3)


def _toy_module():
    import torch

    class Toy(torch.nn.Module):
        """logits = head(x_last + mean(cache[0..pos])): depends on the whole history through the cache."""

        def __init__(self):
            super().__init__()
            g = torch.Generator().manual_seed(0)
            self.emb = torch.nn.Embedding(TOY_VOCAB, TOY_DIM)
            self.mix = torch.nn.Linear(TOY_DIM, TOY_DIM)
            self.head = torch.nn.Linear(TOY_DIM, TOY_VOCAB, bias=False)
            for p in self.parameters():
                p.data = torch.randn(p.shape, generator=g)
            self.register_buffer("cache", torch.zeros(TOY_SEQ, TOY_DIM), persistent=False)  # [S, D]

        def forward(self, tokens, input_pos):          # tokens [1, T] int64, input_pos [T] int64
            x = self.mix(self.emb(tokens[0]))          # [T, D]
            self.cache.index_copy_(0, input_pos, x)    # in-place cache update at input_pos
            last = input_pos[-1:]                      # [1]
            mask = (torch.arange(TOY_SEQ) <= last).to(torch.float32).unsqueeze(1)   # [S, 1]
            hist = (self.cache * mask).sum(0) / (last.to(torch.float32) + 1.0)      # [D]
            return self.head(torch.tanh(x[-1] + hist)).unsqueeze(0)                  # [1, V]

    return Toy().eval()


def toy_forward_reference(ids: list[int]) -> "list[float]":
    """Eager logits of the toy model after reading `ids` from position 0 (for exactness checks)."""
    import torch
    with torch.no_grad():
        m = _toy_module()
        return m(torch.tensor([ids]), torch.arange(len(ids)))[0].tolist()


def toy_bundle(out: Path) -> Path:
    """Write <out>/model.pte + manifest.json for the toy model (cached: skipped if present)."""
    out = Path(out)
    if (out / "model.pte").is_file():
        return out
    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import EdgeCompileConfig, ExecutorchBackendConfig, to_edge_transform_and_lower
    from executorch.exir.passes import MemoryPlanningPass

    torch.set_grad_enabled(False)
    seq = torch.export.Dim("seq", min=1, max=TOY_SEQ)
    ep = torch.export.export(_toy_module(), (torch.zeros(1, 2, dtype=torch.long), torch.arange(2)),
                             dynamic_shapes=({1: seq}, {0: seq}), strict=False)
    meta = {"get_max_seq_len": TOY_SEQ, "get_max_context_len": TOY_SEQ, "get_vocab_size": TOY_VOCAB,
            "get_bos_id": TOY_BOS, "get_eos_ids": list(TOY_EOS), "get_n_layers": 1, "use_kv_cache": True,
            "use_sdpa_with_kv_cache": False, "enable_dynamic_shape": True}
    edge = to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()],
                                       compile_config=EdgeCompileConfig(_check_ir_validity=False),
                                       constant_methods=meta)
    prog = edge.to_executorch(ExecutorchBackendConfig(
        extract_delegate_segments=True, run_reinplace_pass=True,
        memory_planning_pass=MemoryPlanningPass(alloc_graph_input=False)))
    out.mkdir(parents=True, exist_ok=True)
    (out / "model.pte").write_bytes(prog.buffer)
    (out / "manifest.json").write_text(json.dumps({"name": "toy", "vocab_size": TOY_VOCAB}))
    return out


def llama_bundle(cache: Path, quant: str, max_seq_len: int = 96) -> Path:
    """A tiny llama bundle exported through the public API (cached per quant under `cache`)."""
    out = Path(cache) / f"llama-{quant}"
    if (out / "manifest.json").is_file():
        return out
    from tests.tiny_checkpoints import make_tiny_checkpoint

    from edgeslm import api
    ckpt = make_tiny_checkpoint("llama", Path(cache) / "ckpt-llama")
    api.export(ckpt, out=out, backend="executorch", target="host", quant=quant,
               max_seq_len=max_seq_len, force=True, progress=False)
    return out


def eager_greedy(bundle: Path, steps: int) -> list[int]:
    """Greedy tokens of the eager PyTorch decoder for the bundle's first accuracy prompt, with the
    bundle's quantization recipe applied eagerly as its backend does (ExecuTorch: edgeslm's QuantLinear
    for the linears; otherwise torchao), re-running the whole sequence each step."""
    from edgeslm import accuracy
    from edgeslm.ingest import load_checkpoint
    from edgeslm.quant import load_recipe
    from edgeslm.quant.apply import apply_recipe

    manifest = json.loads((Path(bundle) / "manifest.json").read_text())
    model = load_checkpoint(manifest["model"]["source"], max_seq_len=manifest["model"]["max_seq_len"]).model
    if manifest["backend"] == "executorch":
        from edgeslm.compilers.executorch import prepare
        prepare(model, load_recipe(manifest["quant"]["name"]))
    else:
        apply_recipe(model, load_recipe(manifest["quant"]["name"]))
    return accuracy.greedy_eager(model, manifest["accuracy"]["prompts"][0], steps)


def planned_arena_from_pte(pte: Path) -> int:
    """Sum of forward's planned (non-constant) buffers, read offline from the .pte."""
    from executorch.exir._serialize._program import deserialize_pte_binary
    program = deserialize_pte_binary(Path(pte).read_bytes())
    program = getattr(program, "program", program)       # newer versions wrap it in a PTEFile
    plan = next(p for p in program.execution_plan if p.name == "forward")
    return sum(int(b) for b in plan.non_const_buffer_sizes)


def require_qemu() -> None:
    """Skip (locally) or fail (CI=true) when the aarch64 cross toolchain or qemu-aarch64 is missing."""
    missing = [t for t in ("qemu-aarch64", "aarch64-linux-gnu-g++") if shutil.which(t) is None]
    if not missing:
        return
    msg = (f"{', '.join(missing)} not installed (apt-get install g++-aarch64-linux-gnu "
           f"gcc-aarch64-linux-gnu qemu-user)")
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(msg)
    pytest.skip(msg)
