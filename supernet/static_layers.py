"""Fixed-shape layers of an OFA-MobileNetV3 network, laid out so their state_dict keys match OFA's.

These are the building blocks of a static subnet (what ``OFAMobileNetV3.get_active_subnet`` returns)
and of the supernet's fixed parts (stem, first block, final expand, feature mix, classifier).

Key layout (OFA's): a conv layer holds ``conv``, ``bn``, ``act``; an inverted-residual layer holds
``inverted_bottleneck``, ``depth_conv`` (with ``se`` after its activation) and ``point_linear``; a
residual block holds ``conv`` and ``shortcut``; the classifier holds ``dropout`` and ``linear``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from space import make_divisible

__all__ = [
    "ACTIVATIONS",
    "SE_REDUCTION",
    "ConvLayer",
    "HSigmoid",
    "HSwish",
    "LinearLayer",
    "MBConvLayer",
    "ResidualBlock",
    "SELayer",
    "build_activation",
    "global_avg_pool",
    "remap_legacy_keys",
    "same_padding",
]

# Channel reduction of the squeeze-excite bottleneck (before rounding to a multiple of 8).
SE_REDUCTION = 4

ACTIVATIONS = ("relu", "relu6", "h_swish", "h_sigmoid", "none")


class HSwish(nn.Module):
    """Hard swish as OFA computes it: ``x * relu6(x + 3) / 6``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * F.relu6(x + 3.0) / 6.0


class HSigmoid(nn.Module):
    """Hard sigmoid as OFA computes it: ``relu6(x + 3) / 6``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu6(x + 3.0) / 6.0


def build_activation(name: str | None) -> nn.Module:
    """Make an activation module from its OFA name.

    Args:
        name: one of ``ACTIVATIONS`` (``None`` means ``"none"``).

    Returns:
        The module (``nn.Identity`` for ``"none"``).

    Raises:
        ValueError: the name is unknown.
    """
    if name is None or name == "none":
        return nn.Identity()
    if name == "relu":
        return nn.ReLU()
    if name == "relu6":
        return nn.ReLU6()
    if name == "h_swish":
        return HSwish()
    if name == "h_sigmoid":
        return HSigmoid()
    raise ValueError(f"unknown activation {name!r}; known: {', '.join(ACTIVATIONS)}")


def same_padding(kernel: int) -> int:
    """Padding that keeps the spatial size at stride 1 for an odd ``kernel``."""
    if kernel % 2 != 1:
        raise ValueError(f"kernel must be odd, got {kernel}")
    return kernel // 2


def global_avg_pool(x: torch.Tensor) -> torch.Tensor:
    """Mean over the spatial axes, keeping them as size-1 (OFA's pooling)."""
    return x.mean(3, keepdim=True).mean(2, keepdim=True)


class ConvLayer(nn.Module):
    """Conv → optional BN → activation (OFA's ``ConvLayer`` with ``weight_bn_act`` order)."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel: int = 3,
        stride: int = 1,
        use_bn: bool = True,
        act: str | None = "relu",
    ) -> None:
        super().__init__()
        self.in_chs = in_chs
        self.out_chs = out_chs
        self.kernel = kernel
        self.stride = stride
        self.use_bn = use_bn
        self.act_name = act or "none"
        self.conv = nn.Conv2d(in_chs, out_chs, kernel, stride, same_padding(kernel), bias=False)
        self.bn = nn.BatchNorm2d(out_chs) if use_bn else nn.Identity()
        self.act = build_activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class SELayer(nn.Module):
    """Squeeze-excite: pool, 1x1 reduce (bias), ReLU, 1x1 expand (bias), hard sigmoid, scale."""

    def __init__(self, chs: int) -> None:
        super().__init__()
        self.chs = chs
        mid = make_divisible(chs // SE_REDUCTION, 8)
        self.fc = nn.Sequential(
            OrderedDict(
                reduce=nn.Conv2d(chs, mid, 1, 1, 0, bias=True),
                relu=nn.ReLU(),
                expand=nn.Conv2d(mid, chs, 1, 1, 0, bias=True),
                h_sigmoid=HSigmoid(),
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(global_avg_pool(x))


class MBConvLayer(nn.Module):
    """Inverted residual (MobileNetV2/V3) without the skip: expand 1x1, depthwise k×k (+SE), project 1x1.

    With ``mid_chs == in_chs`` and ``expand_ratio == 1`` there is no expand conv (OFA's first block).
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel: int = 3,
        stride: int = 1,
        mid_chs: int | None = None,
        act: str = "relu",
        use_se: bool = False,
        has_expand: bool = True,
    ) -> None:
        super().__init__()
        self.in_chs = in_chs
        self.out_chs = out_chs
        self.kernel = kernel
        self.stride = stride
        self.mid_chs = in_chs if mid_chs is None else mid_chs
        self.act_name = act
        self.use_se = use_se
        self.has_expand = has_expand
        mid = self.mid_chs
        if has_expand:
            self.inverted_bottleneck = nn.Sequential(
                OrderedDict(
                    conv=nn.Conv2d(in_chs, mid, 1, 1, 0, bias=False),
                    bn=nn.BatchNorm2d(mid),
                    act=build_activation(act),
                )
            )
        else:
            self.inverted_bottleneck = None
        depth_parts: OrderedDict[str, nn.Module] = OrderedDict(
            conv=nn.Conv2d(mid, mid, kernel, stride, same_padding(kernel), groups=mid, bias=False),
            bn=nn.BatchNorm2d(mid),
            act=build_activation(act),
        )
        if use_se:
            depth_parts["se"] = SELayer(mid)
        self.depth_conv = nn.Sequential(depth_parts)
        self.point_linear = nn.Sequential(
            OrderedDict(conv=nn.Conv2d(mid, out_chs, 1, 1, 0, bias=False), bn=nn.BatchNorm2d(out_chs))
        )

    @property
    def expand_ratio(self) -> float:
        """Mid channels over input channels."""
        return self.mid_chs / self.in_chs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.inverted_bottleneck is not None:
            x = self.inverted_bottleneck(x)
        return self.point_linear(self.depth_conv(x))


class ResidualBlock(nn.Module):
    """``conv(x) + x`` when ``shortcut`` is set, else ``conv(x)`` (OFA's ``ResidualBlock``)."""

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
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return out


class LinearLayer(nn.Module):
    """Dropout then a fully connected layer with bias (OFA's classifier)."""

    def __init__(self, in_features: int, out_features: int, dropout_rate: float = 0.0) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.dropout_rate = dropout_rate
        self.dropout = nn.Dropout(dropout_rate) if dropout_rate > 0 else nn.Identity()
        self.linear = nn.Linear(in_features, out_features, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.dropout(x))


def remap_legacy_keys(state_dict: Mapping[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
    """Rename keys of older OFA checkpoints (``blocks.N.mobile_inverted_conv.*``) to ``blocks.N.conv.*``.

    Newer checkpoints pass through unchanged. The result keeps the input's order.
    """
    renamed: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, value in state_dict.items():
        renamed[key.replace(".mobile_inverted_conv.", ".conv.")] = value
    metadata = getattr(state_dict, "_metadata", None)
    if metadata is not None:
        renamed._metadata = OrderedDict(  # type: ignore[attr-defined]
            (k.replace(".mobile_inverted_conv", ".conv"), v) for k, v in metadata.items()
        )
    return renamed
