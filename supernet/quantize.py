"""int8 accuracy of a subnet, simulated on the CPU with PyTorch's fake-quantization ops.

The recipe is the usual static post-training one (and the one lutnas's int8 LUTs time): batch norm
folded into the preceding convolution, weights quantized symmetric int8 per output channel, the
input of every convolution and linear layer quantized asymmetric uint8 per tensor with a range
observed on calibration images. ``torch.fake_quantize_*`` rounds exactly as int8 kernels do and
returns floats, so the quantized network runs on any backend; element-wise layers (activations,
squeeze-excite products, residual adds) stay in float, as in runtimes that fuse them into the
neighbouring integer kernels.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

import space.precision as space_precision
from space.precision import FP32, INT8

__all__ = ["PRECISIONS", "check_precision", "fake_quantize_int8"]

logger = logging.getLogger(__name__)

# What ``supernet collect --precision`` can measure: float accuracy, and int8 simulated with fake quantization
# (fp16 is not simulated).
PRECISIONS: tuple[str, ...] = (FP32, INT8)
_WEIGHT_QMAX = 127  # symmetric int8 weights: [-127, 127]
_ACT_QMAX = 255  # asymmetric uint8 activations: [0, 255]


def check_precision(precision: str, name: str = "precision") -> str:
    """``precision`` if it is one this package measures (``name``: how the message names it).

    Raises:
        ValueError: ``"precision must be one of fp32, int8, got 'fp16'"``.
    """
    return space_precision.check_precision(precision, PRECISIONS, name)


@torch.no_grad()
def fake_quantize_int8(model: nn.Module, calib_batches: Iterable[torch.Tensor]) -> nn.Module:
    """A copy of ``model`` (eval mode) that computes as its static int8 version would.

    Args:
        model: a float network in eval mode (BN statistics final, e.g. recalibrated).
        calib_batches: inputs whose activation ranges set the quantization scales.

    Returns:
        The fake-quantized copy, in eval mode; ``model`` is unchanged.

    Raises:
        ValueError: ``calib_batches`` was empty.
    """
    quantized = copy.deepcopy(model).eval()
    _fold_batch_norms(quantized)
    layers = [m for m in quantized.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    for layer in layers:
        layer.weight.copy_(_quantize_weight(layer.weight))
    ranges = {layer: [float("inf"), float("-inf")] for layer in layers}
    observers = [layer.register_forward_pre_hook(_observe(ranges[layer])) for layer in layers]
    used = 0
    for x in calib_batches:
        quantized(x)
        used += 1
    for handle in observers:
        handle.remove()
    if used == 0:
        raise ValueError("fake_quantize_int8 needs at least one calibration batch, got none")
    for layer in layers:
        layer.register_forward_pre_hook(_quantize_input(*ranges[layer]))
    logger.debug("fake-quantized %d layers on %d calibration batches", len(layers), used)
    return quantized


def _fold_batch_norms(model: nn.Module) -> None:
    # OFA's layout names a convolution and its batch norm ``conv`` and ``bn`` side by side.
    for parent in model.modules():
        conv, bn = getattr(parent, "conv", None), getattr(parent, "bn", None)
        if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
            parent.conv = fuse_conv_bn_eval(conv, bn)
            parent.bn = nn.Identity()


def _quantize_weight(weight: torch.Tensor) -> torch.Tensor:
    flat = weight.reshape(weight.shape[0], -1)
    scale = (flat.abs().amax(dim=1) / _WEIGHT_QMAX).clamp_min(1e-12)
    zero = torch.zeros(weight.shape[0], dtype=torch.int32)
    return torch.fake_quantize_per_channel_affine(weight, scale, zero, 0, -_WEIGHT_QMAX, _WEIGHT_QMAX)


def _observe(bounds: list[float]):
    def hook(_module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        bounds[0] = min(bounds[0], float(inputs[0].min()))
        bounds[1] = max(bounds[1], float(inputs[0].max()))

    return hook


def _quantize_input(low: float, high: float):
    # The range must hold 0 exactly (zero padding); the zero point is an integer in [0, 255].
    low, high = min(low, 0.0), max(high, 0.0)
    scale = max((high - low) / _ACT_QMAX, 1e-12)
    zero_point = int(round(-low / scale))

    def hook(_module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        x = torch.fake_quantize_per_tensor_affine(inputs[0], scale, zero_point, 0, _ACT_QMAX)
        return (x, *inputs[1:])

    return hook
