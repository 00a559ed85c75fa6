"""Read a saved .mlpackage back on any OS (no Core ML runtime): its interface and its MIL program.

Steps: MLModel(path, skip_model_load=True) -> spec (protobuf) -> interface(): inputs / outputs / states
with shapes, dtypes and flexible ranges -> load_program(): coremltools' milproto loader rebuilds the MIL
program with its weights read from Data/com.apple.CoreML/weights/weight.bin -> compressed_weights():
every constexpr op (blockwise-quantized or palettized weight) dequantized with numpy, by the torch
parameter it came from.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

WEIGHTS_DIR = "Data/com.apple.CoreML/weights"


def load_model(path: Path):
    import coremltools as ct
    return ct.models.MLModel(str(path), skip_model_load=True)


def _array(ft) -> dict:
    """FeatureType (multiArrayType or stateType.arrayType) -> {shape, dtype, range}."""
    from coremltools.proto import FeatureTypes_pb2 as ft_pb
    arr = ft.stateType.arrayType if ft.WhichOneof("Type") == "stateType" else ft.multiArrayType
    dtype = ft_pb.ArrayFeatureType.ArrayDataType.Name(arr.dataType).lower()
    ranges = [[int(r.lowerBound), int(r.upperBound)] for r in arr.shapeRange.sizeRanges]
    return {"shape": list(arr.shape), "dtype": dtype, "range": ranges or None}


def interface(path: Path) -> dict:
    """{"inputs": {name: {shape, dtype, range}}, "outputs": {...}, "states": {...}, "spec_version": int,
    "metadata": {key: value}} of a saved model."""
    spec = load_model(path).get_spec()
    desc = spec.description
    return {
        "spec_version": int(spec.specificationVersion),
        "inputs": {f.name: _array(f.type) for f in desc.input},
        "outputs": {f.name: _array(f.type) for f in desc.output},
        "states": {f.name: _array(f.type) for f in desc.state},
        "metadata": dict(desc.metadata.userDefined),
    }


def load_program(path: Path):
    """The MIL program of a saved .mlpackage (pymil Program); its const values are numpy arrays."""
    from coremltools.converters.mil.frontend.milproto.load import load
    spec = load_model(path).get_spec()
    return load(spec, spec.specificationVersion, os.path.join(str(path), WEIGHTS_DIR))


# ---- compressed weights -------------------------------------------------------------------------

def _blockwise(scale: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Broadcast a per-block tensor [d0/b0, d1/b1, ...] to `shape` by repeating along each axis."""
    for axis, (n, m) in enumerate(zip(shape, scale.shape)):
        if m != n:
            scale = np.repeat(scale, n // m, axis=axis)
    return scale


def dequantize(op_type: str, inputs: dict[str, np.ndarray]) -> np.ndarray:
    """Float32 value of an iOS 18 constexpr weight op, from its stored inputs."""
    if op_type == "constexpr_blockwise_shift_scale":        # (data - offset) * scale, blockwise
        data = inputs["data"].astype(np.float32)
        offset = inputs.get("offset")
        if offset is not None:
            data = data - _blockwise(offset.astype(np.float32), data.shape)
        return data * _blockwise(inputs["scale"].astype(np.float32), data.shape)
    if op_type == "constexpr_lut_to_dense":                  # lut[block..., index, vector]
        idx, lut = inputs["indices"].astype(np.int64), inputs["lut"].astype(np.float32)
        if lut.shape[-1] != 1:
            raise NotImplementedError("vector palettization (vector_size > 1)")
        table = lut[..., 0]                                  # [d0/b0, d1/b1, 2**nbits]
        rank = idx.ndim
        block = [idx.shape[a] // table.shape[a] for a in range(rank)]
        grids = np.meshgrid(*[np.arange(idx.shape[a]) // block[a] for a in range(rank)], indexing="ij")
        return table[tuple(grids) + (idx,)]
    raise NotImplementedError(f"constexpr op {op_type}")


def compressed_weights(program) -> dict[str, dict]:
    """{const-op name: {"op": type, "bits": storage bits, "value": float32 array, "stored": {input: array}}}
    for every compressed weight of the program's main function."""
    from coremltools.converters.mil.mil import types
    out = {}
    for op in program.functions["main"].operations:
        if not op.op_type.startswith("constexpr_"):
            continue
        stored = {name: var.val for name, var in op.inputs.items() if var is not None and var.val is not None}
        key = "data" if "data" in stored else "indices"
        bits = types.type_mapping.builtin_to_string(op.inputs[key].dtype)
        out[op.outputs[0].name] = {"op": op.op_type, "storage": bits, "stored": stored,
                                   "value": dequantize(op.op_type, stored)}
    return out
