"""The elastic OFA-MobileNetV3 supernet, with OFA's state_dict layout and method names.

One ``OFAMobileNetV3`` holds every subnet of the space: per block slot an elastic kernel and
expand ratio, per stage an elastic depth. ``set_active_subnet`` picks one, ``forward`` runs it, and
``get_active_subnet`` copies it out as a standalone :class:`~supernet.static_subnet.MobileNetV3`.
Resolution is a property of the input; the arch's ``r`` is recorded for reference only.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from layers import Classifier, ConvBNAct, MBConv, ResidualBlock
from space import Subnet, make_divisible
from supernet import _net_config
from supernet._arch import ArchChoices, IntOrList, resolve_arch, sample_arch
from supernet.elastic_layers import DynamicMBConvLayer
from supernet.static_subnet import MobileNetV3, OFANetwork

__all__ = ["BASE_STAGE_WIDTH", "STAGE_ACTS", "STAGE_SE", "STAGE_STRIDES", "OFAMobileNetV3", "SupernetConfig"]

logger = logging.getLogger(__name__)

# Channel widths at width_mult 1.0: stem, first block, five stages, final expand, feature mix.
BASE_STAGE_WIDTH = (16, 16, 24, 40, 80, 112, 160, 960, 1280)
STAGE_STRIDES = (2, 2, 2, 1, 2)  # first block of each elastic stage
STAGE_ACTS = ("relu", "relu", "h_swish", "h_swish", "h_swish")
STAGE_SE = (False, True, False, True, True)


@dataclass(frozen=True)
class SupernetConfig:
    """Everything needed to rebuild an ``OFAMobileNetV3`` (stored in checkpoints)."""

    width_mult: float = 1.0  # channel multiplier (OFA releases 1.0 and 1.2)
    ks_list: tuple[int, ...] = (3, 5, 7)  # depthwise kernel choices
    expand_ratio_list: tuple[float, ...] = (3, 4, 6)  # expand ratio choices
    depth_list: tuple[int, ...] = (2, 3, 4)  # blocks-per-stage choices
    n_classes: int = 1000  # classifier outputs
    dropout_rate: float = 0.1  # dropout before the classifier
    bn_momentum: float = 0.1  # BatchNorm momentum (OFA's default)
    bn_eps: float = 1e-5  # BatchNorm epsilon (OFA's default)
    base_stage_width: tuple[int, ...] = field(default=BASE_STAGE_WIDTH)  # widths before width_mult

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serializable dict."""
        out = asdict(self)
        for key in ("ks_list", "expand_ratio_list", "depth_list", "base_stage_width"):
            out[key] = list(out[key])
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SupernetConfig:
        """Inverse of :meth:`to_dict`.

        Raises:
            ValueError: unknown keys.
        """
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown supernet config keys {sorted(unknown)}; known: {sorted(known)}")
        kwargs = dict(data)
        for key in ("ks_list", "expand_ratio_list", "depth_list", "base_stage_width"):
            if key in kwargs:
                kwargs[key] = tuple(kwargs[key])
        return cls(**kwargs)


def _as_tuple(value: IntOrList | Sequence[float]) -> tuple:
    if isinstance(value, (int, float)):
        return (value,)
    return tuple(value)


