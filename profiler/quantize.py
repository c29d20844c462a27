"""Reduced-precision versions of exported models: int8 and fp16, for ONNX and TFLite.

One recipe serves blocks and whole subnets alike, so a LUT of blocks and the end-to-end models that
validate it are quantized the same way:

- **ONNX int8**: static QDQ quantization with onnxruntime's tools (MinMax calibration, per-channel int8
  weights, uint8 activations), then *integer I/O*: the model takes and returns uint8 (see :func:`_integer_io`). A block then costs what it costs inside a quantized
  network, where each activation is quantized once; the float boundary happens once per network, not once
  per block (:func:`float_boundary` keeps it, to measure that term).
- **TFLite int8**: full-integer static quantization with ai-edge-quantizer (int8 weights and activations,
  int8 I/O).
- **ONNX fp16**: weights and arithmetic in float16, float32 inputs and outputs (onnxruntime's float16 tool).
- **TFLite fp16**: float16 conv and fully-connected weights dequantized on load (ai-edge-quantizer's float
  casting), what the TFLite converter's float16 mode writes and what GPU delegates run in half precision.

Calibration inputs are seeded standard-normal tensors (the scale of normalized images and of the blocks'
activations), or real images from a folder for models that take an image (3 channels).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
import numpy as np
import onnx

# The one definition of precisions, re-exported here for the exporters' callers.
from space.precision import PRECISIONS, Precision, check_precision

__all__ = [
    "CALIBRATION_SAMPLES",
    "PRECISIONS",
    "QUANTIZE_VERSION",
    "Precision",
    "calibration_inputs",
    "check_precision",
    "float_boundary",
    "list_images",
    "onnx_io_quantization",
    "quantize_onnx",
    "quantize_tflite",
    "unsupported_precision",
]

logger = logging.getLogger(__name__)

#: Bumped whenever the recipe (and so the bytes) of a reduced-precision export changes.
QUANTIZE_VERSION = "q1"
#: Calibration tensors per model: MinMax ranges settle within a few samples of the same distribution.
CALIBRATION_SAMPLES = 8
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
# ImageNet normalization, as OFA's data pipeline applies it.
_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def list_images(image_dir: str | os.PathLike[str]) -> list[Path]:
    """The image files under ``image_dir`` (recursively, sorted)."""
    return sorted(p for p in Path(image_dir).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _images(image_dir: str | os.PathLike[str], shape: Sequence[int], n: int, seed: int) -> list[np.ndarray]:
    """``n`` images from ``image_dir`` (seeded choice), center-cropped, resized and normalized to NCHW."""
    from PIL import Image

    files = list_images(image_dir)
    if not files:
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under calibration folder {str(image_dir)!r}")
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(files), size=n, replace=len(files) < n)
    _, _, h, w = shape
    out = []
    for i in picks:
        with Image.open(files[int(i)]) as img:
            img = img.convert("RGB")
            side = min(img.size)
            left, top = (img.width - side) // 2, (img.height - side) // 2
            img = img.crop((left, top, left + side, top + side)).resize((w, h), Image.BILINEAR)
            arr = (np.asarray(img, dtype=np.float32) / 255.0 - _MEAN) / _STD
        out.append(np.ascontiguousarray(arr.transpose(2, 0, 1)[None]))
    return out


def calibration_inputs(
    shape: Sequence[int], seed: int = 0, n: int = CALIBRATION_SAMPLES, image_dir: str | os.PathLike[str] | None = None
) -> list[np.ndarray]:
    """Calibration tensors for a model with NCHW input ``shape``.

    Args:
        shape: NCHW input shape (batch 1).
        seed: Seeds the tensors (or the choice of images).
        n: How many.
        image_dir: A folder of images, used when the input is an image (3 channels).

    Returns:
        ``n`` float32 NCHW arrays.

    Raises:
        ValueError: ``image_dir`` holds no images.
    """
    if image_dir is not None and shape[1] == 3:
        return _images(image_dir, shape, n, seed)
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(tuple(shape), dtype=np.float32) for _ in range(n)]


# Machines (``platform.machine()`` as an agent reports it) whose onnxruntime CPU provider lacks fp16 kernels.
_X86 = frozenset({"x86_64", "amd64", "i386", "i686", "x86"})


def unsupported_precision(runtime: str, precision: str, machine: str, options: Mapping[str, str]) -> str | None:
    """Why ``runtime`` on ``machine`` cannot time ``precision`` models faithfully, or None when it can.

    onnxruntime's CPU execution provider on x86 registers no fp16 kernels for these blocks' ops: it inserts
    casts and computes in fp32 (seen in its optimized graph, onnxruntime 1.32 on a Xeon with AVX512-FP16),
    so an "fp16" LUT there would time fp32 plus casts. Its ARM64 build has fp16 kernels, and GPU providers run
    fp16 natively.
    """
    providers = [p for p in options.get("providers", "CPUExecutionProvider").split(",") if p]
    if (runtime == "onnxruntime" and precision == "fp16" and machine.lower() in _X86
            and providers == ["CPUExecutionProvider"]):
        return (f"onnxruntime's CPU provider on {machine} has no fp16 kernels (it would run the fp16 graph in fp32 "
                "behind casts); use a GPU provider (--option providers=CUDAExecutionProvider) or fp32/int8")
    return None


# -- ONNX -----------------------------------------------------------------------------------


def _calibration_reader(name: str, inputs: Sequence[np.ndarray]):  # noqa: ANN202 - onnxruntime's reader type
    from onnxruntime.quantization import CalibrationDataReader

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(inputs)

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self._it, None)
            return None if x is None else {name: x}

    return _Reader()


def _int8_qdq(model: onnx.ModelProto, inputs: Sequence[np.ndarray]) -> onnx.ModelProto:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    source = onnx.ModelProto()
    source.CopyFrom(model)  # quantize_static moves the initializers of the model it is given to external data
    # The exporters' graphs are already what onnxruntime's quantization pre-processing makes (BN folded,
    # static shapes); the mark stops quantize_static from logging that advice for every block.
    onnx.helper.set_model_props(source, {"onnx.quant.pre_process": "onnxruntime.quant"})
    with tempfile.TemporaryDirectory(prefix="lutnas-quant-") as tmp:
        out = os.path.join(tmp, "int8.onnx")
        quantize_static(
            source, out, _calibration_reader(model.graph.input[0].name, inputs),
            quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,  # u8s8: the fast path on x86 and ARM
        )
        return onnx.load(out)


def _uint8_params(lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """Asymmetric uint8 (scale, zero point) for the range [lo, hi], as onnxruntime's MinMax calibration picks."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = (hi - lo) / 255.0 or 1.0
    return np.array(scale, dtype=np.float32), np.array(round(-lo / scale), dtype=np.uint8)


