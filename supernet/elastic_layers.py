"""Elastic layers: kernel, width and depth that change per forward pass, with OFA's parameter layout.

- ``DynamicSeparableConv2d``: a depthwise conv stored at the largest kernel. A smaller kernel is the
  centre crop of the next larger one, passed through a learned (k²×k²) transformation matrix per step
  (``7to5_matrix``, ``5to3_matrix``), so kernels share weights without being forced equal.
- ``DynamicConv2d``: a dense conv (1x1 in MBConv layers) whose active output width slices the leading
  filters, and whose input width follows the input tensor.
- ``DynamicBatchNorm2d``: BN over the leading channels of its parameters and running statistics.
- ``DynamicSE``: squeeze-excite that slices its convs to the active width.
- ``DynamicMBConvLayer``: an inverted-residual layer made of the above with an active kernel and
  expand ratio; ``re_organize_middle_weights`` sorts its middle channels by importance.

Each module holds its active setting as plain attributes that its owner sets before a forward pass.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from layers import HSigmoid, MBConv, global_avg_pool, make_act, same_padding
from space import make_divisible, se_mid_chs

__all__ = [
    "DynamicBatchNorm2d",
    "DynamicConv2d",
    "DynamicMBConvLayer",
    "DynamicSE",
    "DynamicSeparableConv2d",
    "center_crop_range",
    "copy_bn",
    "importance_order",
    "permute_bn",
]


def center_crop_range(kernel: int, sub_kernel: int) -> tuple[int, int]:
    """Start and end (exclusive) indices of the centred ``sub_kernel`` window inside ``kernel``."""
    if sub_kernel > kernel or (kernel - sub_kernel) % 2:
        raise ValueError(f"cannot centre a {sub_kernel}x{sub_kernel} window in a {kernel}x{kernel} kernel")
    start = kernel // 2 - sub_kernel // 2
    return start, start + sub_kernel


class DynamicSeparableConv2d(nn.Module):
    """Depthwise conv with an elastic kernel size and an input-driven channel count.

    Args:
        max_chs: channels at the largest width.
        ks_list: the kernel sizes this layer can run (odd ints).
        stride: spatial stride.
    """

    def __init__(self, max_chs: int, ks_list: Sequence[int], stride: int = 1) -> None:
        super().__init__()
        self.max_chs = max_chs
        self.ks_list = sorted({int(k) for k in ks_list})
        self.stride = stride
        max_ks = self.ks_list[-1]
        self.conv = nn.Conv2d(max_chs, max_chs, max_ks, stride, same_padding(max_ks), groups=max_chs, bias=False)
        # One transformation matrix per step down, registered smallest first (OFA's order).
        for small, large in zip(self.ks_list[:-1], self.ks_list[1:]):
            self.register_parameter(f"{large}to{small}_matrix", nn.Parameter(torch.eye(small * small)))
        self.active_kernel = max_ks

    def get_active_filter(self, chs: int, kernel: int) -> torch.Tensor:
        """The depthwise filter for ``chs`` leading channels at ``kernel``, shape [chs, 1, k, k]."""
        if kernel not in self.ks_list:
            raise ValueError(f"kernel {kernel} not in this layer's ks_list {self.ks_list}")
        weight = self.conv.weight[:chs]
        for large in reversed(self.ks_list):
            if large <= kernel:
                break
            small = self.ks_list[self.ks_list.index(large) - 1]
            start, end = center_crop_range(weight.shape[-1], small)
            crop = weight[:, :, start:end, start:end].reshape(-1, small * small)
            matrix = getattr(self, f"{large}to{small}_matrix")
            weight = F.linear(crop, matrix).reshape(chs, 1, small, small)
        return weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        chs = x.size(1)
        kernel = self.active_kernel
        weight = self.get_active_filter(chs, kernel).contiguous()
        return F.conv2d(x, weight, None, self.stride, same_padding(kernel), 1, chs)


class DynamicConv2d(nn.Module):
    """Dense conv (no bias, 1x1 unless told) whose active output width takes the leading filters.

    Args:
        max_in_chs: input channels at the largest width.
        max_out_chs: output channels at the largest width.
        kernel: square, odd kernel size (ResNet50's stem and middle convs are 3x3).
        stride: spatial stride.
    """

    def __init__(self, max_in_chs: int, max_out_chs: int, kernel: int = 1, stride: int = 1) -> None:
        super().__init__()
        self.max_in_chs = max_in_chs
        self.max_out_chs = max_out_chs
        self.kernel = kernel
        self.stride = stride
        self.conv = nn.Conv2d(max_in_chs, max_out_chs, kernel, stride, same_padding(kernel), bias=False)
        self.active_out_chs = max_out_chs

    def get_active_filter(self, out_chs: int, in_chs: int) -> torch.Tensor:
        """Weight slice [out_chs, in_chs, k, k]."""
        return self.conv.weight[:out_chs, :in_chs]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.get_active_filter(self.active_out_chs, x.size(1)).contiguous()
        return F.conv2d(x, weight, None, self.stride, same_padding(self.kernel))


class DynamicBatchNorm2d(nn.Module):
    """Batch norm over the leading ``x.size(1)`` channels of a full-width ``nn.BatchNorm2d``.

    Running statistics of the active slice are updated in place during training.
    """

    def __init__(self, max_chs: int) -> None:
        super().__init__()
        self.max_chs = max_chs
        self.bn = nn.BatchNorm2d(max_chs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bn = self.bn
        chs = x.size(1)
        if chs == bn.num_features:
            return bn(x)
        use_batch_stats = bn.training or not bn.track_running_stats
        factor = 0.0
        if bn.training and bn.track_running_stats and bn.num_batches_tracked is not None:
            bn.num_batches_tracked.add_(1)
            factor = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
        running_mean = bn.running_mean[:chs] if bn.running_mean is not None else None
        running_var = bn.running_var[:chs] if bn.running_var is not None else None
        return F.batch_norm(
            x, running_mean, running_var, bn.weight[:chs], bn.bias[:chs], use_batch_stats, factor, bn.eps
        )


class DynamicSE(nn.Module):
    """Squeeze-excite sliced to the input's width; the squeeze width is ``make_divisible(chs // 4, 8)``."""

    def __init__(self, max_chs: int) -> None:
        super().__init__()
        self.max_chs = max_chs
        mid = se_mid_chs(max_chs)
        self.fc = nn.Sequential(
            OrderedDict(
                reduce=nn.Conv2d(max_chs, mid, 1, 1, 0, bias=True),
                relu=nn.ReLU(),
                expand=nn.Conv2d(mid, max_chs, 1, 1, 0, bias=True),
                h_sigmoid=HSigmoid(),
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        chs = x.size(1)
        mid = se_mid_chs(chs)
        y = global_avg_pool(x)
        reduce, expand = self.fc.reduce, self.fc.expand
        y = F.conv2d(y, reduce.weight[:mid, :chs].contiguous(), reduce.bias[:mid])
        y = F.relu(y)
        y = F.conv2d(y, expand.weight[:chs, :mid].contiguous(), expand.bias[:chs])
        return x * self.fc.h_sigmoid(y)


def copy_bn(target: nn.BatchNorm2d, source: nn.BatchNorm2d) -> None:
    """Copy the leading ``target.num_features`` channels of ``source`` (affine and statistics) into ``target``."""
    chs = target.num_features
    with torch.no_grad():
        target.weight.copy_(source.weight[:chs])
        target.bias.copy_(source.bias[:chs])
        target.running_mean.copy_(source.running_mean[:chs])
        target.running_var.copy_(source.running_var[:chs])
        if target.num_batches_tracked is not None and source.num_batches_tracked is not None:
            target.num_batches_tracked.copy_(source.num_batches_tracked)
    target.momentum = source.momentum
    target.eps = source.eps


def permute_bn(bn: nn.BatchNorm2d, order: torch.Tensor) -> None:
    """Reorder the channels of ``bn`` (affine and statistics) as ``order`` gives them."""
    with torch.no_grad():
        for tensor in (bn.weight, bn.bias, bn.running_mean, bn.running_var):
            tensor.copy_(tensor.index_select(0, order))


def importance_order(importance: torch.Tensor, widths: Sequence[int], expand_ratio_stage: int) -> torch.Tensor:
    """Channel order by decreasing importance, never moving a channel out of the ``stage + 1`` widest slices.

    Args:
        importance: one score per middle channel.
        widths: the middle widths, widest first.
        expand_ratio_stage: how many smaller expand ratios are already trained (0 = none: a plain sort).
    """
    importance = importance.clone()
    right, offset = importance.numel(), -len(widths) * 1e5
    for width in widths[: expand_ratio_stage + 1] if expand_ratio_stage > 0 else []:
        importance[width:right] += offset
        offset += 1e5
        right = width
    return torch.argsort(importance, descending=True)


class DynamicMBConvLayer(nn.Module):
    """Inverted-residual layer with elastic kernel and expand ratio.

    The middle width for an input of ``c`` channels at expand ratio ``e`` is
    ``make_divisible(round(c * e), 8)``; the output width is fixed.

    Args:
        max_in_chs: input channels at the largest width.
        out_chs: output channels.
        ks_list: kernel sizes of the depthwise conv.
        expand_ratio_list: expand ratios.
        stride: depthwise stride.
        act: activation name.
        use_se: whether a squeeze-excite follows the depthwise conv.
    """

    def __init__(
        self,
        max_in_chs: int,
        out_chs: int,
        ks_list: Sequence[int] = (3, 5, 7),
        expand_ratio_list: Sequence[float] = (3, 4, 6),
        stride: int = 1,
        act: str = "relu",
        use_se: bool = False,
    ) -> None:
        super().__init__()
        self.max_in_chs = max_in_chs
        self.out_chs = out_chs
        self.ks_list = sorted({int(k) for k in ks_list})
        self.expand_ratio_list = sorted(set(expand_ratio_list))
        self.stride = stride
        self.act_name = act
        self.use_se = use_se
        max_mid = self.mid_chs(max_in_chs, max(self.expand_ratio_list))
        self.max_mid_chs = max_mid
        self.inverted_bottleneck = nn.Sequential(
            OrderedDict(
                conv=DynamicConv2d(max_in_chs, max_mid), bn=DynamicBatchNorm2d(max_mid), act=make_act(act)
            )
        )
        depth_parts: OrderedDict[str, nn.Module] = OrderedDict(
            conv=DynamicSeparableConv2d(max_mid, self.ks_list, stride),
            bn=DynamicBatchNorm2d(max_mid),
            act=make_act(act),
        )
        if use_se:
            depth_parts["se"] = DynamicSE(max_mid)
        self.depth_conv = nn.Sequential(depth_parts)
        self.point_linear = nn.Sequential(
            OrderedDict(conv=DynamicConv2d(max_mid, out_chs), bn=DynamicBatchNorm2d(out_chs))
        )
        self.active_kernel = max(self.ks_list)
        self.active_expand_ratio = max(self.expand_ratio_list)

    @staticmethod
    def mid_chs(in_chs: int, expand_ratio: float) -> int:
        """Middle width for ``in_chs`` inputs at ``expand_ratio``."""
        return make_divisible(round(in_chs * expand_ratio), 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.inverted_bottleneck.conv.active_out_chs = self.mid_chs(x.size(1), self.active_expand_ratio)
        self.depth_conv.conv.active_kernel = self.active_kernel
        self.point_linear.conv.active_out_chs = self.out_chs
        return self.point_linear(self.depth_conv(self.inverted_bottleneck(x)))

    def get_active_subnet(self, in_chs: int) -> MBConv:
        """A static :class:`layers.MBConv` with this layer's active kernel and width, weights copied.

        Args:
            in_chs: active input channels.

        Returns:
            A new layer in the same train/eval mode, on the same device.
        """
        mid = self.mid_chs(in_chs, self.active_expand_ratio)
        kernel = self.active_kernel
        sub = MBConv(in_chs, mid, self.out_chs, kernel, self.stride, act=self.act_name, se=self.use_se)
        sub = sub.to(self.point_linear.conv.conv.weight.device)
        with torch.no_grad():
            sub.inverted_bottleneck.conv.weight.copy_(self.inverted_bottleneck.conv.get_active_filter(mid, in_chs))
            copy_bn(sub.inverted_bottleneck.bn, self.inverted_bottleneck.bn.bn)
            sub.depth_conv.conv.weight.copy_(self.depth_conv.conv.get_active_filter(mid, kernel))
            copy_bn(sub.depth_conv.bn, self.depth_conv.bn.bn)
            if self.use_se:
                squeeze = se_mid_chs(mid)
                src, dst = self.depth_conv.se.fc, sub.depth_conv.se.fc
                dst.reduce.weight.copy_(src.reduce.weight[:squeeze, :mid])
                dst.reduce.bias.copy_(src.reduce.bias[:squeeze])
                dst.expand.weight.copy_(src.expand.weight[:mid, :squeeze])
                dst.expand.bias.copy_(src.expand.bias[:mid])
            sub.point_linear.conv.weight.copy_(self.point_linear.conv.get_active_filter(self.out_chs, mid))
            copy_bn(sub.point_linear.bn, self.point_linear.bn.bn)
        sub.train(self.training)
        return sub

    @torch.no_grad()
    def re_organize_middle_weights(self, expand_ratio_stage: int = 0) -> None:
        """Sort the middle channels by importance so that slicing keeps the most important ones.

        Importance is the L1 norm of each middle channel's column in the projection conv. With
        ``expand_ratio_stage > 0`` the channels already inside each of the ``stage + 1`` largest
        widths stay inside it (they are only reordered among themselves), so subnets trained at
        those widths keep their channels.

        Args:
            expand_ratio_stage: how many smaller expand ratios are already trained (0 = none).
        """
        project = self.point_linear.conv.conv.weight
        widths = [self.mid_chs(self.max_in_chs, e) for e in sorted(self.expand_ratio_list, reverse=True)]
        order = importance_order(project.abs().sum(dim=(0, 2, 3)), widths, expand_ratio_stage)
        project.copy_(project.index_select(1, order))
        permute_bn(self.depth_conv.bn.bn, order)
        depth = self.depth_conv.conv.conv.weight
        depth.copy_(depth.index_select(0, order))
        if self.use_se:
            fc = self.depth_conv.se.fc
            fc.reduce.weight.copy_(fc.reduce.weight.index_select(1, order))
            fc.expand.weight.copy_(fc.expand.weight.index_select(0, order))
            fc.expand.bias.copy_(fc.expand.bias.index_select(0, order))
            se_importance = fc.expand.weight.abs().sum(dim=(0, 2, 3))
            se_order = torch.argsort(se_importance, descending=True)
            fc.reduce.weight.copy_(fc.reduce.weight.index_select(0, se_order))
            fc.reduce.bias.copy_(fc.reduce.bias.index_select(0, se_order))
            fc.expand.weight.copy_(fc.expand.weight.index_select(1, se_order))
        permute_bn(self.inverted_bottleneck.bn.bn, order)
        expand = self.inverted_bottleneck.conv.conv.weight
        expand.copy_(expand.index_select(0, order))
