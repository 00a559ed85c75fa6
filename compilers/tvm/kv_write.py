"""The KV-cache write as one custom op: functional in PyTorch, in place in TVM.

`torch.ops.edgeslm.kv_write(cache, values, pos, dim)` returns `cache` with `values` written at
positions `pos` along `dim` (a copy in eager PyTorch, so torch.export sees a pure op). The Relax
importer cannot take `index_put_`/`index_copy` ("IndexPut requires the number of index tensors to
match"), and a dense one-hot scatter would rewrite the whole cache every token. `convert` maps the op
to `R.call_tir_inplace` of a small loop nest that stores only the T new rows into the cache tensor the
caller passed in: the Relax function returns that same tensor, so the cache never moves.

Layouts (see sdk/models/attention.py): K cache [H_kv, D, S] written along dim 2 with values [H_kv, D, T];
V cache [H_kv, S, D] written along dim 1 with values [H_kv, T, D].
"""
from __future__ import annotations

import torch


@torch.library.custom_op("edgeslm::kv_write", mutates_args=())
def kv_write(cache: torch.Tensor, values: torch.Tensor, pos: torch.Tensor, dim: int) -> torch.Tensor:
    out = cache.clone()
    out.index_copy_(dim, pos, values)
    return out


@kv_write.register_fake
def _kv_write_fake(cache, values, pos, dim):
    return torch.empty_like(cache)


def _write_prim(shape: tuple[int, int, int], dim: int, dtype: str):
    """PrimFunc(cache [A, B, C], values (cache shape with T at `dim`), pos [T]) storing in place."""
    from tvm.script import tirx as T

    a, b, c = shape
    if dim == 2:
        @T.prim_func(private=True)
        def write(cache_h: T.handle, values_h: T.handle, pos_h: T.handle):
            T.func_attr({"tirx.noalias": True, "op_pattern": 8})  # kOpaque: never fused
            t = T.int64()
            cache = T.match_buffer(cache_h, (a, b, c), dtype)
            values = T.match_buffer(values_h, (a, b, t), dtype)
            pos = T.match_buffer(pos_h, (t,), "int64")
            for i, j, k in T.grid(a, b, t):
                cache[i, j, pos[k]] = values[i, j, k]
        return write

    @T.prim_func(private=True)
    def write_rows(cache_h: T.handle, values_h: T.handle, pos_h: T.handle):
        T.func_attr({"tirx.noalias": True, "op_pattern": 8})
        t = T.int64()
        cache = T.match_buffer(cache_h, (a, b, c), dtype)
        values = T.match_buffer(values_h, (a, t, c), dtype)
        pos = T.match_buffer(pos_h, (t,), "int64")
        for i, k, j in T.grid(a, t, c):
            cache[i, pos[k], j] = values[i, k, j]
    return write_rows


def convert(node, importer):
    """custom_convert_map entry for "kv_write.default" (Relax importer callback)."""
    from tvm import relax

    cache, values, pos = (importer.env[arg] for arg in node.args[:3])
    dim = int(node.args[3])
    shape = tuple(int(s) for s in cache.ty.shape)
    if len(shape) != 3 or dim not in (1, 2):
        raise ValueError(f"kv_write supports rank-3 caches written along dim 1 or 2, got {shape} dim {dim}")
    prim = _write_prim(shape, dim, str(cache.ty.dtype))
    builder = importer.block_builder
    gvar = builder.add_func(prim, f"kv_write_d{dim}")
    return builder.emit(relax.call_tir_inplace(gvar, [cache, values, pos], inplace_indices=[0], out_ty=cache.ty))


CONVERT_MAP = {"kv_write.default": convert}
