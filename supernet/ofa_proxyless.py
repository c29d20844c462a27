"""The elastic OFA-ProxylessNAS supernet, with OFA's state_dict layout and method names.

One ``OFAProxylessNASNets`` holds every subnet of OFA's ProxylessNAS space: a stem, a fixed first block (expand
ratio 1), 21 elastic block slots in six stages (kernel and expand ratio per slot, depth per stage; the last stage
has one slot), a 1x1 feature mix before pooling and the classifier; ReLU6, no squeeze-excite. OFA released it at
``width_mult=1.3`` (``ofa_proxyless_d234_e346_k357_w1.3``). The elastic blocks are the MobileNetV3 supernet's
:class:`~supernet.elastic_layers.DynamicMBConvLayer`; ``get_active_subnet`` copies the active subnet out as a
:class:`~supernet.static_proxyless.ProxylessNASNets`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from layers import Classifier, ConvBNAct, MBConv, ResidualBlock, global_avg_pool
from space import make_divisible
from supernet._config import ConfigDict
from supernet._net_config import bn_config, set_bn_param
from supernet.elastic_layers import DynamicMBConvLayer
from space.families import (
    PROXYLESS_ACT,
    PROXYLESS_BASE_WIDTHS,
    PROXYLESS_BN_EPS,
    PROXYLESS_STAGE_STRIDES,
    ProxylessChoices,
    parse_proxyless_arch,
)
from supernet.static_proxyless import ProxylessNASNets
from supernet.static_subnet import remap_legacy_keys

__all__ = ["OFAProxylessNASNets", "ProxylessSupernetConfig", "sample_proxyless_arch"]


@dataclass(frozen=True)
class ProxylessSupernetConfig(ConfigDict):
    """Everything needed to rebuild an ``OFAProxylessNASNets``."""

    width_mult: float = 1.3  # channel multiplier (OFA released 1.3)
    ks_list: tuple[int, ...] = (3, 5, 7)  # depthwise kernel choices
    expand_ratio_list: tuple[int, ...] = (3, 4, 6)  # expand ratio choices
    depth_list: tuple[int, ...] = (2, 3, 4)  # blocks-per-stage choices (the last stage has one block)
    n_classes: int = 1000  # classifier outputs
    dropout_rate: float = 0.1  # dropout before the classifier
    bn_momentum: float = 0.1  # BatchNorm momentum
    bn_eps: float = PROXYLESS_BN_EPS  # BatchNorm epsilon (OFA's ProxylessNAS uses 1e-3)
    base_stage_width: tuple[int, ...] = PROXYLESS_BASE_WIDTHS  # nine widths before width_mult


class OFAProxylessNASNets(nn.Module):
    """Elastic ProxylessNAS supernet (OFA's ``OFAProxylessNASNets``).

    Args:
        width_mult: channel multiplier.
        ks_list: depthwise kernel choices.
        expand_ratio_list: expand ratio choices.
        depth_list: per-stage depth choices.
        n_classes: classifier outputs.
        dropout_rate: dropout before the classifier.
        bn_momentum: BatchNorm momentum.
        bn_eps: BatchNorm epsilon.
        base_stage_width: nine widths at multiplier 1.0 (stem, first block, six stages, feature mix).
    """

    def __init__(
        self,
        width_mult: float = 1.3,
        ks_list: Sequence[int] = (3, 5, 7),
        expand_ratio_list: Sequence[int] = (3, 4, 6),
        depth_list: Sequence[int] = (2, 3, 4),
        n_classes: int = 1000,
        dropout_rate: float = 0.1,
        bn_momentum: float = 0.1,
        bn_eps: float = PROXYLESS_BN_EPS,
        base_stage_width: Sequence[int] = PROXYLESS_BASE_WIDTHS,
    ) -> None:
        super().__init__()
        self.width_mult = float(width_mult)
        self.ks_list = sorted({int(k) for k in ks_list})
        self.expand_ratio_list = sorted(set(expand_ratio_list))
        self.depth_list = sorted({int(d) for d in depth_list})
        if not self.ks_list or any(k % 2 == 0 or k < 1 for k in self.ks_list):
            raise ValueError(f"ks_list must hold odd positive ints, got {list(ks_list)}")
        if not self.depth_list or self.depth_list[0] < 1:
            raise ValueError(f"depth_list must hold positive ints, got {list(depth_list)}")
        if not self.expand_ratio_list or min(self.expand_ratio_list) <= 1:
            raise ValueError(f"expand_ratio_list must hold ratios above 1, got {list(expand_ratio_list)}")
        if len(base_stage_width) != 9:
            raise ValueError(f"base_stage_width must have 9 widths, got {len(base_stage_width)}")
        self.n_classes = int(n_classes)
        self.dropout_rate = float(dropout_rate)
        self.base_stage_width = tuple(int(w) for w in base_stage_width)

        widths = [make_divisible(w * self.width_mult, 8) for w in self.base_stage_width]
        stem_chs, first_chs, stage_chs, mix_chs = widths[0], widths[1], widths[2:8], widths[8]
        stage_slots = [max(self.depth_list)] * (len(stage_chs) - 1) + [1]
        self.first_conv = ConvBNAct(3, stem_chs, kernel=3, stride=2, act=PROXYLESS_ACT)
        first = MBConv(stem_chs, stem_chs, first_chs, 3, 1, act=PROXYLESS_ACT)  # expand ratio 1: no expand conv
        blocks: list[ResidualBlock] = [ResidualBlock(first, shortcut=False)]  # OFA gives it no shortcut
        self.block_group_info: list[list[int]] = []
        in_chs = first_chs
        for out_chs, slots, stride in zip(stage_chs, stage_slots, PROXYLESS_STAGE_STRIDES):
            self.block_group_info.append(list(range(len(blocks), len(blocks) + slots)))
            for j in range(slots):
                block_stride = stride if j == 0 else 1
                layer = DynamicMBConvLayer(in_chs, out_chs, self.ks_list, self.expand_ratio_list, block_stride,
                                           PROXYLESS_ACT)
                blocks.append(ResidualBlock(layer, shortcut=block_stride == 1 and in_chs == out_chs))
                in_chs = out_chs
        self.blocks = nn.ModuleList(blocks)
        self.feature_mix_layer = ConvBNAct(in_chs, mix_chs, kernel=1, act=PROXYLESS_ACT)
        self.classifier = Classifier(mix_chs, self.n_classes, self.dropout_rate)
        set_bn_param(self, bn_momentum, bn_eps)

        self.runtime_depth = [len(group) for group in self.block_group_info]
        self.active_resolution: int | None = None

    # ----------------------------------------------------------------- description

    @property
    def config(self) -> ProxylessSupernetConfig:
        """Constructor arguments, for rebuilding this supernet."""
        bn = bn_config(self)
        return ProxylessSupernetConfig(
            width_mult=self.width_mult,
            ks_list=tuple(self.ks_list),
            expand_ratio_list=tuple(self.expand_ratio_list),
            depth_list=tuple(self.depth_list),
            n_classes=self.n_classes,
            dropout_rate=self.dropout_rate,
            bn_momentum=bn["momentum"],
            bn_eps=bn["eps"],
            base_stage_width=self.base_stage_width,
        )

    @classmethod
    def from_config(cls, config: ProxylessSupernetConfig) -> OFAProxylessNASNets:
        """Build an untrained supernet from its :class:`ProxylessSupernetConfig`."""
        return cls(**{k: getattr(config, k) for k in config.__dataclass_fields__})

    @property
    def choices(self) -> ProxylessChoices:
        """The values ``set_active_subnet`` accepts."""
        return ProxylessChoices(
            ks=tuple(self.ks_list),
            e=tuple(self.expand_ratio_list),
            d=tuple(self.depth_list),
            stage_slots=tuple(len(group) for group in self.block_group_info),
        )

    @property
    def elastic_blocks(self) -> list[DynamicMBConvLayer]:
        """The elastic layers in slot order (the 21 blocks after the fixed first one)."""
        return [self.blocks[i].conv for group in self.block_group_info for i in group]  # type: ignore[misc]

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:
        """Load weights in OFA's layout; also accepts older OFA keys (``mobile_inverted_conv``)."""
        return super().load_state_dict(remap_legacy_keys(state_dict), strict=strict, assign=assign)

    # ----------------------------------------------------------------- forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks[0](self.first_conv(x))
        for group, depth in zip(self.block_group_info, self.runtime_depth):
            for idx in group[:depth]:
                x = self.blocks[idx](x)
        return self.classifier(global_avg_pool(self.feature_mix_layer(x)))

    # ----------------------------------------------------------------- elastic settings

    def set_active_subnet(
        self,
        arch: Mapping[str, Any] | None = None,
        *,
        ks: int | Sequence[int] | None = None,
        e: int | Sequence[int] | None = None,
        d: int | Sequence[int] | None = None,
        r: int | Sequence[int] | None = None,
    ) -> None:
        """Choose the subnet that ``forward`` runs.

        Accepts an arch dict ``{"ks": [21], "e": [21], "d": [6], "r": int}`` and/or OFA's keyword form, where an
        int applies to every slot. Fields left out keep their current value.

        Raises:
            ValueError: a field has the wrong length or a value this supernet cannot run.
        """
        parsed = parse_proxyless_arch(self.choices, arch, ks=ks, e=e, d=d, r=r)
        layers = self.elastic_blocks
        for layer, k, ratio in zip(layers, parsed.ks or [None] * len(layers), parsed.e or [None] * len(layers)):
            if k is not None:
                layer.active_kernel = int(k)
            if ratio is not None:
                layer.active_expand_ratio = ratio
        if parsed.d is not None:
            self.runtime_depth = list(parsed.d)
        if parsed.r is not None:
            self.active_resolution = parsed.r

    def active_arch(self) -> dict[str, Any]:
        """The active subnet as an arch dict (``r`` included when one was set)."""
        layers = self.elastic_blocks
        arch: dict[str, Any] = {
            "ks": [layer.active_kernel for layer in layers],
            "e": [layer.active_expand_ratio for layer in layers],
            "d": list(self.runtime_depth),
        }
        if self.active_resolution is not None:
            arch["r"] = self.active_resolution
        return arch

    def sample_active_subnet(
        self, rng: np.random.Generator | int | None = None, resolutions: Sequence[int] | None = None
    ) -> dict[str, Any]:
        """Activate a subnet drawn uniformly per slot (the one-slot stage runs its block) and return its arch.

        Args:
            rng: a numpy Generator or a seed (a fresh unseeded generator when None).
            resolutions: if given, also draw ``r`` from these.
        """
        gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        arch = sample_proxyless_arch(self.choices, gen)
        if resolutions:
            arch["r"] = int(gen.choice(np.asarray(resolutions)))
        self.set_active_subnet(arch)
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

    def get_active_subnet(self) -> ProxylessNASNets:
        """Copy the active subnet out as a standalone static network with OFA's static keys.

        In eval mode it computes the same outputs as this supernet with the same active subnet.
        """
        blocks = [copy.deepcopy(self.blocks[0])]
        in_chs = self.blocks[0].conv.out_chs
        for group, depth in zip(self.block_group_info, self.runtime_depth):
            for idx in group[:depth]:
                block: ResidualBlock = self.blocks[idx]  # type: ignore[assignment]
                layer: DynamicMBConvLayer = block.conv  # type: ignore[assignment]
                blocks.append(ResidualBlock(layer.get_active_subnet(in_chs), shortcut=block.has_skip))
                in_chs = layer.out_chs
        subnet = ProxylessNASNets(
            copy.deepcopy(self.first_conv),
            blocks,
            copy.deepcopy(self.feature_mix_layer),
            copy.deepcopy(self.classifier),
            arch=self.active_arch(),
        )
        subnet.train(self.training)
        return subnet


def sample_proxyless_arch(choices: ProxylessChoices, rng: np.random.Generator) -> dict[str, Any]:
    """One arch ``{"ks", "e", "d"}`` drawn uniformly per slot from ``choices`` (OFA's sampling); a one-slot stage
    runs its block whatever depth is drawn for it."""
    return {
        "ks": [int(v) for v in rng.choice(np.asarray(choices.ks), size=choices.n_slots)],
        "e": [int(v) for v in rng.choice(np.asarray(choices.e), size=choices.n_slots)],
        "d": [min(int(v), n) for v, n in zip(rng.choice(np.asarray(choices.d), size=len(choices.stage_slots)),
                                            choices.stage_slots)],
    }
