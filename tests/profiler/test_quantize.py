"""int8 and fp16 exports: numerics against the fp32 model in real onnxruntime and LiteRT sessions.

Tolerance: the relative RMS error of a reduced-precision output against the fp32 output of the same model
(``||y - y32|| / ||y32||``) is at most 5% for int8 (8-bit activations and per-channel weights leave 1.5-5% on
these blocks) and 0.5% for fp16 (~0.01-0.1%).

On an x86 CPU without VNNI, onnxruntime's u8s8 int8 kernels add pairs of products in 16 bits and saturate
(onnxruntime's quantization docs advise reduce_range there): on an AVX2-only AMD EPYC the 7x7 stride-2 block
comes out 10.7% off with the kernels and 2.2% off in the QDQ reference semantics. There the int8 numerics are
checked with graph optimizations off (every Quantize/DequantizeLinear pair in float, as the format defines it):
what this file checks is the export, not that CPU's kernels. Latency is timed with the kernels either way.
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from agent.device import int8_dot_product
from layers import block_input_shape
from profiler.artifacts import artifact_key
from profiler.builders import build_block, build_subnet
from profiler.export import export_block, export_module, exporter_version
from profiler.export_onnx import to_onnx_model
from profiler.quantize import calibration_inputs, check_precision, float_boundary, onnx_io_quantization
from space import Block, get_space

INT8_REL_RMS = 0.05
FP16_REL_RMS = 0.005

BLOCKS = [
    Block.mbconv(28, 40, 40, 240, kernel=5, stride=1, skip=True, se=True, act="relu"),
    Block.mbconv(14, 80, 112, 480, kernel=3, stride=1, skip=False, se=True, act="h_swish"),
    Block.mbconv(56, 24, 40, 72, kernel=7, stride=2, skip=False, se=False, act="relu"),
    Block.first_conv(128, 16),
    Block.fixed("final_expand", 4, 160, 4, 960),
    Block.fixed("avgpool", 4, 960, 1, 960),
    Block.fixed("feature_mix", 1, 960, 1, 1280),
    Block.fixed("classifier", 1, 1280, 1, 1000),
]


def _rel_rms(y: np.ndarray, ref: np.ndarray) -> float:
    return float(np.sqrt(np.mean((y - ref) ** 2)) / np.sqrt(np.mean(ref**2)))


@functools.cache
def _int8_kernels_saturate() -> bool:
    """Whether this is an x86 CPU whose onnxruntime u8s8 kernels saturate: it lists no int8 dot-product
    instructions (VNNI, AMX), or no flags at all. Read once per run."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    cpuinfo = Path("/proc/cpuinfo")
    return int8_dot_product(cpuinfo.read_text() if cpuinfo.is_file() else "") in ("none", "")


def _ort(data: bytes, reference_qdq: bool = False) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    if reference_qdq:  # no fusing of QDQ pairs into integer kernels
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])


def _test_input(shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(123).standard_normal(shape, dtype=np.float32)  # not a calibration input


def _onnx_outputs(block: Block, precision: str) -> tuple[np.ndarray, np.ndarray]:
    shape = block_input_shape(block)
    x = _test_input(shape)
    ref = _ort(export_block(block, "onnx")).run(None, {"input": x})[0]
    data = export_block(block, "onnx", precision=precision)
    if precision != "int8":
        return _ort(data).run(None, {"input": x})[0], ref
    (s_in, z_in), (s_out, z_out) = onnx_io_quantization(onnx.load_from_string(data))
    xq = np.clip(np.round(x / s_in) + z_in, 0, 255).astype(np.uint8)
    yq = _ort(data, reference_qdq=_int8_kernels_saturate()).run(None, {"input": xq})[0]
    assert yq.dtype == np.uint8  # integer I/O: no per-block quantize/dequantize
    return (yq.astype(np.float32) - z_out) * s_out, ref


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.kind)
def test_onnx_int8_block_within_quantization_error(block: Block) -> None:
    y, ref = _onnx_outputs(block, "int8")
    assert _rel_rms(y, ref) <= INT8_REL_RMS


