"""One way in to model export: blocks, block chains and whole subnets, to ONNX, TFLite or ``.pt2`` bytes.

Exports are deterministic: the same block, format, precision, seed and exporter version always give the same bytes,
which is what lets :class:`profiler.artifacts.ArtifactCache` and the agents' model caches address models by
their sha256. Every function here takes picklable arguments so a process pool can run it.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from torch import nn

from layers import block_input_shape
from space import Block
from space.precision import check_precision

from .builders import build_block, build_blocks, build_from_net_config, build_subnet
from .quantize import QUANTIZE_VERSION, calibration_inputs
from .vocabulary import EXPORT_PRECISIONS, FORMAT_SUFFIX, FORMATS, check_format

__all__ = [
    "FORMATS",
    "FORMAT_SUFFIX",
    "ModelFormat",
    "check_format",
    "export_block",
    "export_blocks",
    "export_module",
    "export_net_config",
    "export_pool",
    "export_subnet",
    "exporter_version",
]

logger = logging.getLogger(__name__)

ModelFormat = Literal["onnx", "tflite", "pt2"]


def export_pool(max_workers: int) -> cf.ProcessPoolExecutor:
    """A process pool to run the exporters in, off the caller's threads.

    Spawned, not forked: the caller's threads (agent streams, rich's refresh) may hold locks when it starts.
    Each worker drops its stderr: ai-edge-quantizer draws a tqdm bar for every model it calibrates (TFLite
    int8: every whole network, blocks with many ops), which would tear through the caller's progress
    display; an export's errors come back through its future.
    """
    return cf.ProcessPoolExecutor(max_workers=max_workers, mp_context=multiprocessing.get_context("spawn"),
                                  initializer=_drop_stderr)


def _drop_stderr() -> None:
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - open for the worker's life


def _check_precision(fmt: str, precision: str) -> str:
    """``precision`` if ``fmt``'s exporter writes it (one line naming those it does, else)."""
    return check_precision(precision, EXPORT_PRECISIONS[fmt], f"the precision of a {fmt} export")


def exporter_version(fmt: str, precision: str = "fp32") -> str:
    """Version string of the exporter for ``fmt`` at ``precision``; it changes whenever those bytes change."""
    if check_format(fmt) == "onnx":
        from .export_onnx import ONNX_EXPORTER_VERSION as version
    elif fmt == "pt2":
        from .export_pt2 import PT2_EXPORTER_VERSION as version
    else:
        from .export_tflite import TFLITE_EXPORTER_VERSION as version
    if _check_precision(fmt, precision) == "fp32":
        return version
    return f"{version}+{precision}-{QUANTIZE_VERSION}"


def export_module(
    module: nn.Module, input_shape: Sequence[int], fmt: str, precision: str = "fp32", seed: int = 0,
    calib_dir: str | os.PathLike[str] | None = None,
) -> bytes:
    """Export a module made of :mod:`layers` (a block module or a ``SubnetModel``) to ``fmt`` at ``precision``.

    Args:
        module: A module made of :mod:`layers`, in eval mode.
        input_shape: NCHW input shape of the torch module (TFLite models take its NHWC transpose).
        fmt: One of :data:`FORMATS`.
        precision: One of :data:`space.precision.PRECISIONS` that ``fmt``'s exporter writes
            (:data:`profiler.vocabulary.EXPORT_PRECISIONS`); see :mod:`profiler.quantize` for the recipes.
        seed: Seeds the int8 calibration inputs.
        calib_dir: Image folder for int8 calibration of models that take an image.

    Returns:
        The serialized model.

    Raises:
        ValueError: ``fmt`` or ``precision`` is unknown, or ``fmt`` is not written at ``precision``.
        TypeError: The module is not a :mod:`layers` module.
    """
    _check_precision(check_format(fmt), precision)
    inputs = calibration_inputs(input_shape, seed=seed, image_dir=calib_dir) if precision == "int8" else []
    if check_format(fmt) == "onnx":
        from .export_onnx import to_onnx_model
        from .quantize import quantize_onnx

        return quantize_onnx(to_onnx_model(module, input_shape), precision, inputs).SerializeToString()
    if fmt == "pt2":
        from .export_pt2 import export_pt2

        return export_pt2(module, input_shape, precision)
    from .export_tflite import export_tflite
    from .quantize import quantize_tflite

    return quantize_tflite(export_tflite(module, input_shape), precision, inputs)


def export_block(
    block: Block, fmt: str, seed: int = 0, precision: str = "fp32", calib_dir: str | os.PathLike[str] | None = None
) -> bytes:
    """Build one block's module (weights fixed by ``seed``) and export it.

    Args:
        block: The block.
        fmt: One of :data:`FORMATS`.
        seed: Weight seed (and int8 calibration seed).
        precision: One of :data:`space.precision.PRECISIONS`.
        calib_dir: Image folder for int8 calibration (used by the first conv, whose input is the image).

    Returns:
        The serialized model; its input is :func:`layers.block_input_shape` (NHWC for TFLite).
    """
    check_format(fmt)
    data = export_module(build_block(block, seed=seed), block_input_shape(block), fmt, precision, seed, calib_dir)
    logger.debug("exported %s as %s %s: %d bytes", block.key, fmt, precision, len(data))
    return data


def export_blocks(blocks: Sequence[Block], fmt: str, seed: int = 0, precision: str = "fp32") -> bytes:
    """Export a chain of blocks (run order) as one model; see :func:`profiler.builders.build_blocks`."""
    check_format(fmt)
    return export_module(build_blocks(blocks, seed=seed), block_input_shape(blocks[0]), fmt, precision, seed)


def export_subnet(
    space: Any, arch: Any, fmt: str, seed: int = 0, precision: str = "fp32",
    calib_dir: str | os.PathLike[str] | None = None,
) -> bytes:
    """Export a whole subnet of ``space`` (an arch dict or ``Subnet``) as one model of the same blocks the LUT times.

    At int8 it is quantized with the same recipe as the blocks (see :mod:`profiler.quantize`).
    """
    check_format(fmt)
    model = build_subnet(space, arch, seed=seed)
    return export_module(model, model.input_shape, fmt, precision, seed, calib_dir)


def export_net_config(
    cfg: Mapping[str, Any] | str | os.PathLike[str], resolution: int, fmt: str, seed: int = 0,
    precision: str = "fp32", calib_dir: str | os.PathLike[str] | None = None,
) -> bytes:
    """Export the network of an OFA ``net.config`` (dict or path) at ``resolution`` as one model."""
    check_format(fmt)
    model = build_from_net_config(cfg, resolution, seed=seed)
    return export_module(model, model.input_shape, fmt, precision, seed, calib_dir)
