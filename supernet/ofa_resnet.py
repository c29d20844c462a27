"""The elastic OFA-ResNet50 supernet, with OFA's state_dict layout and method names.

One ``OFAResNets`` holds every subnet of OFA's ResNet50 space: a three-conv input stem whose middle conv can be
skipped, 3x3/2 max pooling, four stages of bottleneck blocks (per stage: ``base + d`` blocks and a width from
``width_mult_list``; per block: an expand ratio), global pooling and the classifier. ``get_active_subnet`` copies
the active subnet out as a :class:`~supernet.static_resnet.ResNets`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from layers import Bottleneck, ConvBNAct, ResidualBlock, global_avg_pool
from space import make_divisible
from supernet._config import ConfigDict
from supernet._net_config import bn_config, set_bn_param
from supernet.elastic_resnet import DynamicBottleneck, DynamicConvLayer, DynamicLinearLayer
from space.families import (
    RESNET_BASE_DEPTHS,
    RESNET_BN_EPS,
    RESNET_STAGE_STRIDES,
    RESNET_STAGE_WIDTHS,
    RESNET_STEM_WIDTH,
    ResNetChoices,
    parse_resnet_arch,
)
from supernet.static_resnet import ResNets

__all__ = ["OFAResNets", "ResNetSupernetConfig"]


@dataclass(frozen=True)
class ResNetSupernetConfig(ConfigDict):
    """Everything needed to rebuild an ``OFAResNets``."""

    depth_list: tuple[int, ...] = (0, 1, 2)  # extra blocks per stage
    expand_ratio_list: tuple[float, ...] = (0.2, 0.25, 0.35)  # middle width / output width
    width_mult_list: tuple[float, ...] = (0.65, 0.8, 1.0)  # elastic width per stage
    n_classes: int = 1000  # classifier outputs
    dropout_rate: float = 0.0  # dropout before the classifier
    bn_momentum: float = 0.1  # BatchNorm momentum
    bn_eps: float = RESNET_BN_EPS  # BatchNorm epsilon
    width_mult: float = 1.0  # fixed multiplier under the elastic one (1.0 is OFA's; small-data presets shrink it)


class OFAResNets(nn.Module):
    """Elastic ResNet50 supernet (OFA's ``OFAResNets``).

    Args:
        depth_list: extra-block choices per stage (on top of ResNet50's base depths 2, 2, 4, 2).
        expand_ratio_list: expand ratio choices.
        width_mult_list: width choices, as multipliers of ResNet50's widths.
        n_classes: classifier outputs.
        dropout_rate: dropout before the classifier.
        bn_momentum: BatchNorm momentum.
        bn_eps: BatchNorm epsilon.
        width_mult: a fixed multiplier applied with every elastic one (1.0 reproduces OFA's widths).
    """

    def __init__(
        self,
        depth_list: Sequence[int] = (0, 1, 2),
        expand_ratio_list: Sequence[float] = (0.2, 0.25, 0.35),
        width_mult_list: Sequence[float] = (0.65, 0.8, 1.0),
        n_classes: int = 1000,
        dropout_rate: float = 0.0,
        bn_momentum: float = 0.1,
        bn_eps: float = RESNET_BN_EPS,
        width_mult: float = 1.0,
    ) -> None:
        super().__init__()
        self.depth_list = sorted({int(d) for d in depth_list})
        self.expand_ratio_list = sorted({float(e) for e in expand_ratio_list})
        self.width_mult_list = sorted({float(w) for w in width_mult_list})
        if not self.depth_list or self.depth_list[0] < 0:
            raise ValueError(f"depth_list must hold non-negative ints, got {list(depth_list)}")
        if not self.expand_ratio_list or self.expand_ratio_list[0] <= 0:
            raise ValueError(f"expand_ratio_list must hold positive ratios, got {list(expand_ratio_list)}")
        if not self.width_mult_list or self.width_mult_list[0] <= 0 or width_mult <= 0:
            raise ValueError(f"width multipliers must be positive, got {list(width_mult_list)} and {width_mult}")
        self.n_classes = int(n_classes)
        self.dropout_rate = float(dropout_rate)
        self.width_mult = float(width_mult)

        # Multiplying by width_mult=1.0 first leaves OFA's products (and so its rounding) unchanged.
        stem_list = [make_divisible(RESNET_STEM_WIDTH * self.width_mult * w, 8) for w in self.width_mult_list]
        mid_stem_list = [make_divisible(c // 2, 8) for c in stem_list]
        stage_lists = [
            [make_divisible(width * self.width_mult * w, 8) for w in self.width_mult_list]
            for width in RESNET_STAGE_WIDTHS
        ]
        self.input_stem = nn.ModuleList(
            [
                DynamicConvLayer(3, mid_stem_list, 3, stride=2),
                ResidualBlock(DynamicConvLayer(max(mid_stem_list), mid_stem_list, 3), shortcut=True),
                DynamicConvLayer(max(mid_stem_list), stem_list, 3),
            ]
        )
        self.max_pooling = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        blocks: list[DynamicBottleneck] = []
        self.block_group_info: list[list[int]] = []
        in_list = stem_list
        for base, out_list, stride in zip(RESNET_BASE_DEPTHS, stage_lists, RESNET_STAGE_STRIDES):
            n_blocks = base + max(self.depth_list)
            self.block_group_info.append(list(range(len(blocks), len(blocks) + n_blocks)))
            for j in range(n_blocks):
                blocks.append(DynamicBottleneck(in_list, out_list, self.expand_ratio_list, 3, stride if j == 0 else 1))
                in_list = out_list
        self.blocks = nn.ModuleList(blocks)
        self.classifier = DynamicLinearLayer(max(in_list), self.n_classes, self.dropout_rate)
        set_bn_param(self, bn_momentum, bn_eps)

        self.input_stem_skipping = False
        self.runtime_depth = [len(group) for group in self.block_group_info]  # blocks each stage runs
        # Indices into width_mult_list (stem conv 1, stem conv 3, stages); kept because narrow presets round
        # several multipliers to one width, so widths alone do not give them back.
        self.active_width_index = [len(self.width_mult_list) - 1] * (2 + len(self.block_group_info))
        self.active_resolution: int | None = None

    # ----------------------------------------------------------------- description

    @property
    def config(self) -> ResNetSupernetConfig:
        """Constructor arguments, for rebuilding this supernet."""
        bn = bn_config(self)
        return ResNetSupernetConfig(
            depth_list=tuple(self.depth_list),
            expand_ratio_list=tuple(self.expand_ratio_list),
            width_mult_list=tuple(self.width_mult_list),
            n_classes=self.n_classes,
            dropout_rate=self.dropout_rate,
            bn_momentum=bn["momentum"],
            bn_eps=bn["eps"],
            width_mult=self.width_mult,
        )

    @classmethod
    def from_config(cls, config: ResNetSupernetConfig) -> OFAResNets:
        """Build an untrained supernet from its :class:`ResNetSupernetConfig`."""
        return cls(**{k: getattr(config, k) for k in config.__dataclass_fields__})

    @property
    def choices(self) -> ResNetChoices:
        """The values ``set_active_subnet`` accepts."""
        return ResNetChoices(
            d=tuple(self.depth_list),
            e=tuple(self.expand_ratio_list),
            n_widths=len(self.width_mult_list),
            n_blocks=len(self.blocks),
        )

    def _stem_layers(self) -> list[nn.Module]:
        stem = list(self.input_stem)
        return [stem[0], stem[2]] if self.input_stem_skipping else stem

    # ----------------------------------------------------------------- forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self._stem_layers():
            x = layer(x)
        x = self.max_pooling(x)
        for group, depth in zip(self.block_group_info, self.runtime_depth):
            for idx in group[:depth]:
                x = self.blocks[idx](x)
        return self.classifier(global_avg_pool(x))

    # ----------------------------------------------------------------- elastic settings

    def set_active_subnet(
        self,
        arch: Mapping[str, Any] | None = None,
        *,
        d: int | Sequence[int] | None = None,
        e: float | Sequence[float] | None = None,
        w: int | Sequence[int] | None = None,
        r: int | Sequence[int] | None = None,
    ) -> None:
        """Choose the subnet that ``forward`` runs.

        Accepts an arch dict ``{"d": [5], "e": [18], "w": [6], "r": int}`` and/or OFA's keyword form, where a
        number applies to every entry. Fields left out keep their current value.

        Raises:
            ValueError: a field has the wrong length or a value this supernet cannot run.
        """
        parsed = parse_resnet_arch(self.choices, arch, d=d, e=e, w=w, r=r)
        if parsed.e is not None:
            for block, ratio in zip(self.blocks, parsed.e):
                block.active_expand_ratio = ratio
        if parsed.w is not None:
            self.active_width_index = list(parsed.w)
            stem0, stem1, stem2 = self.input_stem
            stem0.active_out_chs = stem1.conv.active_out_chs = stem0.out_chs_list[parsed.w[0]]
            stem2.active_out_chs = stem2.out_chs_list[parsed.w[1]]
            for group, width_index in zip(self.block_group_info, parsed.w[2:]):
                for idx in group:
                    block = self.blocks[idx]
                    block.active_out_chs = block.out_chs_list[width_index]
        if parsed.d is not None:
            max_depth = max(self.depth_list)
            self.input_stem_skipping = parsed.d[0] != max_depth
            for s, extra in enumerate(parsed.d[1:]):
                self.runtime_depth[s] = len(self.block_group_info[s]) - (max_depth - extra)
        if parsed.r is not None:
            self.active_resolution = parsed.r

    def active_arch(self) -> dict[str, Any]:
        """The active subnet as an arch dict (``r`` included when one was set)."""
        max_depth = max(self.depth_list)
        arch: dict[str, Any] = {
            "d": [min(self.depth_list) if self.input_stem_skipping else max_depth]
            + [depth - len(g) + max_depth for g, depth in zip(self.block_group_info, self.runtime_depth)],
            "e": [block.active_expand_ratio for block in self.blocks],
            "w": list(self.active_width_index),
        }
        if self.active_resolution is not None:
            arch["r"] = self.active_resolution
        return arch

    def sample_active_subnet(
        self, rng: np.random.Generator | int | None = None, resolutions: Sequence[int] | None = None
    ) -> dict[str, Any]:
        """Activate a subnet drawn as OFA draws one (stem kept or skipped, each other entry uniform) and return it.

        Args:
            rng: a numpy Generator or a seed (a fresh unseeded generator when None).
            resolutions: if given, also draw ``r`` from these.
        """
        gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        stem_d = int(gen.choice([min(self.depth_list), max(self.depth_list)]))
        arch: dict[str, Any] = {
            "d": [stem_d] + [int(v) for v in gen.choice(self.depth_list, size=len(self.block_group_info))],
            "e": [float(v) for v in gen.choice(self.expand_ratio_list, size=len(self.blocks))],
            "w": [int(v) for v in gen.integers(0, len(self.width_mult_list), size=2 + len(self.block_group_info))],
        }
        if resolutions:
            arch["r"] = int(gen.choice(np.asarray(resolutions)))
        self.set_active_subnet(arch)
        return arch

    def set_max_net(self) -> None:
        """Activate the largest subnet."""
        self.set_active_subnet(d=max(self.depth_list), e=max(self.expand_ratio_list), w=len(self.width_mult_list) - 1)

    def set_min_net(self) -> None:
        """Activate the smallest subnet."""
        self.set_active_subnet(d=min(self.depth_list), e=min(self.expand_ratio_list), w=0)

    def re_organize_middle_weights(self, expand_ratio_stage: int = 0) -> None:
        """Sort every block's middle channels by importance (see ``DynamicBottleneck``)."""
        for block in self.blocks:
            block.re_organize_middle_weights(expand_ratio_stage)

    # ----------------------------------------------------------------- extraction

    def get_active_subnet(self) -> ResNets:
        """Copy the active subnet out as a standalone static network with OFA's static keys.

        In eval mode it computes the same outputs as this supernet with the same active subnet.
        """
        stem0, stem1, stem2 = self.input_stem
        stem_chs = stem0.active_out_chs
        input_stem: list[ConvBNAct | ResidualBlock] = [stem0.get_active_subnet(3)]
        if not self.input_stem_skipping:
            input_stem.append(ResidualBlock(stem1.conv.get_active_subnet(stem_chs), shortcut=True))
        input_stem.append(stem2.get_active_subnet(stem_chs))
        in_chs = stem2.active_out_chs
        blocks: list[Bottleneck] = []
        for group, depth in zip(self.block_group_info, self.runtime_depth):
            for idx in group[:depth]:
                block: DynamicBottleneck = self.blocks[idx]  # type: ignore[assignment]
                blocks.append(block.get_active_subnet(in_chs))
                in_chs = block.active_out_chs
        subnet = ResNets(input_stem, blocks, self.classifier.get_active_subnet(in_chs), arch=self.active_arch())
        subnet.train(self.training)
        return subnet
