"""Export a static supernet subnet through the profiler's exporters, so it matches the LUT's blocks.

``OFAMobileNetV3.get_active_subnet()`` returns a :class:`supernet.MobileNetV3` built from the supernet's own
layer classes. :func:`to_profiler_model` rebuilds the same network from :mod:`profiler.builders` modules
(from the subnet's ``net.config``, so any width works) and copies the trained weights and BN statistics into
it layer by layer. :func:`export_static_subnet` then writes it with :func:`profiler.export.export_module`:
the ONNX graph and the NHWC TFLite graph are the ones the profiler times, block for block.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import torch
from torch import nn

from profiler.builders import (
    Classifier,
    ConvBNAct,
    GlobalAvgPool,
    MBConv,
    SqueezeExcite,
    SubnetModel,
    build_from_net_config,
)
from profiler.export import check_format, export_module

if TYPE_CHECKING:
    from supernet import MobileNetV3

__all__ = ["SubnetConversionError", "export_static_subnet", "subnet_resolution", "to_profiler_model"]

logger = logging.getLogger(__name__)


class SubnetConversionError(ValueError):
    """The static subnet has a layer the profiler's modules cannot represent, or a shape differs."""


def subnet_resolution(subnet: MobileNetV3, resolution: int | None = None) -> int:
    """The input side to build for: ``resolution`` if given, else the ``r`` of the subnet's arch.

    Raises:
        ValueError: neither is set, or the value is not a positive int.
    """
    if resolution is None:
        arch = getattr(subnet, "arch", None) or {}
        r = arch.get("r")
        if isinstance(r, (list, tuple)) and len(r) == 1:
            r = r[0]
        if r is None:
            raise ValueError("resolution is required: the subnet's arch has no 'r'")
        resolution = int(r)
    if int(resolution) < 1:
        raise ValueError(f"resolution must be a positive int, got {resolution!r}")
    return int(resolution)


def _copy(dst: torch.Tensor, src: torch.Tensor, where: str) -> None:
    if tuple(dst.shape) != tuple(src.shape):
        raise SubnetConversionError(f"{where}: shape {tuple(src.shape)} in the subnet, {tuple(dst.shape)} expected")
    dst.copy_(src.detach().to(dst.dtype))


def _copy_bn(dst: nn.BatchNorm2d | None, src: nn.Module | None, where: str) -> None:
    src_bn = src if isinstance(src, nn.BatchNorm2d) else None
    if (dst is None) != (src_bn is None):
        raise SubnetConversionError(
            f"{where}: BatchNorm {'present' if src_bn is not None else 'absent'} in the subnet, "
            f"{'present' if dst is not None else 'absent'} expected"
        )
    if dst is None or src_bn is None:
        return
    for name in ("weight", "bias", "running_mean", "running_var"):
        _copy(getattr(dst, name), getattr(src_bn, name), f"{where}.{name}")
    dst.eps = float(src_bn.eps)


def _copy_conv(dst: nn.Conv2d, src: nn.Conv2d, where: str) -> None:
    if (dst.stride, dst.padding, dst.groups) != (src.stride, src.padding, src.groups):
        raise SubnetConversionError(
            f"{where}: stride/padding/groups {src.stride}/{src.padding}/{src.groups} in the subnet, "
            f"{dst.stride}/{dst.padding}/{dst.groups} expected"
        )
    _copy(dst.weight, src.weight, f"{where}.weight")
    if (dst.bias is None) != (src.bias is None):
        raise SubnetConversionError(f"{where}: conv bias {'present' if src.bias is not None else 'absent'} in the subnet")
    if dst.bias is not None:
        _copy(dst.bias, src.bias, f"{where}.bias")


def _check_act(dst: ConvBNAct, act_name: str, where: str) -> None:
    if dst.act_name != act_name:
        raise SubnetConversionError(f"{where}: activation {act_name!r} in the subnet, {dst.act_name!r} expected")


def _copy_conv_layer(dst: nn.Module, src: nn.Module, where: str) -> None:
    """supernet ``ConvLayer`` (conv, bn, act) → builders ``ConvBNAct``."""
    if not isinstance(dst, ConvBNAct):
        raise SubnetConversionError(f"{where}: expected a ConvBNAct, got {type(dst).__name__}")
    _check_act(dst, src.act_name, where)
    _copy_conv(dst.conv, src.conv, f"{where}.conv")
    _copy_bn(dst.bn, src.bn, f"{where}.bn")


def _copy_seq_conv(dst: ConvBNAct, src: nn.Sequential, act_name: str, where: str) -> None:
    """An OFA ``Sequential(conv, bn[, act])`` → builders ``ConvBNAct``."""
    _check_act(dst, act_name, where)
    _copy_conv(dst.conv, src.conv, f"{where}.conv")
    _copy_bn(dst.bn, getattr(src, "bn", None), f"{where}.bn")


