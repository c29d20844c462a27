"""Multiply-accumulates and parameter counts of a subnet, computed from its arch without building it.

MACs count the convolutions and the classifier (BN, activations, pooling and the SE rescale are not
counted), the usual convention for MobileNet-family FLOP figures. Parameters count every learnable
tensor of the static subnet (conv and linear weights, biases, BN affine terms).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from space import Subnet, make_divisible, se_mid_chs
from supernet.elastic_layers import DynamicMBConvLayer
from supernet.ofa_mbv3 import STAGE_SE, STAGE_STRIDES, SupernetConfig

__all__ = ["count_module_macs", "count_parameters", "subnet_complexity"]


def _out_side(side: int, stride: int) -> int:
    # Same-padding conv with an odd kernel: ceil(side / stride).
    return (side - 1) // stride + 1


def subnet_complexity(config: SupernetConfig, arch: Mapping[str, Any] | Subnet) -> tuple[int, int]:
    """MACs at the arch's resolution and the parameter count of its static subnet.

    Args:
        config: the supernet the subnet comes from.
        arch: the subnet (``r`` required).

    Returns:
        ``(macs, params)``.
    """
    sub = Subnet.parse(arch)
    widths = [make_divisible(w * config.width_mult, 8) for w in config.base_stage_width]
    stem, first_block, *stage_chs = widths[:7]
    final_expand, feature_mix = widths[7], widths[8]
    max_depth = max(config.depth_list)

    side = _out_side(sub.r, 2)
    macs = side * side * 3 * stem * 9
    params = 3 * stem * 9 + 2 * stem
    # First block: depthwise 3x3 then project, no expand.
    macs += side * side * stem * 9 + side * side * stem * first_block
    params += stem * 9 + 2 * stem + stem * first_block + 2 * first_block
    in_chs = first_block
    for stage, (out_chs, stride, se) in enumerate(zip(stage_chs, STAGE_STRIDES, STAGE_SE)):
        for j in range(sub.d[stage]):
            slot = stage * max_depth + j
            kernel, ratio = sub.ks[slot], sub.e[slot]
            mid = DynamicMBConvLayer.mid_chs(in_chs, ratio)
            out_side = _out_side(side, stride if j == 0 else 1)
            macs += side * side * in_chs * mid
            macs += out_side * out_side * mid * kernel * kernel
            macs += out_side * out_side * mid * out_chs
            params += in_chs * mid + 2 * mid + mid * kernel * kernel + 2 * mid + mid * out_chs + 2 * out_chs
            if se:
                squeeze = se_mid_chs(mid)
                macs += 2 * mid * squeeze
                params += 2 * mid * squeeze + squeeze + mid
            side = out_side
            in_chs = out_chs
    macs += side * side * in_chs * final_expand + final_expand * feature_mix + feature_mix * config.n_classes
    params += in_chs * final_expand + 2 * final_expand + final_expand * feature_mix
    params += feature_mix * config.n_classes + config.n_classes
    return int(macs), int(params)


def count_parameters(model: nn.Module) -> int:
    """Number of learnable scalars in ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_module_macs(model: nn.Module, resolution: int) -> int:
    """MACs of ``model`` on one ``3×resolution×resolution`` image, counted with forward hooks.

    Counts ``nn.Conv2d`` and ``nn.Linear`` only (same convention as :func:`subnet_complexity`).
    """
    import torch

    total = 0

    def conv_hook(module: nn.Conv2d, _inputs: Any, output: torch.Tensor) -> None:
        nonlocal total
        k_h, k_w = module.kernel_size
        total += output.numel() // output.shape[0] * (module.in_channels // module.groups) * k_h * k_w

    def linear_hook(module: nn.Linear, _inputs: Any, output: torch.Tensor) -> None:
        nonlocal total
        total += module.in_features * module.out_features

    handles = []
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            handles.append(module.register_forward_hook(conv_hook))
        elif isinstance(module, nn.Linear):
            handles.append(module.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, resolution, resolution))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return total
