"""Memory of a (backend, recipe) candidate on a target, estimated before anything is exported.

Steps of estimate(shape, backend, recipe, target, prefill):
  1. stored weights: every tensor's bytes under the recipe as this backend stores it (bits per weight +
     one scale per group or per row, lookup tables for palettization); how the embedding and lm_head are
     kept differs per backend (LAYOUTS below: ExecuTorch unties them, TVM fp32 keeps one table, ...)
  2. resident weights: what the runtime holds while it runs; XNNPACK repacks linear weights at load,
     TVM's VM copies the constants out of model.so (factors calibrated on this host, see CALIBRATION)
  3. KV cache: layers x 2 x kv_heads x head_dim x context x dtype bytes
  4. activations: ExecuTorch plans one static arena (prefill chunks of <= 128 tokens since the attention
     kernel; the formula below was calibrated for whole-context plans and over-counts long contexts);
     TVM allocates for the prompt it is given (the `prefill` tokens fit measures with)
  The native ExecuTorch runner maps its arena lazily, so a short prompt leaves most KV slots and plan gaps
  non-resident: the estimate is the full-context figure (conservative for a budget), the measurement is
  what fit's prompt touched; their difference is the reported estimate error.
  5. tokenizer: the native runner parses tokenizer.json when it opens the bundle (C++ tokenizer)
  6. runtime: the runner process itself (code, libraries, allocator) as measured for an empty-ish model
The total is what a device's headline memory figure should read: peak RSS (local, ssh). Under qemu-user the
farm sees only the guest heap, so `heap_bytes` is the part of the estimate that lives on the heap; on a
microcontroller the figure is the firmware's static RAM (compilers/micro/budget.py computes it exactly).

CALIBRATION (x86_64 host, edgeslm-runner as of 25 Nov 2026 22:00 UTC; tiny llamas of 0.1 M, 1.1 M and
3.3 M parameters, contexts 64 and 256; the runner moves as the runtime grows, so recalibrate when the
errors fit reports drift): the ExecuTorch runner with a 0.5 MB model and no tokenizer takes ~13.0 MB RSS,
TVM's ~10.0 MB. XNNPACK repacks linear weights at load and releases the delegate's mmap'd segment: resident
= stored + f x linear bytes with f = -0.17 (fp32: the packed copy replaces the file pages), 0.25 (int8),
0.28 (int4) through XNNPACK; 0 for the int4/int8 recipes edgeslm's own linear ops run (since 26 Nov 2026:
they read the .pte's weights in place). TVM: RSS grows by ~4.0x the constants in model.so (the .so mapping plus the VM's heap copies),
~1.65x of them on the heap; TVM int8 bundles hold their linear weights as float32 (the fold-constants phase
dequantizes them: model.so of the int8 recipe is the size of fp32 minus the int8 embedding). The runner's
C++ tokenizer costs ~6x the size of tokenizer.json (measured 4.7x-11x: 13.7 KB -> +0.15 MB, 0.7 MB ->
+3.3 MB, 1.5 MB -> +10.7 MB), ~1.1x of it on the heap. Activations of the ExecuTorch arena: context x 4 B
x (0.83 hidden + 2 intermediate + 0.67 heads x context). The estimate's error against the measurement is
reported per candidate by `edgeslm fit`, so these numbers are checked on every run.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from edgeslm.fit.shape import ModelShape

MB = 1024 * 1024
RUNTIME_BYTES = {"executorch": int(13.0 * MB), "tvm": int(10.0 * MB)}
RUNTIME_HEAP_BYTES = {"executorch": int(0.9 * MB), "tvm": int(3.7 * MB)}
# aarch64 (linux-arm64 under qemu-aarch64, one tiny llama): the TVM runtime's own heap is ~1.1 MB, not 3.7
RUNTIME_HEAP_BYTES_AARCH64 = {"tvm": int(1.1 * MB)}
XNNPACK_PACK_FACTOR = {None: -0.17, 8: 0.25, 4: 0.28}  # linear weight bits -> (resident - stored) / linear bytes
TOKENIZER_FACTOR, TOKENIZER_HEAP_FACTOR = 6.0, 1.1       # runner memory per byte of tokenizer.json
TVM_RESIDENT_FACTOR, TVM_HEAP_FACTOR = 4.0, 1.65


@dataclass
class Estimate:
    total_bytes: int                   # compare with the device's peak RSS (or static RAM on an MCU)
    heap_bytes: int                    # the part a guest-heap measurement (qemu-user, mallinfo2) sees
    stored_bytes: int                  # weights as written into the artifact
    parts: dict = field(default_factory=dict)   # weights_resident, kv_cache, activations, runtime (bytes)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def part_bytes(numel: int, rows: int, spec: dict | None, float_bytes: int, scale_bytes: int) -> int:
    """Bytes of one tensor group under a recipe part (None = kept in float)."""
    if not spec:
        return numel * float_bytes
    bits = spec["weight_bits"]
    if spec.get("scheme", "affine") == "palettize":        # indices + a 2**bits float16 lookup table
        return numel * bits // 8 + (2 ** bits) * 2
    scales = numel // spec["group_size"] if spec.get("group_size") else rows
    return numel * bits // 8 + scales * scale_bytes


def _rope_bytes(shape: ModelShape, float_bytes: int) -> int:
    """cos/sin tables [S, D] and the rotation [D, D] of each RoPE kind: constants in every artifact."""
    d, kinds = shape.config.head_dim, 1 + (shape.config.rope_local is not None)
    return kinds * (2 * shape.max_seq_len * d + d * d) * float_bytes


def _stored(shape: ModelShape, linear: dict | None, lm_head: dict | None, embedding: dict | None,
            float_bytes: int, scale_bytes: int, share_table: bool) -> tuple[int, int]:
    """(stored bytes, linear+lm_head bytes). share_table: a tied table is stored once (as the embedding)."""
    lin = part_bytes(shape.numel("linear"), shape.rows("linear"), linear, float_bytes, scale_bytes)
    head = 0 if (shape.tied and share_table) else \
        part_bytes(shape.numel("lm_head"), shape.rows("lm_head"), lm_head, float_bytes, scale_bytes)
    emb = part_bytes(shape.numel("embedding"), shape.rows("embedding"), embedding, float_bytes, scale_bytes)
    other = shape.numel("other") * float_bytes + _rope_bytes(shape, float_bytes)
    return lin + head + emb + other, lin + head


def _arena_activations(shape: ModelShape, tokens: int, float_bytes: int) -> int:
    c = shape.config
    return int(tokens * float_bytes * (0.83 * c.hidden_size + 2 * c.intermediate_size
                                       + 0.67 * c.num_heads * tokens))


# ExecuTorch KV-cache dtype -> (bytes per value, extra bytes per row): compilers/executorch/sdpa_op.py
EXECUTORCH_KV = {"float32": (4, 0), "float16": (2, 0), "int8": (1, 4)}


def _executorch(shape, recipe, target, prefill, kv_cache: str | None = None) -> Estimate:
    if target.extra.get("executorch_delegate") == "coreml":   # Apple route: all float16, Core ML runtime
        stored, _ = _stored(shape, None, None, None, 2, 2, share_table=False)
        kv, act = shape.kv_cache_bytes(2), _arena_activations(shape, shape.max_seq_len, 2)
        return Estimate(stored + kv + act, stored + kv + act, stored,
                        dict(weights_resident=stored, kv_cache=kv, activations=act, runtime=0),
                        ["Core ML delegate: the Core ML runtime's own memory is not included"])
    spec = recipe.linear
    stored, linear = _stored(shape, spec, spec, recipe.embedding, 4, 4, share_table=False)
    from edgeslm.compilers.executorch.qlinear_op import qlinear_bits
    # edgeslm's own int4/int8 linear ops read the .pte's packed weights in place: no XNNPACK repacked copy
    packed = 0 if qlinear_bits(spec) else int(XNNPACK_PACK_FACTOR[spec["weight_bits"] if spec else None] * linear)
    from edgeslm.compilers.executorch import kv_cache_dtype
    kv = shape.kv_cache_bytes(*EXECUTORCH_KV[kv_cache_dtype(recipe, kv_cache)])   # float16 for quantized recipes
    act = _arena_activations(shape, shape.max_seq_len, 4)          # static plan for a full-context prefill
    parts = dict(weights_resident=stored + packed, kv_cache=kv, activations=act,
                 tokenizer=int(TOKENIZER_FACTOR * shape.tokenizer_bytes), runtime=RUNTIME_BYTES["executorch"])
    heap = (max(packed, 0) + kv + act + RUNTIME_HEAP_BYTES["executorch"]
            + int(TOKENIZER_HEAP_FACTOR * shape.tokenizer_bytes))
    return Estimate(sum(parts.values()), heap, stored, parts,
                    ["ExecuTorch keeps lm_head apart from the embedding (quantized recipes untie them)"])


def _tvm(shape, recipe, target, prefill) -> Estimate:
    if target.kind == "mcu":
        return _micro(shape, recipe, target, prefill)
    int8 = not recipe.is_float
    # int8: linear weights end up float32 in model.so (see CALIBRATION); the embedding stays int8 per row
    emb = {"weight_bits": 8, "group_size": None} if int8 else None
    stored, _ = _stored(shape, None, None, emb, 4, 4, share_table=not int8)
    kv = shape.kv_cache_bytes(4)
    c = shape.config
    act = int(prefill * 4 * (3 * c.hidden_size + 2 * c.intermediate_size + c.num_heads * prefill))
    resident = int(TVM_RESIDENT_FACTOR * stored)
    parts = dict(weights_resident=resident, kv_cache=kv, activations=act,
                 tokenizer=int(TOKENIZER_FACTOR * shape.tokenizer_bytes), runtime=RUNTIME_BYTES["tvm"])
    runtime_heap = (RUNTIME_HEAP_BYTES_AARCH64 if target.arch == "aarch64" else RUNTIME_HEAP_BYTES)["tvm"]
    heap = (int(TVM_HEAP_FACTOR * stored) + kv + act + runtime_heap
            + int(TOKENIZER_HEAP_FACTOR * shape.tokenizer_bytes))
    notes = ["TVM int8: linear weights stored as float32 (constant folding dequantizes them)"] if int8 else []
    return Estimate(sum(parts.values()), heap, stored, parts, notes)


def _coreml(shape, recipe, target, prefill) -> Estimate:
    stored, _ = _stored(shape, recipe.linear, recipe.linear, recipe.embedding, 2, 2, share_table=True)
    kv, act = shape.kv_cache_bytes(2), _arena_activations(shape, prefill, 2)
    return Estimate(stored + kv + act, stored + kv + act, stored,
                    dict(weights_resident=stored, kv_cache=kv, activations=act, runtime=0),
                    ["Core ML runtime memory not included (cannot be measured off Apple hardware)"])


def _micro(shape, recipe, target, prefill) -> Estimate:
    """The firmware's static RAM, from the same plan the micro backend links with."""
    from types import SimpleNamespace

    from edgeslm.compilers.micro import budget
    from edgeslm.compilers.micro.quantize import blob_bytes, model_meta

    weight = lambda ptr: SimpleNamespace(weight=SimpleNamespace(data_ptr=lambda: ptr))  # noqa: E731
    fake = SimpleNamespace(config=shape.config, max_seq_len=shape.max_seq_len,
                           lm_head=weight(1 if not shape.tied else 2), embed_tokens=weight(2))
    meta = model_meta(fake)          # raises Unsupported for architectures the firmware does not implement
    est = budget.estimate(blob_bytes(meta), meta, target)
    parts = dict(weights_resident=0, kv_cache=est["kv_cache_bytes"],
                 activations=est["arena_bytes"] - est["kv_cache_bytes"],
                 runtime=est["ram_bytes"] - est["arena_bytes"])
    return Estimate(est["ram_bytes"], est["ram_bytes"], blob_bytes(meta), parts,
                    [f"weights in flash ({est['flash_bytes']:,} B of {target.flash_bytes:,} B), not RAM"])


LAYOUTS = {"executorch": _executorch, "tvm": _tvm, "coreml": _coreml, "micro": _micro}


def estimate(shape: ModelShape, backend: str, recipe, target, prefill: int, kv_cache: str | None = None) -> Estimate:
    """See the module docstring. A backend without a layout here is estimated as float32 weights + KV.
    kv_cache: ExecuTorch's KV-cache dtype (fit's --kv-caches); None: the backend's default."""
    layout = LAYOUTS.get(backend)
    if layout is None:
        stored, _ = _stored(shape, None, None, None, 4, 4, share_table=False)
        kv = shape.kv_cache_bytes(4)
        return Estimate(stored + kv, stored + kv, stored, dict(weights_resident=stored, kv_cache=kv),
                        [f"no memory layout for backend '{backend}': float32 weights + KV cache only"])
    if kv_cache and backend == "executorch":
        return _executorch(shape, recipe, target, prefill, kv_cache)
    return layout(shape, recipe, target, prefill)