def _float_range(model: onnx.ModelProto, inputs: Sequence[np.ndarray]) -> tuple[float, float]:
    """Range of the float model's output over the calibration inputs."""
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    name = model.graph.input[0].name
    ys = [session.run(None, {name: x})[0] for x in inputs]
    return float(min(y.min() for y in ys)), float(max(y.max() for y in ys))


def _integer_io(qdq: onnx.ModelProto, fp32: onnx.ModelProto, inputs: Sequence[np.ndarray]) -> onnx.ModelProto:
    """Make a QDQ model take and return uint8: a block as it runs inside a quantized network.

    The quantized tensor between two blocks is produced once, by the block that computes it: a block
    drops its input QuantizeLinear (a DequantizeLinear is added where a float op such as Flatten reads
    the input), and drops its output DequantizeLinear (a QuantizeLinear is added where a float op such as
    HardSwish, which onnxruntime runs in float, computes the output).
    """
    from onnx import helper, numpy_helper

    g = qdq.graph
    inp, outp = g.input[0].name, g.output[0].name
    quants = [n for n in g.node if n.op_type == "QuantizeLinear" and n.input[0] == inp]
    if quants:
        init = {t.name: t for t in g.initializer}
        scale, zero = (numpy_helper.to_array(init[quants[0].input[i]]) for i in (1, 2))
    else:
        scale, zero = _uint8_params(float(min(x.min() for x in inputs)), float(max(x.max() for x in inputs)))
    renamed = {q.output[0]: inp for q in quants}
    for q in quants:
        g.node.remove(q)
    float_readers = [n for n in g.node if inp in n.input]
    for node in g.node:
        node.input[:] = [renamed.get(v, v) for v in node.input]
    if float_readers:
        g.initializer.extend([numpy_helper.from_array(scale, f"{inp}_scale"), numpy_helper.from_array(zero, f"{inp}_zero")])
        for node in float_readers:
            node.input[:] = [f"{inp}_float" if v == inp else v for v in node.input]
        g.node.insert(0, helper.make_node("DequantizeLinear", [inp, f"{inp}_scale", f"{inp}_zero"], [f"{inp}_float"],
                                          name=f"{inp}_DequantizeLinear"))
    producer = next(n for n in g.node if outp in n.output)
    if producer.op_type == "DequantizeLinear":
        g.node.remove(producer)
        for node in g.node:
            node.output[:] = [outp if v == producer.input[0] else v for v in node.output]
    else:
        scale, zero = _uint8_params(*_float_range(fp32, inputs))
        producer.output[:] = [f"{outp}_float" if v == outp else v for v in producer.output]
        g.initializer.extend([numpy_helper.from_array(scale, f"{outp}_scale"), numpy_helper.from_array(zero, f"{outp}_zero")])
        g.node.append(helper.make_node("QuantizeLinear", [f"{outp}_float", f"{outp}_scale", f"{outp}_zero"], [outp],
                                       name=f"{outp}_QuantizeLinear"))
    g.input[0].type.tensor_type.elem_type = onnx.TensorProto.UINT8
    g.output[0].type.tensor_type.elem_type = onnx.TensorProto.UINT8
    return qdq


