"""The ResNet bottleneck block of OFA-ResNet50, with OFA's state_dict key layout.

Keys: ``conv1``, ``conv2``, ``conv3`` (each a conv layer with ``conv`` and ``bn``) and, where the block changes
shape, ``downsample`` (``conv`` and ``bn``, after an average pool in OFA's ``avgpool_conv`` mode).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from .activations import make_act
from .conv import ConvBNAct

__all__ = ["DOWNSAMPLE_MODES", "Bottleneck"]

#: How a shape-changing block maps its input onto the output: a strided 1x1 conv (``conv``, ResNet50), or an
#: average pool of the stride followed by a 1x1 conv (``avgpool_conv``, ResNet50-D and OFA's ResNet50 supernet).
DOWNSAMPLE_MODES: tuple[str, ...] = ("avgpool_conv", "conv")


class Bottleneck(nn.Module):
    """ResNet bottleneck: 1x1 conv, kxk conv (carries the stride), 1x1 conv, plus the shortcut, then the activation.

    The shortcut is the identity when the block keeps its shape (stride 1, ``in_chs == out_chs``), else a
    1x1 conv with BN (``downsample``).

    Args:
        in_chs: Input channels.
        mid_chs: Channels of the two inner convs.
        out_chs: Output channels.
        kernel: Kernel of the middle conv.
        stride: Stride of the middle conv (and of the downsample path).
        act: Activation after conv1, conv2 and the sum.
        downsample_mode: One of :data:`DOWNSAMPLE_MODES`.
        expand_ratio: The ratio ``mid_chs`` was derived from (``mid_chs / out_chs`` before rounding), kept to
            describe the block; None if unknown.
    """

    def __init__(
        self,
        in_chs: int,
        mid_chs: int,
        out_chs: int,
        kernel: int = 3,
        stride: int = 1,
        act: str = "relu",
        downsample_mode: str = "avgpool_conv",
        expand_ratio: float | None = None,
    ) -> None:
        super().__init__()
        if downsample_mode not in DOWNSAMPLE_MODES:
            raise ValueError(f"downsample_mode must be one of {list(DOWNSAMPLE_MODES)}, got {downsample_mode!r}")
        self.in_chs = in_chs
        self.mid_chs = mid_chs
        self.out_chs = out_chs
        self.kernel = kernel
        self.stride = stride
        self.act_name = act
        self.downsample_mode = downsample_mode
        self.expand_ratio = expand_ratio
        self.conv1 = ConvBNAct(in_chs, mid_chs, 1, act=act)
        self.conv2 = ConvBNAct(mid_chs, mid_chs, kernel, stride, act=act)
        self.conv3 = ConvBNAct(mid_chs, out_chs, 1, act=None)
        self.downsample = None if self.keeps_shape else _downsample(in_chs, out_chs, stride, downsample_mode)
        self.final_act = make_act(act)

    @property
    def keeps_shape(self) -> bool:
        """Whether the shortcut is the identity (stride 1 and as many outputs as inputs)."""
        return self.stride == 1 and self.in_chs == self.out_chs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.final_act(self.conv3(self.conv2(self.conv1(x))) + shortcut)


def _downsample(in_chs: int, out_chs: int, stride: int, mode: str) -> nn.Sequential:
    parts: OrderedDict[str, nn.Module] = OrderedDict()
    conv_stride = stride
    if mode == "avgpool_conv":
        # ceil_mode keeps the pooled side equal to the strided conv's side on odd inputs.
        parts["avg_pool"] = nn.AvgPool2d(stride, stride, padding=0, ceil_mode=True)
        conv_stride = 1
    parts["conv"] = nn.Conv2d(in_chs, out_chs, 1, conv_stride, 0, bias=False)
    parts["bn"] = nn.BatchNorm2d(out_chs)
    return nn.Sequential(parts)
