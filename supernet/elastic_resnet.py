"""Elastic layers of OFA-ResNet50: width and expand ratio that change per forward pass, with OFA's key layout.

- ``DynamicConvLayer``: conv-BN-act whose active output width is one of a list (``conv.conv``, ``bn.bn``).
- ``DynamicBottleneck``: the bottleneck block with an active output width and expand ratio; its middle width is
  ``make_divisible(round(out * e), 8)`` (``conv1``, ``conv2``, ``conv3``, ``downsample``).
- ``DynamicLinearLayer``: the classifier over the active input width (``linear.linear``).

Each holds its active setting as plain attributes that the supernet sets before a forward pass, and copies
itself out as the static :mod:`layers` module of that setting (``get_active_subnet``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from layers import Bottleneck, Classifier, ConvBNAct, make_act
from supernet.elastic_layers import DynamicBatchNorm2d, DynamicConv2d, copy_bn, importance_order, permute_bn
from space.families import bottleneck_mid_chs

__all__ = ["DynamicBottleneck", "DynamicConvLayer", "DynamicLinear", "DynamicLinearLayer"]


class DynamicConvLayer(nn.Module):
    """Conv → BN → activation with an elastic output width; the input width follows the input tensor.

    Args:
        max_in_chs: input channels at the largest width.
        out_chs_list: the output widths this layer can run.
        kernel: square, odd kernel size.
        stride: spatial stride.
        act: activation name.
    """

    def __init__(self, max_in_chs: int, out_chs_list: Sequence[int], kernel: int = 3, stride: int = 1,
                 act: str = "relu") -> None:
        super().__init__()
        self.out_chs_list = tuple(int(c) for c in out_chs_list)
        self.kernel = kernel
        self.stride = stride
        self.act_name = act
        max_out = max(self.out_chs_list)
        self.conv = DynamicConv2d(max_in_chs, max_out, kernel, stride)
        self.bn = DynamicBatchNorm2d(max_out)
        self.act = make_act(act)
        self.active_out_chs = max_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.conv.active_out_chs = self.active_out_chs
        return self.act(self.bn(self.conv(x)))

    def get_active_subnet(self, in_chs: int) -> ConvBNAct:
        """A static :class:`layers.ConvBNAct` at the active width, weights copied, in this layer's mode."""
        out = self.active_out_chs
        sub = ConvBNAct(in_chs, out, self.kernel, self.stride, act=self.act_name).to(self.conv.conv.weight.device)
        with torch.no_grad():
            sub.conv.weight.copy_(self.conv.get_active_filter(out, in_chs))
        copy_bn(sub.bn, self.bn.bn)
        sub.train(self.training)
        return sub


def _conv_bn(conv: DynamicConv2d, chs: int, act: str | None) -> nn.Sequential:
    parts: OrderedDict[str, nn.Module] = OrderedDict(conv=conv, bn=DynamicBatchNorm2d(chs))
    if act is not None:
        parts["act"] = make_act(act)
    return nn.Sequential(parts)