def _copy_se(dst: SqueezeExcite | None, src: nn.Module | None, where: str) -> None:
    if (dst is None) != (src is None):
        raise SubnetConversionError(
            f"{where}: squeeze-excite {'present' if src is not None else 'absent'} in the subnet, "
            f"{'present' if dst is not None else 'absent'} expected"
        )
    if dst is None or src is None:
        return
    _copy_conv(dst.reduce, src.fc.reduce, f"{where}.reduce")
    _copy_conv(dst.expand, src.fc.expand, f"{where}.expand")


def _copy_block(dst: nn.Module, src: nn.Module, where: str) -> None:
    """supernet ``ResidualBlock(MBConvLayer)`` → builders ``MBConv``."""
    if not isinstance(dst, MBConv):
        raise SubnetConversionError(f"{where}: expected an MBConv, got {type(dst).__name__}")
    layer = src.conv
    if dst.has_skip != src.has_skip:
        raise SubnetConversionError(f"{where}: identity skip {src.has_skip} in the subnet, {dst.has_skip} expected")
    if (dst.expand is not None) != (layer.inverted_bottleneck is not None):
        raise SubnetConversionError(
            f"{where}: expand conv {'present' if layer.inverted_bottleneck is not None else 'absent'} in the subnet "
            f"(mid {layer.mid_chs}, in {layer.in_chs}); the profiler's MBConv has one exactly when mid != in"
        )
    if dst.expand is not None:
        _copy_seq_conv(dst.expand, layer.inverted_bottleneck, layer.act_name, f"{where}.expand")
    _copy_seq_conv(dst.dw, layer.depth_conv, layer.act_name, f"{where}.dw")
    _copy_se(dst.se, getattr(layer.depth_conv, "se", None), f"{where}.se")
    _copy_seq_conv(dst.project, layer.point_linear, "none", f"{where}.project")


def _copy_classifier(dst: nn.Module, src: nn.Module, where: str) -> None:
    if not isinstance(dst, Classifier):
        raise SubnetConversionError(f"{where}: expected a Classifier, got {type(dst).__name__}")
    _copy(dst.linear.weight, src.linear.weight, f"{where}.weight")
    _copy(dst.linear.bias, src.linear.bias, f"{where}.bias")


@torch.no_grad()
def to_profiler_model(subnet: MobileNetV3, resolution: int | None = None) -> SubnetModel:
    """Rebuild a static subnet from the profiler's block modules, with its trained weights.

    The structure comes from ``subnet.config`` (OFA's ``net.config``) through
    :func:`profiler.builders.build_from_net_config`; then every conv, BN (weights, running statistics, eps),
    squeeze-excite and classifier tensor is copied over, with shapes and layer options checked.

    Args:
        subnet: What ``OFAMobileNetV3.get_active_subnet()`` returns (or ``supernet.load_subnet``).
        resolution: Input side in pixels; defaults to the ``r`` of ``subnet.arch``.

    Returns:
        An eval-mode :class:`profiler.builders.SubnetModel` that computes the subnet's eval-mode output;
        its ``input_shape`` is ``(1, 3, resolution, resolution)``.

    Raises:
        ValueError: no resolution is known, or the config is not an OFA MobileNetV3.
        SubnetConversionError: a layer has options or shapes the profiler's modules do not match.
    """
    r = subnet_resolution(subnet, resolution)
    model = build_from_net_config(subnet.config, r)
    layers = list(model.layers)
    expected = 1 + len(subnet.blocks) + 4  # stem, blocks, final expand, pool, feature mix, classifier
    if len(layers) != expected:
        raise SubnetConversionError(f"profiler model has {len(layers)} layers; the subnet needs {expected}")
    _copy_conv_layer(layers[0], subnet.first_conv, "first_conv")
    for i, block in enumerate(subnet.blocks):
        _copy_block(layers[1 + i], block, f"blocks.{i}")
    tail = layers[1 + len(subnet.blocks) :]
    _copy_conv_layer(tail[0], subnet.final_expand_layer, "final_expand_layer")
    if not isinstance(tail[1], GlobalAvgPool):
        raise SubnetConversionError(f"pool: expected a GlobalAvgPool, got {type(tail[1]).__name__}")
    _copy_conv_layer(tail[2], subnet.feature_mix_layer, "feature_mix_layer")
    _copy_classifier(tail[3], subnet.classifier, "classifier")
    logger.debug("converted a %d-block subnet at resolution %d", len(subnet.blocks), r)
    return model.eval()


def export_static_subnet(subnet: MobileNetV3, fmt: str, resolution: int | None = None) -> bytes:
    """Export a static subnet as ONNX or TFLite bytes with the profiler's exporters.

    Args:
        subnet: The static subnet.
        fmt: ``"onnx"`` (NCHW input) or ``"tflite"`` (NHWC input, no transposes).
        resolution: Input side; defaults to the ``r`` of ``subnet.arch``.

    Returns:
        The serialized model; input ``"input"``, output ``"output"`` (the logits).

    Raises:
        ValueError: ``fmt`` is unknown or no resolution is known.
        SubnetConversionError: see :func:`to_profiler_model`.
    """
    check_format(fmt)
    model = to_profiler_model(subnet, resolution)
    return export_module(model, model.input_shape, fmt)
