"""``torch.export`` archives (``.pt2``) of block modules and whole subnets, for the agent's torch runtime.

The program is exported from the BN-folded module (each convolution carries the folded bias, as the ONNX and
TFLite exporters write it), NCHW, batch 1, in the precision's dtype; the archive's example input gives the
agent the input shape and dtype. Weights are plain tensors, never pickles: the agent refuses archives whose
loading would unpickle anything.

Precisions: fp32, and fp16 (weights, activations and the input in float16). There is no int8 recipe: see
:mod:`profiler.vocabulary`.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Sequence

import torch
from torch import nn

from layers import Bottleneck, ConvBNAct, fold_conv_bn
from profiler.vocabulary import EXPORT_PRECISIONS
from space.precision import FP16, FP32, check_precision

__all__ = ["PT2_EXPORTER_VERSION", "export_pt2"]

#: Bumped whenever the program this module exports for the same module changes; torch's version is part of it
#: because the archive's layout and its serialized graph follow torch's.
PT2_EXPORTER_VERSION = f"pt2-export-1-torch{torch.__version__.split('+')[0]}"
_DTYPES = {FP32: torch.float32, FP16: torch.float16}


def export_pt2(module: nn.Module, input_shape: Sequence[int], precision: str = FP32) -> bytes:
    """The ``torch.export`` archive of ``module`` (BN folded) at ``precision``.

    Args:
        module: A module made of :mod:`layers`, in eval mode (it is copied, not changed).
        input_shape: NCHW input shape.
        precision: fp32 or fp16.

    Returns:
        The archive's bytes; the same module gives the same bytes.

    Raises:
        ValueError: ``precision`` is not one this exporter writes.
    """
    dtype = _DTYPES[check_precision(precision, EXPORT_PRECISIONS["pt2"], "the precision of a pt2 export")]
    model = _folded(module).eval().to(dtype)
    example = (torch.zeros(tuple(input_shape), dtype=dtype),)
    with torch.no_grad():
        program = torch.export.export(model, example)
    buf = io.BytesIO()
    torch.export.save(program, buf)
    return buf.getvalue()


def _folded(module: nn.Module) -> nn.Module:
    """A copy of ``module`` whose convolutions carry their BatchNorm (what a deployed network runs)."""
    model = copy.deepcopy(module)
    for layer in model.modules():
        if isinstance(layer, ConvBNAct) and layer.bn is not None:
            layer.conv = _conv_with_bias(layer.conv, layer.bn)
            layer.bn = None
        elif isinstance(layer, Bottleneck) and layer.downsample is not None:
            # the shortcut's conv and BN are plain torch layers (OFA's key layout), not a ConvBNAct
            layer.downsample.conv = _conv_with_bias(layer.downsample.conv, layer.downsample.bn)
            layer.downsample.bn = nn.Identity()
    return model


def _conv_with_bias(old: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    weight, bias = fold_conv_bn(old, bn)
    conv = nn.Conv2d(old.in_channels, old.out_channels, old.kernel_size, old.stride, old.padding,
                     groups=old.groups, bias=True)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(weight))
        conv.bias.copy_(torch.from_numpy(bias))
    return conv