def quantize_onnx(model: onnx.ModelProto, precision: str, inputs: Sequence[np.ndarray] = ()) -> onnx.ModelProto:
    """The ``precision`` version of a float32 ONNX model (fp32 returns it unchanged).

    Args:
        model: The float32 model (one input, one output).
        precision: One of :data:`PRECISIONS`.
        inputs: Calibration inputs (int8 only); see :func:`calibration_inputs`.

    Returns:
        The converted model: int8 with uint8 I/O, or fp16 with float32 I/O.

    Raises:
        ValueError: an unknown precision, or int8 without calibration inputs.
    """
    if check_precision(precision) == "fp32":
        return model
    if precision == "fp16":
        from onnxruntime.transformers.float16 import convert_float_to_float16

        source = onnx.ModelProto()
        source.CopyFrom(model)
        return convert_float_to_float16(source, keep_io_types=True)
    if not inputs:
        raise ValueError("int8 quantization needs calibration inputs")
    return _integer_io(_int8_qdq(model, inputs), model, inputs)


def float_boundary(model: onnx.ModelProto, inputs: Sequence[np.ndarray]) -> onnx.ModelProto:
    """The int8 QDQ model with float I/O (quantize in, dequantize out): a block as timed in isolation naively.

    Used to measure the boundary term that integer I/O removes from every block of an int8 LUT.
    """
    return _int8_qdq(model, inputs)


def onnx_io_quantization(model: onnx.ModelProto) -> tuple[tuple[float, int], tuple[float, int]]:
    """(scale, zero point) of the input and of the output of an integer-I/O int8 model from :func:`quantize_onnx`."""
    from onnx import numpy_helper

    g = model.graph
    init = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    dq = next(n for n in g.node if n.op_type == "DequantizeLinear" and n.input[0] == g.input[0].name)
    q = next(n for n in g.node if n.op_type == "QuantizeLinear" and n.output[0] == g.output[0].name)
    # every reader of the uint8 input is a DequantizeLinear with the same parameters
    return ((float(init[dq.input[1]]), int(init[dq.input[2]])), (float(init[q.input[1]]), int(init[q.input[2]])))


# -- TFLite ---------------------------------------------------------------------------------


def quantize_tflite(data: bytes, precision: str, inputs: Sequence[np.ndarray] = ()) -> bytes:
    """The ``precision`` version of a float32 ``.tflite`` model (fp32 returns it unchanged).

    Args:
        data: The float32 model from :mod:`profiler.export_tflite` (one signature, input ``"input"``).
        precision: One of :data:`PRECISIONS`.
        inputs: Calibration inputs in NCHW (int8 only); they are transposed to the model's NHWC.

    Returns:
        The converted model: full-integer int8 (int8 I/O), or float16 weights with float32 compute and I/O.

    Raises:
        ValueError: an unknown precision, or int8 without calibration inputs.
        ImportError: ai-edge-quantizer is not installed.
    """
    if check_precision(precision) == "fp32":
        return data
    try:
        from ai_edge_quantizer import algorithm_manager, qtyping, quantizer, recipe
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("TFLite int8/fp16 export needs `pip install ai-edge-quantizer`") from err
    if precision == "int8":
        if not inputs:
            raise ValueError("int8 quantization needs calibration inputs")
        qz = quantizer.Quantizer(bytearray(data), recipe.static_wi8_ai8())
        samples = [{"input": np.ascontiguousarray(x.transpose(0, 2, 3, 1))} for x in inputs]
        qsvs = qz.calibrate({"serving_default": samples}, num_threads=1)
        result = qz.quantize(qsvs, enable_progress_report=False)
    else:
        qz = quantizer.Quantizer(bytearray(data))
        qz.add_weight_only_config(
            regex=".*", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED, num_bits=16,
            algorithm_key=algorithm_manager.AlgorithmName.FLOAT_CASTING,
        )
        result = qz.quantize(enable_progress_report=False)
    return bytes(result.quantized_model)
