"""A standalone ResNet50 subnet: what ``OFAResNets.get_active_subnet`` returns.

A plain ``torch.nn.Module`` made of :mod:`layers` with OFA's static ``ResNets`` key layout (``input_stem.N``,
``blocks.N.conv1|conv2|conv3|downsample``, ``classifier.linear``), so OFA's ResNet50 weights load into it, and
it writes and reads OFA's ``net.config`` JSON.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from layers import Bottleneck, Classifier, ConvBNAct, ResidualBlock, global_avg_pool
from supernet._net_config import (
    bn_config,
    bottleneck_config,
    bottleneck_from_config,
    classifier_config,
    classifier_from_config,
    conv_config,
    conv_from_config,
    identity_config,
    set_bn_from_config,
)
from space.families import RESNET_BN_EPS

__all__ = ["ResNets"]


class ResNets(nn.Module):
    """Static ResNet: input stem, 3x3/2 max pooling, bottleneck blocks, global pooling, classifier.

    Args:
        input_stem: conv layers, or residual blocks around one (the skippable middle conv of OFA's stem).
        blocks: the bottleneck blocks.
        classifier: the linear layer.
        arch: the arch dict the subnet was extracted for, if any (kept for reference).
    """

    def __init__(
        self,
        input_stem: Sequence[ConvBNAct | ResidualBlock],
        blocks: Sequence[Bottleneck],
        classifier: Classifier,
        arch: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.input_stem = nn.ModuleList(input_stem)
        self.max_pooling = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.blocks = nn.ModuleList(blocks)
        self.classifier = classifier
        self.arch = dict(arch) if arch is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.input_stem:
            x = layer(x)
        x = self.max_pooling(x)
        for block in self.blocks:
            x = block(x)
        return self.classifier(global_avg_pool(x))

    @property
    def config(self) -> dict[str, Any]:
        """OFA's ``net.config`` description of this network (JSON-serializable)."""
        return {
            "name": "ResNets",
            "bn": bn_config(self),
            "input_stem": [_stem_config(layer) for layer in self.input_stem],
            "blocks": [bottleneck_config(b) for b in self.blocks],  # type: ignore[arg-type]
            "classifier": classifier_config(self.classifier),
        }

    @classmethod
    def build_from_config(cls, config: Mapping[str, Any]) -> ResNets:
        """Build an untrained network from OFA's ``net.config`` dict.

        Raises:
            ValueError: the config is not an OFA ResNets description.
        """
        try:
            net = cls(
                [_stem_from_config(layer) for layer in config["input_stem"]],
                [bottleneck_from_config(b) for b in config["blocks"]],
                classifier_from_config(config["classifier"]),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"not an OFA ResNets net.config: missing or bad field {err}") from err
        set_bn_from_config(net, config, RESNET_BN_EPS)
        return net


def _stem_config(layer: nn.Module) -> dict[str, Any]:
    if isinstance(layer, ResidualBlock):
        conv: ConvBNAct = layer.conv  # type: ignore[assignment]
        shortcut = identity_config(conv.in_chs) if layer.has_skip else None
        return {"name": "ResidualBlock", "conv": conv_config(conv), "shortcut": shortcut}
    return conv_config(layer)  # type: ignore[arg-type]


def _stem_from_config(cfg: Mapping[str, Any]) -> ConvBNAct | ResidualBlock:
    if cfg.get("name") == "ResidualBlock":
        return ResidualBlock(conv_from_config(cfg["conv"]), shortcut=cfg.get("shortcut") is not None)
    return conv_from_config(cfg)
