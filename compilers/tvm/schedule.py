"""CPU schedules for the fused kernels: which rule takes which PrimFunc (first match wins).

  DecodeGemv       matvecs W [out, in] x x [in, T] (reduction along the contiguous axis; T = 1 in
                   decode, symbolic in prefill, then each weight row is reused for the T columns):
                   output rows split in tiles, tiles in parallel across threads, the reduction in
                   vector-width chunks that LLVM turns into SIMD multiply-adds, partial sums kept in a
                   register-resident accumulator per row and reduced once (rfactor)
  BatchedReductionOutside  attention's batched matmuls: reduction loop moved outside the contiguous
                   output axis (rows of K/V streamed, not columns)
  dl.cpu.GEMV      DLight's GEMV rule for the shapes DecodeGemv declines
  dl.cpu.Reduction DLight's reduction rule (norms, softmax rows)
  ParallelSpatial  everything else (prefill matmuls, elementwise, attention): the leading spatial loops
                   of every block fused and run in parallel; LLVM vectorises the inner loops

Functions without schedulable blocks (the in-place KV write) are left as written.
"""
from __future__ import annotations

from tvm import s_tir, tirx
from tvm.s_tir import dlight as dl
from tvm.s_tir.dlight.analysis import normalize_prim_func
from tvm.s_tir.dlight.base import try_inline_contiguous_spatial
from tvm.s_tir.dlight.cpu.base import CPUScheduleRule


def _blocks(rule, func, target):
    """(schedule, block infos with contiguous spatial producers inlined) or None when `rule` cannot apply."""
    if not isinstance(func, tirx.PrimFunc) or not rule.is_target_available(target):
        return None
    sch = s_tir.Schedule(func)
    infos = normalize_prim_func(sch)
    if infos is None:
        return None
    return sch, try_inline_contiguous_spatial(sch, infos)


def _main_and_epilogue(rule, func, target):
    """(schedule, [main block] or [main block, injective epilogue]) or None: the shape the matmul rules take."""
    found = _blocks(rule, func, target)
    if found is None or found[1] is None or len(found[1]) not in (1, 2):
        return None
    infos = found[1]
    if len(infos) == 2 and not infos[1].is_injective():
        return None
    return found


def _extent(sch, loop) -> int | None:
    ext = sch.get(loop).extent
    return int(ext) if isinstance(ext, tirx.IntImm) else None


class DecodeGemv(CPUScheduleRule):
    """out[i, t] = sum_k f(W[i, k]) * x[k, t] (+ injective epilogue); rows static, t static or symbolic."""

    def __init__(self, rows_per_task: int = 16, lanes: int = 8):
        self.rows_per_task, self.lanes = rows_per_task, lanes

    def apply(self, func, target, tunable):
        found = _main_and_epilogue(self, func, target)
        if found is None:
            return None
        sch, infos = found
        main = infos[0]
        if main.dom_kind() not in ("SR", "SSR"):
            return None
        loops = sch.get_loops(main.block_rv)
        spatial, red = loops[:-1], loops[-1]
        k = _extent(sch, red)
        extents = [_extent(sch, loop) for loop in spatial]
        n_static = next((i for i, e in enumerate(extents) if e is None), len(extents))
        if n_static == 0 or any(e is not None for e in extents[n_static:]):
            return None                        # static rows first, then at most the dynamic T (prefill)
        rows = 1
        for ext in extents[:n_static]:
            rows *= ext
        if k is None or k % self.lanes or rows < 2 * self.rows_per_task or k < 64:
            return None
        static = spatial[:n_static]
        row = sch.fuse(*static) if len(static) > 1 else static[0]
        task, inner_row = sch.split(row, [None, self.rows_per_task])
        ko, ki = sch.split(red, [None, self.lanes])
        dyn = len(spatial) - n_static            # prefill: the T loop sits between the row and the reduction
        # partial sums per lane: acc[lane, row] = sum_ko f(W[row, ko*lanes+lane]) * x[ko*lanes+lane]
        acc = sch.rfactor(ki, 0)
        sch.reverse_compute_at(main.block_rv, sch.get_loops(acc)[1])   # lanes summed once per row
        if len(infos) == 2:
            sch.reverse_compute_at(infos[1].block_rv, sch.get_loops(acc)[1])
        sch.parallel(sch.get_loops(acc)[0])                     # row tiles across threads
        sch.vectorize(sch.get_loops(acc)[-1])                   # one SIMD multiply-add per ko step
        sch.decompose_reduction(acc, sch.get_loops(acc)[2 + dyn])   # zero the accumulator before the ko loop
        return sch


class BatchedReductionOutside(CPUScheduleRule):
    """Attention's batched matmuls (scores = q @ K [H, D, S], out = p @ V [H, S, D]): out[b, i, j] = sum_k
    a[b, i, k] * c[b, k, j] with j contiguous in c and out. The default order reads c down a column (stride
    S or D floats) for every output element; with the reduction moved outside j, each step streams one
    contiguous row of c into an output row that stays in L1, and LLVM vectorises the j loop."""

    def apply(self, func, target, tunable):
        found = _main_and_epilogue(self, func, target)
        if found is None:
            return None
        sch, infos = found
        main = infos[0]
        kinds = main.dom_kind()
        if len(kinds) < 4 or kinds[-1] != "R" or "R" in kinds[:-1]:
            return None                         # batched: >= 3 spatial dims, one trailing reduction
        *outer, last, red = sch.get_loops(main.block_rv)
        sch.reorder(red, last)
        rows = sch.fuse(*outer)
        if len(infos) == 2:
            sch.reverse_compute_at(infos[1].block_rv, rows)
        sch.parallel(rows)
        sch.decompose_reduction(main.block_rv, red)
        return sch


class ParallelSpatial(CPUScheduleRule):
    min_parallel_work = 1 << 14          # elements (x reduction length) below which a kernel stays serial

    @staticmethod
    def _inner_work(sch, info) -> int:
        work = 1
        for it in info.iters:
            if it.kind != "S":
                ext = _extent(sch, it.loop_rv)
                work *= ext if ext is not None else 64
        return work

    def apply(self, func, target, tunable):
        found = _blocks(self, func, target)
        if found is None:
            return None
        sch, infos = found[0], found[1] or normalize_prim_func(found[0])
        if not infos:
            return None
        for info in infos:
            lead = []
            for it in info.iters:
                if it.kind != "S":
                    break
                lead.append(it.loop_rv)
            if not lead:
                continue
            fused = sch.fuse(*lead) if len(lead) > 1 else lead[0]
            ext = _extent(sch, fused)
            if ext is not None and ext * self._inner_work(sch, info) < self.min_parallel_work:
                continue                        # a thread-pool launch costs more than the loop
            sch.parallel(fused)
        return sch


def rules(threads: int = 0) -> list:
    return [DecodeGemv(), BatchedReductionOutside(), dl.cpu.GEMV(), dl.cpu.Reduction(), ParallelSpatial()]
