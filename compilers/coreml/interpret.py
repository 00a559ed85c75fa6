"""A numpy reference interpreter for the MIL programs edgeslm's decoders convert to (a stand-in for Core
ML, which runs only on macOS): it executes the program read back from the .mlpackage, op by op.

Steps per forward: bind inputs (tokens int32 [1, T], input_pos int32 [T]) and the states -> walk the main
function's operations in order, computing each op in float32 and rounding the result to the op's declared
dtype (float16 ops round like the fp16 program, not like Core ML's kernels bit for bit) -> constexpr ops
are dequantized once at load -> coreml_update_state writes the state -> the output.

Only the op set the edgeslm decoder lowers to is implemented; an unknown op raises NotImplementedError
naming it. This checks the *converted program* (graph, constants, compressed weights, state updates),
independently of the PyTorch decoder the converter consumed.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .mil import dequantize, load_program

RUNTIME = "edgeslm numpy MIL interpreter (float32 math, rounded to each op's dtype)"


def _np_dtype(mil_type):
    from coremltools.converters.mil.mil import types
    if types.is_tensor(mil_type):
        mil_type = mil_type.get_primitive()
    return types.nptype_from_builtin(mil_type)


def _slice(x, begin, end, stride=None, begin_mask=None, end_mask=None, squeeze_mask=None):
    """MIL slice_by_index semantics -> (tuple of slices/indices for numpy, squeeze axes)."""
    idx = []
    for a in range(x.ndim):
        b = None if begin_mask is not None and begin_mask[a] else int(begin[a])
        e = None if end_mask is not None and end_mask[a] else int(end[a])
        s = 1 if stride is None else int(stride[a])
        if squeeze_mask is not None and squeeze_mask[a]:
            idx.append(b if b is not None else 0)
        else:
            idx.append(slice(b, e, s))
    return tuple(idx)


def _softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _gelu(x, mode="EXACT"):
    if mode == "TANH_APPROXIMATION":
        return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))
    from math import erf
    return 0.5 * x * (1 + np.vectorize(erf)(x / np.sqrt(2)))


def _matmul(x, y, transpose_x=False, transpose_y=False):
    if transpose_x:
        x = np.swapaxes(x, -1, -2)
    if transpose_y:
        y = np.swapaxes(y, -1, -2)
    return np.matmul(x, y)


def _reduce(fn):
    return lambda x, axes=None, keep_dims=False: fn(x, axis=None if axes is None else tuple(int(a) for a in axes),
                                                      keepdims=bool(keep_dims))


OPS = {
    "add": lambda x, y: x + y, "sub": lambda x, y: x - y, "mul": lambda x, y: x * y,
    "real_div": lambda x, y: x / y, "floor_div": lambda x, y: np.floor_divide(x, y), "pow": lambda x, y: x ** y,
    **{name: (lambda f: lambda x, y: f(x, y))(f) for name, f in (
        ("maximum", np.maximum), ("minimum", np.minimum), ("equal", np.equal), ("not_equal", np.not_equal),
        ("less", np.less), ("less_equal", np.less_equal), ("greater", np.greater),
        ("greater_equal", np.greater_equal), ("logical_and", np.logical_and), ("logical_or", np.logical_or))},
    "logical_not": lambda x: np.logical_not(x),
    "select": lambda cond, a, b: np.where(cond, a, b),
    "exp": lambda x: np.exp(x), "log": lambda x, epsilon=0.0: np.log(x + epsilon), "sqrt": lambda x: np.sqrt(x), "abs": lambda x: np.abs(x),
    "rsqrt": lambda x, epsilon=1e-12: 1.0 / np.sqrt(x + epsilon), "tanh": lambda x: np.tanh(x), "sin": lambda x: np.sin(x),
    "cos": lambda x: np.cos(x),
    "inverse": lambda x, epsilon=1e-4: 1.0 / (x + epsilon), "square": lambda x: x * x,
    "reduce_min": _reduce(np.min), "reduce_prod": _reduce(np.prod),
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)), "silu": lambda x: x / (1 + np.exp(-x)),
    "relu": lambda x: np.maximum(x, 0), "gelu": _gelu, "clip": lambda x, alpha, beta: np.clip(x, alpha, beta),
    "softmax": lambda x, axis=-1: _softmax(x, int(axis)),
    "reduce_mean": _reduce(np.mean), "reduce_sum": _reduce(np.sum), "reduce_max": _reduce(np.max),
    "linear": lambda x, weight, bias=None: x @ weight.T + (0 if bias is None else bias),
    "matmul": _matmul,
    "reshape": lambda x, shape: x.reshape([int(s) for s in shape]),
    "transpose": lambda x, perm: np.transpose(x, [int(p) for p in perm]),
    "expand_dims": lambda x, axes: np.expand_dims(x, tuple(int(a) for a in axes)),
    "squeeze": lambda x, axes=None: np.squeeze(x, None if axes is None else tuple(int(a) for a in axes)),
    "concat": lambda values, axis, interleave=False: np.concatenate([np.atleast_1d(v) for v in values], axis=int(axis)),
    "tile": lambda x, reps: np.tile(x, [int(r) for r in reps]),
    "shape": lambda x: np.array(x.shape, dtype=np.int32),
    "cast": lambda x, dtype: x,          # the output dtype rounding below does the cast
    "identity": lambda x: x,
    "fill": lambda shape, value=0.0: np.full([int(s) for s in shape], value),
    "range_1d": lambda start, end, step: np.arange(start, end, step),
    "gather": lambda x, indices, axis=0, batch_dims=0, validate_indices=False:
        np.take(x, indices.astype(np.int64), axis=int(axis)),
    "slice_by_index": lambda x, begin, end, stride=None, begin_mask=None, end_mask=None, squeeze_mask=None:
        x[_slice(x, begin, end, stride, begin_mask, end_mask, squeeze_mask)],
}


class MILProgramRunner:
    """Executes the main function of a saved .mlpackage. States persist across calls until reset()."""

    def __init__(self, mlpackage: Path):
        t0 = time.perf_counter()
        program = load_program(Path(mlpackage))
        self.fn = program.functions["main"]
        self.consts: dict[str, np.ndarray] = {}
        self.state_names: list[str] = []
        for name, var in self.fn.inputs.items():
            if var.val is None and _is_state(var):
                self.state_names.append(name)
        for op in self.fn.operations:      # constants and dequantized weights, once
            if op.op_type == "const":
                self.consts[op.outputs[0].name] = np.asarray(op.outputs[0].val)
            elif op.op_type.startswith("constexpr_"):
                stored = {k: v.val for k, v in op.inputs.items() if v is not None and v.val is not None}
                self.consts[op.outputs[0].name] = dequantize(op.op_type, stored).astype(_np_dtype(op.outputs[0].dtype))
        self.states = {n: np.zeros(self.fn.inputs[n].sym_type.wrapped_type().get_shape(),
                                   dtype=np.float16) for n in self.state_names}
        self.output_names = [o.name for o in self.fn.outputs]
        self.load_ms = (time.perf_counter() - t0) * 1e3

    def reset(self) -> None:
        for v in self.states.values():
            v[...] = 0

    def __call__(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        env: dict[str, np.ndarray] = dict(self.consts)
        for name, var in self.fn.inputs.items():
            if name in self.states:
                env[name] = self.states[name]
            else:
                env[name] = np.asarray(feeds[name]).astype(_np_dtype(var.dtype))
        for op in self.fn.operations:
            if op.op_type == "const" or op.op_type.startswith("constexpr_"):
                continue
            args = {k: ([env[x.name] for x in v] if isinstance(v, (list, tuple)) else env[v.name])
                    for k, v in op.inputs.items() if v is not None}
            out = op.outputs[0]
            if op.op_type == "read_state":
                value = self.states[op.inputs["input"].name].copy()
            elif op.op_type == "coreml_update_state":
                self.states[op.inputs["state"].name][...] = args["value"]
                value = args["value"]
            elif op.op_type == "slice_update":
                value = args["x"].copy()
                value[_slice(value, args["begin"], args["end"], args.get("stride"), args.get("begin_mask"),
                             args.get("end_mask"), args.get("squeeze_mask"))] = args["update"]
            elif op.op_type in OPS:
                floats = {k: (v.astype(np.float32) if isinstance(v, np.ndarray) and v.dtype == np.float16 else v)
                          for k, v in args.items()}
                value = OPS[op.op_type](**floats)
            else:
                raise NotImplementedError(f"MIL op '{op.op_type}' ({op.name}) is not in the numpy interpreter")
            env[out.name] = np.asarray(value).astype(_np_dtype(out.dtype))
        return {name: env[name] for name in self.output_names}


def _is_state(var) -> bool:
    from coremltools.converters.mil.mil import types
    return types.is_state(var.sym_type)


class MILSession:
    """The session interface of export/run (forward(ids, start_pos) -> logits [V] float32) over the
    numpy interpreter: the stand-in for CoreMLSession off macOS."""

    runtime = RUNTIME

    def __init__(self, mlpackage: Path, logits_name: str = "logits"):
        self.runner = MILProgramRunner(mlpackage)
        self.logits_name = logits_name
        self.load_ms = self.runner.load_ms

    def forward(self, ids: list[int], start_pos: int) -> np.ndarray:
        if start_pos == 0:
            self.runner.reset()     # a new sequence: the real session starts from a fresh MLState too
        feeds = {"tokens": np.array([ids], dtype=np.int32),
                 "input_pos": np.arange(start_pos, start_pos + len(ids), dtype=np.int32)}
        logits = self.runner(feeds)[self.logits_name]
        return logits.reshape(-1, logits.shape[-1])[-1].astype(np.float32)
