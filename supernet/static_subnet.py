"""A standalone MobileNetV3 subnet: what ``OFAMobileNetV3.get_active_subnet`` returns.

It is a plain ``torch.nn.Module`` with OFA's static-network key layout, so OFA's published
specialized-net weights load into it, and it can describe itself as OFA's ``net.config`` JSON.
``save_subnet``/``load_subnet`` keep it on disk as its config, arch and state_dict (no pickled classes).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from supernet.static_layers import (
    ConvLayer,
    LinearLayer,
    MBConvLayer,
    ResidualBlock,
    global_avg_pool,
    remap_legacy_keys,
)

__all__ = ["SUBNET_FORMAT_VERSION", "MobileNetV3", "OFANetwork", "load_subnet", "save_subnet"]

logger = logging.getLogger(__name__)

# Bumped whenever the layout written by ``save_subnet`` changes; ``load_subnet`` refuses others.
SUBNET_FORMAT_VERSION = 1


class OFANetwork(nn.Module):
    """What OFA's MobileNetV3 networks share, static or elastic: the head after the last block
    and loading OFA's older state-dict keys. Subclasses set ``final_expand_layer``,
    ``feature_mix_layer`` and ``classifier``."""

    def head(self, x: torch.Tensor) -> torch.Tensor:
        """Final expand, global pooling, feature mix and classifier: the last block's output to logits."""
        x = self.final_expand_layer(x)
        x = global_avg_pool(x)
        x = self.feature_mix_layer(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:
        """Load weights; also accepts older OFA keys (``mobile_inverted_conv``)."""
        return super().load_state_dict(remap_legacy_keys(state_dict), strict=strict, assign=assign)


class MobileNetV3(OFANetwork):
    """Static MobileNetV3: stem, inverted-residual blocks, final expand, pooling, feature mix, classifier.

    Args:
        first_conv: the stem.
        blocks: the residual blocks, first block included.
        final_expand_layer: the 1x1 conv after the last block.
        feature_mix_layer: the 1x1 conv after pooling.
        classifier: the linear layer.
        arch: the arch dict the subnet was extracted for, if any (kept for reference).
    """

    def __init__(
        self,
        first_conv: ConvLayer,
        blocks: list[ResidualBlock],
        final_expand_layer: ConvLayer,
        feature_mix_layer: ConvLayer,
        classifier: LinearLayer,
        arch: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.first_conv = first_conv
        self.blocks = nn.ModuleList(blocks)
        self.final_expand_layer = final_expand_layer
        self.feature_mix_layer = feature_mix_layer
        self.classifier = classifier
        self.arch = dict(arch) if arch is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.first_conv(x)
        for block in self.blocks:
            x = block(x)
        return self.head(x)

    @property
    def config(self) -> dict[str, Any]:
        """OFA's ``net.config`` description of this network (JSON-serializable)."""
        bn = next((m for m in self.modules() if isinstance(m, nn.BatchNorm2d)), None)
        return {
            "name": "MobileNetV3",
            "bn": {"momentum": bn.momentum if bn is not None else 0.1, "eps": bn.eps if bn is not None else 1e-5},
            "first_conv": _conv_config(self.first_conv),
            "blocks": [_block_config(b) for b in self.blocks],
            "final_expand_layer": _conv_config(self.final_expand_layer),
            "feature_mix_layer": _conv_config(self.feature_mix_layer),
            "classifier": {
                "name": "LinearLayer",
                "in_features": self.classifier.in_features,
                "out_features": self.classifier.out_features,
                "bias": True,
                "use_bn": False,
                "act_func": None,
                "dropout_rate": self.classifier.dropout_rate,
                "ops_order": "weight_bn_act",
            },
        }

    @classmethod
    def build_from_config(cls, config: Mapping[str, Any]) -> MobileNetV3:
        """Build an untrained network from OFA's ``net.config`` dict (old or new block naming).

        Raises:
            ValueError: the config is not an OFA MobileNetV3 description.
        """
        try:
            first_conv = _conv_from_config(config["first_conv"])
            blocks = [_block_from_config(b) for b in config["blocks"]]
            final_expand = _conv_from_config(config["final_expand_layer"])
            feature_mix = _conv_from_config(config["feature_mix_layer"])
            cls_cfg = config["classifier"]
            classifier = LinearLayer(
                int(cls_cfg["in_features"]), int(cls_cfg["out_features"]), float(cls_cfg.get("dropout_rate") or 0.0)
            )
        except (KeyError, TypeError) as err:
            raise ValueError(f"not an OFA MobileNetV3 net.config: missing or bad field {err}") from err
        net = cls(first_conv, blocks, final_expand, feature_mix, classifier)
        bn_cfg = config.get("bn") or {}
        for module in net.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.momentum = float(bn_cfg.get("momentum", 0.1))
                module.eps = float(bn_cfg.get("eps", 1e-5))
        return net


def _conv_config(layer: ConvLayer) -> dict[str, Any]:
    return {
        "name": "ConvLayer",
        "kernel_size": layer.kernel,
        "stride": layer.stride,
        "dilation": 1,
        "groups": 1,
        "bias": False,
        "has_shuffle": False,
        "in_channels": layer.in_chs,
        "out_channels": layer.out_chs,
        "use_bn": layer.use_bn,
        "act_func": layer.act_name,
        "dropout_rate": 0,
        "ops_order": "weight_bn_act",
    }


def _block_config(block: ResidualBlock) -> dict[str, Any]:
    conv: MBConvLayer = block.conv  # type: ignore[assignment]
    expand = conv.expand_ratio
    layer = {
        "name": "MBInvertedConvLayer",
        "in_channels": conv.in_chs,
        "out_channels": conv.out_chs,
        "kernel_size": conv.kernel,
        "stride": conv.stride,
        "expand_ratio": int(expand) if float(expand).is_integer() else expand,
        "mid_channels": conv.mid_chs if conv.has_expand else None,
        "act_func": conv.act_name,
        "use_se": conv.use_se,
    }
    shortcut = None
    if block.has_skip:
        shortcut = {
            "name": "IdentityLayer",
            "in_channels": [conv.in_chs],
            "out_channels": [conv.out_chs],
            "use_bn": False,
            "act_func": None,
            "dropout_rate": 0,
            "ops_order": "weight_bn_act",
        }
    return {"name": "MobileInvertedResidualBlock", "mobile_inverted_conv": layer, "shortcut": shortcut}


def _conv_from_config(cfg: Mapping[str, Any]) -> ConvLayer:
    return ConvLayer(
        int(cfg["in_channels"]),
        int(cfg["out_channels"]),
        int(cfg["kernel_size"]),
        int(cfg.get("stride", 1)),
        use_bn=bool(cfg.get("use_bn", True)),
        act=cfg.get("act_func"),
    )


def _block_from_config(cfg: Mapping[str, Any]) -> ResidualBlock:
    layer = cfg.get("mobile_inverted_conv") or cfg["conv"]
    in_chs = int(layer["in_channels"])
    expand = float(layer.get("expand_ratio", 1))
    mid = layer.get("mid_channels")
    has_expand = expand != 1
    conv = MBConvLayer(
        in_chs,
        int(layer["out_channels"]),
        int(layer["kernel_size"]),
        int(layer.get("stride", 1)),
        mid_chs=int(mid) if mid is not None else round(in_chs * expand),
        act=layer.get("act_func") or "relu",
        use_se=bool(layer.get("use_se", False)),
        has_expand=has_expand,
    )
    return ResidualBlock(conv, shortcut=cfg.get("shortcut") is not None)


def save_subnet(net: MobileNetV3, path: str | Path) -> Path:
    """Write ``net`` as ``{format_version, config, arch, state_dict}`` with ``torch.save``.

    Returns:
        The path written.
    """
    path = Path(path)
    torch.save(
        {
            "format_version": SUBNET_FORMAT_VERSION,
            "config": net.config,
            "arch": net.arch,
            "state_dict": net.state_dict(),
        },
        path,
    )
    logger.debug("saved subnet to %s", path)
    return path


def load_subnet(path: str | Path) -> MobileNetV3:
    """Read a file written by :func:`save_subnet`.

    Raises:
        ValueError: the file is not a subnet file or has another format version.
    """
    blob = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(blob, dict) or "config" not in blob or "state_dict" not in blob:
        raise ValueError(f"{path} is not a lutnas subnet file (expected keys config, state_dict)")
    version = blob.get("format_version")
    if version != SUBNET_FORMAT_VERSION:
        raise ValueError(f"{path} has subnet format_version {version!r}; this lutnas reads {SUBNET_FORMAT_VERSION}")
    net = MobileNetV3.build_from_config(blob["config"])
    net.load_state_dict(blob["state_dict"], strict=True)
    net.arch = blob.get("arch")
    return net