@pytest.mark.parametrize("block", BLOCKS[:2], ids=lambda b: b.kind)
def test_onnx_fp16_block_keeps_float32_io(block: Block) -> None:
    y, ref = _onnx_outputs(block, "fp16")
    assert y.dtype == np.float32
    assert _rel_rms(y, ref) <= FP16_REL_RMS
    model = onnx.load_from_string(export_block(block, "onnx", precision="fp16"))
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)


def _litert(data: bytes):
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=data, num_threads=1)
    interp.allocate_tensors()
    return interp


def _tflite_run(data: bytes, x_nhwc: np.ndarray) -> np.ndarray:
    interp = _litert(data)
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    if inp["dtype"] == np.int8:
        scale, zero = inp["quantization"]
        x_nhwc = np.clip(np.round(x_nhwc / scale) + zero, -128, 127).astype(np.int8)
    interp.set_tensor(inp["index"], x_nhwc)
    interp.invoke()
    y = interp.get_tensor(out["index"])
    if out["dtype"] == np.int8:
        scale, zero = out["quantization"]
        y = (y.astype(np.float32) - zero) * scale
    return y


@pytest.mark.parametrize("precision,tol", [("int8", INT8_REL_RMS), ("fp16", FP16_REL_RMS)])
@pytest.mark.parametrize("block", BLOCKS[:2], ids=lambda b: b.kind)
def test_tflite_block_within_tolerance(block: Block, precision: str, tol: float) -> None:
    x = _test_input(block_input_shape(block)).transpose(0, 2, 3, 1).copy()
    ref = _tflite_run(export_block(block, "tflite"), x)
    data = export_block(block, "tflite", precision=precision)
    dtype = _litert(data).get_input_details()[0]["dtype"]
    assert dtype == (np.int8 if precision == "int8" else np.float32)  # int8 is full-integer
    assert _rel_rms(_tflite_run(data, x), ref) <= tol


def test_int8_subnet_uses_the_block_recipe(one_torch_thread: None) -> None:
    space = get_space("ofa-mbv3-w1.0")
    arch = {"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 128}
    model = build_subnet(space, arch)
    data = export_module(model, model.input_shape, "onnx", "int8")
    graph = onnx.load_from_string(data).graph
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert sum(n.op_type == "QuantizeLinear" for n in graph.node) > 10
    _ort(data)  # loads


def test_exports_are_deterministic_and_keyed_by_precision() -> None:
    block = BLOCKS[0]
    assert export_block(block, "onnx", precision="int8") == export_block(block, "onnx", precision="int8")
    assert export_block(block, "tflite", precision="int8") == export_block(block, "tflite", precision="int8")
    keys = {artifact_key(block, "onnx", precision=p) for p in ("fp32", "fp16", "int8")}
    assert len(keys) == 3
    assert exporter_version("onnx") == exporter_version("onnx", "fp32")  # fp32 caches stay valid
    assert "int8" in exporter_version("tflite", "int8")


def test_float_boundary_adds_quantize_and_dequantize() -> None:
    block = BLOCKS[1]
    shape = block_input_shape(block)
    model = float_boundary(to_onnx_model(build_block(block), shape), calibration_inputs(shape, n=2))
    assert model.graph.node[0].op_type in ("QuantizeLinear", "DequantizeLinear")
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert _ort(model.SerializeToString()).run(None, {"input": _test_input(shape)})[0].dtype == np.float32


def test_calibration_from_an_image_folder(tmp_path) -> None:
    from PIL import Image

    for i in range(3):
        Image.fromarray(np.full((40, 60, 3), 60 * i, dtype=np.uint8)).save(tmp_path / f"{i}.png")
    images = calibration_inputs((1, 3, 32, 32), n=4, image_dir=tmp_path)
    assert [x.shape for x in images] == [(1, 3, 32, 32)] * 4
    assert calibration_inputs((1, 16, 8, 8), n=2, image_dir=tmp_path)[0].shape == (1, 16, 8, 8)  # not an image
    with pytest.raises(ValueError, match="no images"):
        calibration_inputs((1, 3, 32, 32), image_dir=tmp_path / "empty")


def test_unknown_precision_is_refused() -> None:
    with pytest.raises(ValueError, match="^precision must be one of fp32, fp16, int8, got 'int4'$"):
        check_precision("int4")
    with pytest.raises(ValueError, match="precision of a onnx export must be one of fp32, fp16, int8, got 'bf16'"):
        export_block(BLOCKS[0], "onnx", precision="bf16")
