"""What the profiler can build and have timed: runtimes, model formats, and which runtime x format x precision go together.

Every combination here has an exporter that writes it and a runtime that times it as such; everything else is
refused by :func:`check_combination` before any work starts (``ProfileSettings.validate``, ``validate`` and the
command line all call it). Precisions themselves are defined once in :mod:`space.precision`.

======================  ======  ==================  ===========================================
runtime                 format  precisions          note
======================  ======  ==================  ===========================================
onnxruntime             onnx    fp32, fp16, int8    fp16 on an x86 CPU provider is refused per device
tflite (LiteRT)         tflite  fp32, fp16, int8
benchmark_model         tflite  fp32, fp16, int8
torch                   pt2     fp32, fp16          fp16 needs ``device=cuda``; int8 never
======================  ======  ==================  ===========================================

torch at int8 is refused: a quantized ``torch.export`` program holds quantize/dequantize pairs around float
operators, which eager torch runs as written, so it would time float work plus conversions, not int8 kernels.
torch at fp16 on a CPU is refused for the same reason as onnxruntime's: without native half-precision
arithmetic the kernels compute in fp32 behind conversions.
"""

from __future__ import annotations

from collections.abc import Mapping

from space.choices import check_choice, describe_choices
from space.precision import FP16, FP32, PRECISIONS

__all__ = [
    "COMBINATIONS",
    "EXPORT_PRECISIONS",
    "FORMATS",
    "FORMAT_FOR_RUNTIME",
    "FORMAT_SUFFIX",
    "RUNTIMES",
    "RUNTIME_FORMATS",
    "check_combination",
    "check_format",
]

#: Runtimes the profiler drives on an agent (the agent's names).
RUNTIMES: tuple[str, ...] = ("onnxruntime", "tflite", "torch", "benchmark_model")
#: Model formats the exporters write.
FORMATS: tuple[str, ...] = ("onnx", "tflite", "pt2")
#: File suffix of each format.
FORMAT_SUFFIX: Mapping[str, str] = {"onnx": ".onnx", "tflite": ".tflite", "pt2": ".pt2"}
#: The formats each runtime times, its default first.
RUNTIME_FORMATS: Mapping[str, tuple[str, ...]] = {
    "onnxruntime": ("onnx",),
    "tflite": ("tflite",),
    "torch": ("pt2",),
    "benchmark_model": ("tflite",),
}
#: The model format each runtime times by default.
FORMAT_FOR_RUNTIME: Mapping[str, str] = {runtime: formats[0] for runtime, formats in RUNTIME_FORMATS.items()}
#: The precisions each format's exporter writes (see :mod:`profiler.quantize` and :mod:`profiler.export_pt2`).
EXPORT_PRECISIONS: Mapping[str, tuple[str, ...]] = {"onnx": PRECISIONS, "tflite": PRECISIONS, "pt2": (FP32, FP16)}
# (runtime, precision) -> (option, the values it must start with): precisions a runtime honours on an accelerator only.
_ACCELERATOR_ONLY: Mapping[tuple[str, str], tuple[str, str, tuple[str, ...]]] = {
    ("torch", FP16): ("device", "cpu", ("cuda",)),  # option, its default, the prefixes it needs
}
#: Every valid (runtime, format, precision), in table order.
COMBINATIONS: tuple[tuple[str, str, str], ...] = tuple(
    (runtime, fmt, precision)
    for runtime in RUNTIMES
    for fmt in RUNTIME_FORMATS[runtime]
    for precision in EXPORT_PRECISIONS[fmt]
)


def check_format(fmt: str) -> str:
    """Return ``fmt`` if an exporter writes it.

    Raises:
        ValueError: ``"model format must be one of onnx, tflite, pt2, got 'pb'"``.
    """
    return check_choice("model format", fmt, FORMATS)


def check_combination(runtime: str, fmt: str, precision: str, options: Mapping[str, str] | None = None) -> str:
    """Check that ``runtime`` times ``fmt`` models at ``precision`` (with these runtime options) as such.

    Args:
        runtime: One of :data:`RUNTIMES`.
        fmt: A model format; ``""`` picks the runtime's default (:data:`FORMAT_FOR_RUNTIME`).
        precision: One of :data:`space.precision.PRECISIONS`.
        options: The runtime options of the jobs (torch's ``device`` decides whether fp16 is honest).

    Returns:
        The model format (the default when ``fmt`` is empty).

    Raises:
        ValueError: one line, ``"X must be ..., got ..."``, naming what is supported.
    """
    check_choice("runtime", runtime, RUNTIMES)
    fmt = fmt or FORMAT_FOR_RUNTIME[runtime]
    check_choice(f"the model format for runtime {runtime}", fmt, RUNTIME_FORMATS[runtime])
    check_choice(f"the precision for {runtime} ({fmt})", precision, EXPORT_PRECISIONS[fmt])
    _check_accelerator(runtime, precision, options or {})
    return fmt


def _check_accelerator(runtime: str, precision: str, options: Mapping[str, str]) -> None:
    need = _ACCELERATOR_ONLY.get((runtime, precision))
    if need is None:
        return
    option, default, prefixes = need
    value = options.get(option, default)
    if not value.startswith(prefixes):
        raise ValueError(f"{runtime}'s {option} at {precision} must be {describe_choices(prefixes)} "
                         f"(--option {option}={prefixes[0]}; a CPU is profiled at {FP32}), got {value!r}")
