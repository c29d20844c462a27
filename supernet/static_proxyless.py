"""A standalone ProxylessNAS subnet: what ``OFAProxylessNASNets.get_active_subnet`` returns.

A plain ``torch.nn.Module`` made of :mod:`layers` with OFA's static ``ProxylessNASNets`` key layout (``first_conv``,
``blocks.N.conv.*``, ``feature_mix_layer``, ``classifier.linear``), so OFA's ProxylessNAS weights load into it, and
it writes and reads OFA's ``net.config`` JSON.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from layers import Classifier, ConvBNAct, ResidualBlock, global_avg_pool
from supernet._net_config import (
    bn_config,
    classifier_config,
    classifier_from_config,
    conv_config,
    conv_from_config,
    mbconv_block_config,
    mbconv_block_from_config,
    set_bn_from_config,
)
from space.families import PROXYLESS_BN_EPS
from supernet.static_subnet import remap_legacy_keys

__all__ = ["ProxylessNASNets"]


class ProxylessNASNets(nn.Module):
    """Static ProxylessNAS: stem, inverted-residual blocks, 1x1 feature mix, global pooling, classifier.

    Args:
        first_conv: the stem.
        blocks: the residual blocks, the fixed first block included.
        feature_mix_layer: the 1x1 conv after the last block (before pooling, unlike MobileNetV3).
        classifier: the linear layer.
        arch: the arch dict the subnet was extracted for, if any (kept for reference).
    """

    def __init__(
        self,
        first_conv: ConvBNAct,
        blocks: Sequence[ResidualBlock],
        feature_mix_layer: ConvBNAct,
        classifier: Classifier,
        arch: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.first_conv = first_conv
        self.blocks = nn.ModuleList(blocks)
        self.feature_mix_layer = feature_mix_layer
        self.classifier = classifier
        self.arch = dict(arch) if arch is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.first_conv(x)
        for block in self.blocks:
            x = block(x)
        return self.classifier(global_avg_pool(self.feature_mix_layer(x)))

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:
        """Load weights; also accepts older OFA keys (``mobile_inverted_conv``)."""
        return super().load_state_dict(remap_legacy_keys(state_dict), strict=strict, assign=assign)

    @property
    def config(self) -> dict[str, Any]:
        """OFA's ``net.config`` description of this network (JSON-serializable)."""
        return {
            "name": "ProxylessNASNets",
            "bn": bn_config(self),
            "first_conv": conv_config(self.first_conv),
            "blocks": [mbconv_block_config(b) for b in self.blocks],  # type: ignore[arg-type]
            "feature_mix_layer": conv_config(self.feature_mix_layer),
            "classifier": classifier_config(self.classifier),
        }

    @classmethod
    def build_from_config(cls, config: Mapping[str, Any]) -> ProxylessNASNets:
        """Build an untrained network from OFA's ``net.config`` dict.

        Raises:
            ValueError: the config is not an OFA ProxylessNAS description.
        """
        try:
            net = cls(
                conv_from_config(config["first_conv"]),
                [mbconv_block_from_config(b) for b in config["blocks"]],
                conv_from_config(config["feature_mix_layer"]),
                classifier_from_config(config["classifier"]),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"not an OFA ProxylessNAS net.config: missing or bad field {err}") from err
        set_bn_from_config(net, config, PROXYLESS_BN_EPS)
        return net