class OFAMobileNetV3(OFANetwork):
    """Elastic MobileNetV3 supernet (OFA's ``OFAMobileNetV3``).

    Args:
        width_mult: channel multiplier.
        ks_list: depthwise kernel choices.
        expand_ratio_list: expand ratio choices.
        depth_list: per-stage depth choices.
        n_classes: classifier outputs.
        dropout_rate: dropout before the classifier.
        bn_momentum: BatchNorm momentum.
        bn_eps: BatchNorm epsilon.
        base_stage_width: nine widths at multiplier 1.0 (stem, first block, five stages, final expand,
            feature mix); OFA's by default.
    """

    def __init__(
        self,
        width_mult: float = 1.0,
        ks_list: IntOrList = (3, 5, 7),
        expand_ratio_list: IntOrList | Sequence[float] = (3, 4, 6),
        depth_list: IntOrList = (2, 3, 4),
        n_classes: int = 1000,
        dropout_rate: float = 0.1,
        bn_momentum: float = 0.1,
        bn_eps: float = 1e-5,
        base_stage_width: Sequence[int] = BASE_STAGE_WIDTH,
    ) -> None:
        super().__init__()
        self.width_mult = float(width_mult)
        self.ks_list = sorted({int(k) for k in _as_tuple(ks_list)})
        self.expand_ratio_list = sorted(set(_as_tuple(expand_ratio_list)))
        self.depth_list = sorted({int(d) for d in _as_tuple(depth_list)})
        if any(k % 2 == 0 or k < 1 for k in self.ks_list):
            raise ValueError(f"ks_list must hold odd positive ints, got {self.ks_list}")
        if any(d < 1 for d in self.depth_list):
            raise ValueError(f"depth_list must hold positive ints, got {self.depth_list}")
        if len(base_stage_width) != 9:
            raise ValueError(f"base_stage_width needs 9 widths, got {len(base_stage_width)}")
        self.n_classes = int(n_classes)
        self.dropout_rate = float(dropout_rate)
        self.base_stage_width = tuple(int(w) for w in base_stage_width)

        widths = [make_divisible(w * self.width_mult, 8) for w in self.base_stage_width]
        stem_chs, first_block_chs, *stage_chs = widths[:7]
        final_expand_chs, feature_mix_chs = widths[7], widths[8]
        self.stage_chs = tuple(stage_chs)
        max_depth = max(self.depth_list)

        self.first_conv = ConvBNAct(3, stem_chs, kernel=3, stride=2, act="h_swish")
        first = MBConv(stem_chs, stem_chs, first_block_chs, 3, 1, act="relu")  # expand ratio 1: no expand conv
        blocks: list[ResidualBlock] = [ResidualBlock(first, shortcut=stem_chs == first_block_chs)]
        self.block_group_info: list[list[int]] = []
        in_chs = first_block_chs
        for out_chs, stride, act, se in zip(stage_chs, STAGE_STRIDES, STAGE_ACTS, STAGE_SE):
            self.block_group_info.append(list(range(len(blocks), len(blocks) + max_depth)))
            for j in range(max_depth):
                block_stride = stride if j == 0 else 1
                layer = DynamicMBConvLayer(in_chs, out_chs, self.ks_list, self.expand_ratio_list, block_stride, act, se)
                blocks.append(ResidualBlock(layer, shortcut=block_stride == 1 and in_chs == out_chs))
                in_chs = out_chs
        self.blocks = nn.ModuleList(blocks)
        self.final_expand_layer = ConvBNAct(in_chs, final_expand_chs, kernel=1, act="h_swish")
        self.feature_mix_layer = ConvBNAct(final_expand_chs, feature_mix_chs, kernel=1, act="h_swish", bn=False)
        self.classifier = Classifier(feature_mix_chs, self.n_classes, self.dropout_rate)
        self.set_bn_param(bn_momentum, bn_eps)

        self.runtime_depth = [len(group) for group in self.block_group_info]
        self.active_resolution: int | None = None

    # ----------------------------------------------------------------- description

    @property
    def config(self) -> SupernetConfig:
        """Constructor arguments, for rebuilding this supernet."""
        momentum, eps = self.get_bn_param()
        return SupernetConfig(
            width_mult=self.width_mult,
            ks_list=tuple(self.ks_list),
            expand_ratio_list=tuple(self.expand_ratio_list),
            depth_list=tuple(self.depth_list),
            n_classes=self.n_classes,
            dropout_rate=self.dropout_rate,
            bn_momentum=momentum,
            bn_eps=eps,
            base_stage_width=self.base_stage_width,
        )

    @classmethod
    def from_config(cls, config: SupernetConfig | Mapping[str, Any]) -> OFAMobileNetV3:
        """Build an untrained supernet from a :class:`SupernetConfig` or its dict."""
        if not isinstance(config, SupernetConfig):
            config = SupernetConfig.from_dict(config)
        return cls(**{k: getattr(config, k) for k in config.__dataclass_fields__})

    @property
    def choices(self) -> ArchChoices:
        """The values ``set_active_subnet`` accepts."""
        return ArchChoices(
            ks=tuple(self.ks_list),
            e=tuple(self.expand_ratio_list),
            d=tuple(self.depth_list),
            n_stages=len(self.block_group_info),
            max_depth=max(self.depth_list),
        )

    @property
    def elastic_blocks(self) -> list[DynamicMBConvLayer]:
        """The elastic layers in slot order (stage-major)."""
        return [self.blocks[i].conv for group in self.block_group_info for i in group]  # type: ignore[misc]

    def set_bn_param(self, momentum: float, eps: float) -> None:
        """Set momentum and epsilon of every BatchNorm."""
        _net_config.set_bn_param(self, momentum, eps)

    def get_bn_param(self) -> tuple[float, float]:
        """Momentum and epsilon of the BatchNorms."""
        bn = next(m for m in self.modules() if isinstance(m, nn.BatchNorm2d))
        return bn.momentum, bn.eps  # type: ignore[return-value]

    # ----------------------------------------------------------------- forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.first_conv(x)
        x = self.blocks[0](x)
        for group, depth in zip(self.block_group_info, self.runtime_depth):
            for idx in group[:depth]:
                x = self.blocks[idx](x)
        return self.head(x)

    # ----------------------------------------------------------------- elastic settings

    def set_active_subnet(
        self,
        arch: Mapping[str, Any] | Subnet | IntOrList | None = None,
        *,
        ks: IntOrList | None = None,
        e: IntOrList | None = None,
        d: IntOrList | None = None,
        r: int | None = None,
        **ignored: Any,
    ) -> None:
        """Choose the subnet that ``forward`` runs.

        Accepts an arch dict (``{"ks": [20], "e": [20], "d": [5], "r": int}``, ``r`` may be a one-element
        list, a ``wid`` key is ignored), a ``space.Subnet``, or OFA's keyword form ``ks=, e=, d=`` where
        an int applies to every slot. A positional non-dict first argument is taken as ``ks`` (as OFA).
        Fields left out keep their current value.

        Raises:
            ValueError: a field has the wrong length or a value this supernet cannot run.
        """
        if ignored:
            unknown = set(ignored) - {"wid", "w"}
            if unknown:
                raise ValueError(f"unknown set_active_subnet arguments {sorted(unknown)}; expected ks, e, d, r")
        if arch is not None and not isinstance(arch, (Mapping, Subnet)):
            arch, ks = None, arch
        ks_list, e_list, d_list, res = resolve_arch(self.choices, arch, ks=ks, e=e, d=d, r=r)
        layers = self.elastic_blocks
        if ks_list is not None:
            for layer, k in zip(layers, ks_list):
                layer.active_kernel = int(k)
        if e_list is not None:
            for layer, ratio in zip(layers, e_list):
                layer.active_expand_ratio = ratio
        if d_list is not None:
            self.runtime_depth = [int(v) for v in d_list]
        if res is not None:
            self.active_resolution = res

    def active_arch(self) -> dict[str, Any]:
        """The active subnet as an arch dict (``r`` included when one was set)."""
        layers = self.elastic_blocks
        arch: dict[str, Any] = {
            "ks": [layer.active_kernel for layer in layers],
            "e": [_plain_number(layer.active_expand_ratio) for layer in layers],
            "d": list(self.runtime_depth),
        }
        if self.active_resolution is not None:
            arch["r"] = self.active_resolution
        return arch

    def sample_active_subnet(
        self, rng: np.random.Generator | int | None = None, resolutions: Sequence[int] | None = None
    ) -> dict[str, Any]:
        """Activate a subnet drawn uniformly per slot and return its arch dict.

        Args:
            rng: a numpy Generator or a seed (a fresh unseeded generator when None).
            resolutions: if given, also draw ``r`` from these.
        """
        generator = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        arch = sample_arch(self.choices, generator, resolutions)
        self.set_active_subnet(ks=arch["ks"], e=arch["e"], d=arch["d"], r=arch.get("r"))
        return arch

    def set_max_net(self) -> None:
        """Activate the largest subnet."""
        self.set_active_subnet(ks=max(self.ks_list), e=max(self.expand_ratio_list), d=max(self.depth_list))

    def set_min_net(self) -> None:
        """Activate the smallest subnet."""
        self.set_active_subnet(ks=min(self.ks_list), e=min(self.expand_ratio_list), d=min(self.depth_list))

    def re_organize_middle_weights(self, expand_ratio_stage: int = 0) -> None:
        """Sort every elastic layer's middle channels by importance (see ``DynamicMBConvLayer``)."""
        for layer in self.elastic_blocks:
            layer.re_organize_middle_weights(expand_ratio_stage)

    # ----------------------------------------------------------------- extraction

    def get_active_subnet(self, preserve_weight: bool = True) -> MobileNetV3:
        """Copy the active subnet out as a standalone static network.

        In eval mode it computes the same outputs as this supernet with the same active subnet, and its
        ``state_dict`` has OFA's static-subnet keys.

        Args:
            preserve_weight: copy weights (always true here; kept for OFA's signature).
        """
        if not preserve_weight:
            logger.debug("get_active_subnet(preserve_weight=False) still copies weights")
        first_conv = copy.deepcopy(self.first_conv)
        blocks = [copy.deepcopy(self.blocks[0])]
        in_chs = self.blocks[0].conv.out_chs
        for group, depth in zip(self.block_group_info, self.runtime_depth):
            for idx in group[:depth]:
                block: ResidualBlock = self.blocks[idx]  # type: ignore[assignment]
                layer: DynamicMBConvLayer = block.conv  # type: ignore[assignment]
                sub_layer = layer.get_active_subnet(in_chs)
                blocks.append(ResidualBlock(sub_layer, shortcut=block.has_skip))
                in_chs = layer.out_chs
        subnet = MobileNetV3(
            first_conv,
            blocks,
            copy.deepcopy(self.final_expand_layer),
            copy.deepcopy(self.feature_mix_layer),
            copy.deepcopy(self.classifier),
            arch=self.active_arch(),
        )
        subnet.train(self.training)
        return subnet


def _plain_number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else float(value)
