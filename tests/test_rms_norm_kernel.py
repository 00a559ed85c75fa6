"""edgeslm::rms_norm: the C++ ExecuTorch kernel (runtime/kernels/rms_norm.cpp, sum of squares in 8 lanes)
against its eager reference (compilers/executorch/norm_op.py), run through a real .pte in ExecuTorch's
runtime: widths with and without an 8-lane tail, Llama (offset 0) and Gemma (offset 1) weights, one row
(decode) and enough rows for the kernel to split them over the thread pool."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from edgeslm.compilers.executorch.norm_op import OpRMSNorm, rms_norm_reference
from edgeslm.models.layers import RMSNorm


def _method(module: nn.Module, dim: int, tmp_path):
    from executorch.exir import EdgeCompileConfig, to_edge
    from executorch.runtime import Runtime

    from edgeslm.native.kernels import load_kernels

    load_kernels()
    rows = torch.export.Dim("rows", min=1, max=256)
    ep = torch.export.export(module.eval(), (torch.randn(1, 3, dim),), dynamic_shapes=({1: rows},), strict=False)
    program = to_edge(ep, compile_config=EdgeCompileConfig(_check_ir_validity=False)).to_executorch()
    path = tmp_path / f"norm-{dim}.pte"
    path.write_bytes(program.buffer)
    return Runtime.get().load_program(path).load_method("forward")


@pytest.mark.parametrize("dim,offset", [(576, 0.0), (37, 1.0), (64, 1.0)])
def test_kernel_matches_reference(tmp_path, dim, offset):
    torch.manual_seed(dim)
    norm = RMSNorm(dim, eps=1e-5, offset=offset)
    with torch.no_grad():
        norm.weight.copy_(torch.randn(dim) * 0.5 + (0.0 if offset else 1.0))
    module = OpRMSNorm(norm)
    method = _method(module, dim, tmp_path)
    for rows in (1, 7, 200):                        # 200 x 576 >= 2^16 elements: rows split over the pool
        x = torch.randn(1, rows, dim) * 4
        if rows == 7:
            x[0, 3] = 0.0                           # an all-zero row: eps keeps it finite (output 0)
        got = method.execute([x])[0]
        want = rms_norm_reference(x, module.weight, module.eps, module.offset)
        assert got.shape == (1, rows, dim)
        assert torch.isfinite(got).all()
        # only the summation order differs from torch's: a few ulps of the largest output
        assert float((got - want).abs().max()) <= 1e-6 * float(want.abs().max()), rows
        if rows == 7:
            assert float(got[0, 3].abs().max()) == 0.0