class DynamicBottleneck(nn.Module):
    """ResNet bottleneck with elastic output width and expand ratio.

    The shortcut is the identity when the block keeps its shape at every width (stride 1 and the same width
    list in and out), else an average pool of the stride and a 1x1 conv with BN (OFA's ``avgpool_conv``).

    Args:
        in_chs_list: the input widths the block can see.
        out_chs_list: the output widths it can run.
        expand_ratio_list: middle width ratios (of the output width).
        kernel: middle conv kernel.
        stride: middle conv stride.
        act: activation name.
    """

    def __init__(
        self,
        in_chs_list: Sequence[int],
        out_chs_list: Sequence[int],
        expand_ratio_list: Sequence[float] = (0.25,),
        kernel: int = 3,
        stride: int = 1,
        act: str = "relu",
    ) -> None:
        super().__init__()
        self.in_chs_list = tuple(int(c) for c in in_chs_list)
        self.out_chs_list = tuple(int(c) for c in out_chs_list)
        self.expand_ratio_list = tuple(sorted(set(expand_ratio_list)))
        self.kernel = kernel
        self.stride = stride
        self.act_name = act
        max_in, max_out = max(self.in_chs_list), max(self.out_chs_list)
        max_mid = bottleneck_mid_chs(max_out, max(self.expand_ratio_list))
        self.conv1 = _conv_bn(DynamicConv2d(max_in, max_mid), max_mid, act)
        self.conv2 = _conv_bn(DynamicConv2d(max_mid, max_mid, kernel, stride), max_mid, act)
        self.conv3 = _conv_bn(DynamicConv2d(max_mid, max_out), max_out, None)
        self.downsample: nn.Sequential | None = None
        if not self.keeps_shape:
            self.downsample = nn.Sequential(
                OrderedDict(
                    avg_pool=nn.AvgPool2d(stride, stride, padding=0, ceil_mode=True),
                    conv=DynamicConv2d(max_in, max_out),
                    bn=DynamicBatchNorm2d(max_out),
                )
            )
        self.final_act = make_act(act)
        self.active_expand_ratio = max(self.expand_ratio_list)
        self.active_out_chs = max_out

    @property
    def keeps_shape(self) -> bool:
        """Whether the shortcut is the identity."""
        return self.stride == 1 and self.in_chs_list == self.out_chs_list

    @property
    def active_mid_chs(self) -> int:
        """Middle width at the active output width and expand ratio."""
        return bottleneck_mid_chs(self.active_out_chs, self.active_expand_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mid = self.active_mid_chs
        self.conv1.conv.active_out_chs = mid
        self.conv2.conv.active_out_chs = mid
        self.conv3.conv.active_out_chs = self.active_out_chs
        if self.downsample is None:
            shortcut = x
        else:
            self.downsample.conv.active_out_chs = self.active_out_chs
            shortcut = self.downsample(x)
        return self.final_act(self.conv3(self.conv2(self.conv1(x))) + shortcut)

    def get_active_subnet(self, in_chs: int) -> Bottleneck:
        """A static :class:`layers.Bottleneck` at the active setting, weights copied, in this block's mode."""
        mid, out = self.active_mid_chs, self.active_out_chs
        sub = Bottleneck(in_chs, mid, out, self.kernel, self.stride, self.act_name, "avgpool_conv",
                         expand_ratio=self.active_expand_ratio)
        sub = sub.to(self.conv1.conv.conv.weight.device)
        with torch.no_grad():
            for name, out_chs, in_width in (("conv1", mid, in_chs), ("conv2", mid, mid), ("conv3", out, mid)):
                source, target = getattr(self, name), getattr(sub, name)
                target.conv.weight.copy_(source.conv.get_active_filter(out_chs, in_width))
                copy_bn(target.bn, source.bn.bn)
            if sub.downsample is not None:
                if self.downsample is None:
                    raise ValueError(f"a block with an identity shortcut cannot run {in_chs} -> {out} channels")
                sub.downsample.conv.weight.copy_(self.downsample.conv.get_active_filter(out, in_chs))
                copy_bn(sub.downsample.bn, self.downsample.bn.bn)
        sub.train(self.training)
        return sub

    @torch.no_grad()
    def re_organize_middle_weights(self, expand_ratio_stage: int = 0) -> None:
        """Sort the middle channels by importance so that slicing keeps the most important ones.

        conv2's outputs are ordered by the L1 norm of their columns in conv3, then conv1's outputs by theirs in
        conv2 (OFA's order). With ``expand_ratio_stage > 0`` the channels inside each of the ``stage + 1``
        largest widths (at the largest output width) stay inside it.

        Args:
            expand_ratio_stage: how many smaller expand ratios are already trained (0 = none).
        """
        max_out = max(self.out_chs_list)
        widths = [bottleneck_mid_chs(max_out, e) for e in sorted(self.expand_ratio_list, reverse=True)]
        for consumer, producer in ((self.conv3, self.conv2), (self.conv2, self.conv1)):
            weight = consumer.conv.conv.weight
            order = importance_order(weight.abs().sum(dim=(0, 2, 3)), widths, expand_ratio_stage)
            weight.copy_(weight.index_select(1, order))
            permute_bn(producer.bn.bn, order)
            produced = producer.conv.conv.weight
            produced.copy_(produced.index_select(0, order))


class DynamicLinear(nn.Module):
    """Linear layer over the leading ``x.size(1)`` inputs (``linear`` holds the full-size weights)."""

    def __init__(self, max_in_features: int, out_features: int) -> None:
        super().__init__()
        self.linear = nn.Linear(max_in_features, out_features, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.linear.weight[:, : x.size(1)].contiguous(), self.linear.bias)


class DynamicLinearLayer(nn.Module):
    """The classifier on pooled features of any active width: flatten, dropout, linear.

    Args:
        max_in_features: input features at the largest width.
        out_features: classes.
        dropout_rate: dropout before the linear layer (training only).
    """

    def __init__(self, max_in_features: int, out_features: int, dropout_rate: float = 0.0) -> None:
        super().__init__()
        self.out_features = out_features
        self.dropout_rate = dropout_rate
        self.dropout = nn.Dropout(dropout_rate) if dropout_rate > 0 else nn.Identity()
        self.linear = DynamicLinear(max_in_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.dropout(torch.flatten(x, 1)))

    def get_active_subnet(self, in_features: int) -> Classifier:
        """A static :class:`layers.Classifier` on ``in_features`` inputs, weights copied, in this layer's mode."""
        weight = self.linear.linear.weight
        sub = Classifier(in_features, self.out_features, self.dropout_rate).to(weight.device)
        with torch.no_grad():
            sub.linear.weight.copy_(weight[:, :in_features])
            sub.linear.bias.copy_(self.linear.linear.bias)
        sub.train(self.training)
        return sub
