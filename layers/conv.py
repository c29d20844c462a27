"""Convolution layers of OFA-MobileNetV3: conv-BN-act, squeeze-excite, the inverted residual, the residual block.

State-dict keys follow OFA's static layers: a conv layer holds ``conv``, ``bn``, ``act``; squeeze-excite holds
``fc.reduce`` and ``fc.expand``; an inverted residual holds ``inverted_bottleneck``, ``depth_conv`` (with ``se``
after its activation) and ``point_linear``; a residual block holds ``conv`` and ``shortcut``.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
from torch import nn

from space import se_mid_chs

from .activations import HSigmoid, make_act
from .head import global_avg_pool

__all__ = ["ConvBNAct", "MBConv", "ResidualBlock", "SqueezeExcite", "fold_conv_bn", "same_padding"]


def same_padding(kernel: int) -> int:
    """Padding that keeps the spatial size at stride 1 for an odd ``kernel``.

    Raises:
        ValueError: The kernel is even.
    """
    if kernel % 2 != 1:
        raise ValueError(f"kernel must be odd, got {kernel}")
    return kernel // 2


class SqueezeExcite(nn.Module):
    """OFA squeeze-excite: mean → 1×1 conv (bias) → ReLU → 1×1 conv (bias) → h_sigmoid → multiply.

    Args:
        chs: Channels of the tensor being gated; the squeeze has :func:`space.se_mid_chs` channels.
    """

    def __init__(self, chs: int) -> None:
        super().__init__()
        self.chs = chs
        self.mid_chs = se_mid_chs(chs)
        self.fc = nn.Sequential(
            OrderedDict(
                reduce=nn.Conv2d(chs, self.mid_chs, 1, bias=True),
                relu=nn.ReLU(),
                expand=nn.Conv2d(self.mid_chs, chs, 1, bias=True),
                h_sigmoid=HSigmoid(),
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(global_avg_pool(x))


class ConvBNAct(nn.Module):
    """Conv2d (no bias) → optional BatchNorm → activation → optional squeeze-excite; padding ``kernel // 2``.

    Args:
        in_chs: Input channels.
        out_chs: Output channels.
        kernel: Square, odd kernel size.
        stride: Stride.
        groups: Convolution groups (``in_chs`` for depthwise).
        act: Activation name (see :data:`layers.ACTIVATIONS`).
        bn: Whether a BatchNorm follows the convolution.
        se: Whether a squeeze-excite follows the activation (OFA's depthwise conv carries it).
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel: int = 1,
        stride: int = 1,
        groups: int = 1,
        act: str | None = "relu",
        bn: bool = True,
        se: bool = False,
    ) -> None:
        super().__init__()
        self.in_chs = in_chs
        self.out_chs = out_chs
        self.kernel = kernel
        self.stride = stride
        self.groups = groups
        self.act_name = act or "none"
        self.conv = nn.Conv2d(in_chs, out_chs, kernel, stride, same_padding(kernel), groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_chs) if bn else None
        self.act = make_act(act)
        self.se = SqueezeExcite(out_chs) if se else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        x = self.act(x)
        return self.se(x) if self.se is not None else x

    def folded(self) -> tuple[np.ndarray, np.ndarray | None]:
        """The convolution with BN folded in: (weight OIHW, bias or None), float32; see :func:`fold_conv_bn`."""
        return fold_conv_bn(self.conv, self.bn)


class MBConv(nn.Module):
    """Inverted residual (MobileNetV2/V3) without the skip: 1×1 expand, k×k depthwise (+SE), 1×1 project.

    Args:
        in_chs: Input channels.
        mid_chs: Expanded channels; equal to ``in_chs`` means no expand conv (expand ratio 1, OFA's first block).
        out_chs: Output channels.
        kernel: Depthwise kernel size.
        stride: Depthwise stride.
        act: Activation of the expand and depthwise convs.
        se: Whether a squeeze-excite follows the depthwise conv.
    """

    def __init__(
        self,
        in_chs: int,
        mid_chs: int,
        out_chs: int,
        kernel: int = 3,
        stride: int = 1,
        act: str = "relu",
        se: bool = False,
    ) -> None:
        super().__init__()
        self.in_chs = in_chs
        self.mid_chs = mid_chs
        self.out_chs = out_chs
        self.kernel = kernel
        self.stride = stride
        self.act_name = act
        self.inverted_bottleneck = ConvBNAct(in_chs, mid_chs, 1, act=act) if mid_chs != in_chs else None
        self.depth_conv = ConvBNAct(mid_chs, mid_chs, kernel, stride, groups=mid_chs, act=act, se=se)
        self.point_linear = ConvBNAct(mid_chs, out_chs, 1, act="none")

    @property
    def se(self) -> SqueezeExcite | None:
        """The squeeze-excite after the depthwise conv, if any."""
        return self.depth_conv.se

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.inverted_bottleneck is not None:
            x = self.inverted_bottleneck(x)
        return self.point_linear(self.depth_conv(x))


class ResidualBlock(nn.Module):
    """``conv(x) + x`` when ``shortcut`` is set, else ``conv(x)`` (OFA's ``ResidualBlock``).

    Args:
        conv: The wrapped layer (an :class:`MBConv`, or the supernet's elastic layer).
        shortcut: Whether the block adds its input to its output.
    """

    def __init__(self, conv: nn.Module, shortcut: bool) -> None:
        super().__init__()
        self.conv = conv
        self.shortcut = nn.Identity() if shortcut else None

    @property
    def has_skip(self) -> bool:
        """Whether the block adds its input to its output."""
        return self.shortcut is not None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return out + x if self.shortcut is not None else out


def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Fold an eval-mode BatchNorm into the preceding convolution.

    Args:
        conv: The convolution (with or without bias).
        bn: The BatchNorm that follows it, or None.

    Returns:
        (weight, bias) as float32 numpy arrays, weight in OIHW layout; bias is None when the convolution has
        no bias and no BatchNorm follows it.
    """
    with torch.no_grad():
        w = conv.weight.detach().to(torch.float64)
        b = conv.bias.detach().to(torch.float64) if conv.bias is not None else None
        if bn is not None:
            scale = bn.weight.detach().to(torch.float64) / torch.sqrt(bn.running_var.to(torch.float64) + bn.eps)
            w = w * scale.reshape(-1, 1, 1, 1)
            b0 = b if b is not None else torch.zeros(w.shape[0], dtype=torch.float64)
            b = (b0 - bn.running_mean.to(torch.float64)) * scale + bn.bias.detach().to(torch.float64)
    return w.numpy().astype(np.float32), (b.numpy().astype(np.float32) if b is not None else None)
