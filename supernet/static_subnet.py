"""A standalone MobileNetV3 subnet: what ``OFAMobileNetV3.get_active_subnet`` returns.

It is a plain ``torch.nn.Module`` made of :mod:`layers` with OFA's static-network key layout, so OFA's
published specialized-net weights load into it, and it can describe itself as OFA's ``net.config`` JSON.
Its layers are the profiler's block modules: :meth:`MobileNetV3.block_model` hands them, unchanged, to the
profiler's exporters. ``save_subnet``/``load_subnet`` keep it on disk as its config, arch and state_dict
(no pickled classes).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from collections import OrderedDict

from layers import Classifier, ConvBNAct, GlobalAvgPool, MBConv, ResidualBlock, SubnetModel, global_avg_pool
from space import read_net_config
from supernet._net_config import classifier_config, classifier_from_config
from space.bounds import check_archive

__all__ = [
    "SUBNET_FORMAT_VERSION",
    "MobileNetV3",
    "OFANetwork",
    "load_subnet",
    "remap_legacy_keys",
    "save_subnet",
    "subnet_resolution",
]

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
        first_conv: ConvBNAct,
        blocks: list[ResidualBlock],
        final_expand_layer: ConvBNAct,
        feature_mix_layer: ConvBNAct,
        classifier: Classifier,
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

    def block_model(self, resolution: int | None = None) -> SubnetModel:
        """This network's own layers in run order, paired with the blocks they implement at ``resolution``.

        Nothing is copied: the result shares this network's modules and is what the profiler's exporters take
        (``profiler.export.export_module(model, model.input_shape, fmt)``).

        Args:
            resolution: Input side in pixels; defaults to the ``r`` of :attr:`arch`.

        Raises:
            ValueError: No resolution is known.
        """
        r = subnet_resolution(self, resolution)
        run_order = [
            self.first_conv,
            *self.blocks,
            self.final_expand_layer,
            GlobalAvgPool(),
            self.feature_mix_layer,
            self.classifier,
        ]
        return SubnetModel(read_net_config(self.config, resolution=r), run_order)

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
            "classifier": classifier_config(self.classifier),
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
            classifier = classifier_from_config(config["classifier"])
        except (KeyError, TypeError) as err:
            raise ValueError(f"not an OFA MobileNetV3 net.config: missing or bad field {err}") from err
        net = cls(first_conv, blocks, final_expand, feature_mix, classifier)
        bn_cfg = config.get("bn") or {}
        for module in net.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.momentum = float(bn_cfg.get("momentum", 0.1))
                module.eps = float(bn_cfg.get("eps", 1e-5))
        return net


def _conv_config(layer: ConvBNAct) -> dict[str, Any]:
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
        "use_bn": layer.bn is not None,
        "act_func": layer.act_name,
        "dropout_rate": 0,
        "ops_order": "weight_bn_act",
    }


def _block_config(block: ResidualBlock) -> dict[str, Any]:
    conv: MBConv = block.conv  # type: ignore[assignment]
    expand = conv.mid_chs / conv.in_chs
    layer = {
        "name": "MBInvertedConvLayer",
        "in_channels": conv.in_chs,
        "out_channels": conv.out_chs,
        "kernel_size": conv.kernel,
        "stride": conv.stride,
        "expand_ratio": int(expand) if float(expand).is_integer() else expand,
        "mid_channels": conv.mid_chs if conv.inverted_bottleneck is not None else None,
        "act_func": conv.act_name,
        "use_se": conv.se is not None,
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


def _conv_from_config(cfg: Mapping[str, Any]) -> ConvBNAct:
    return ConvBNAct(
        int(cfg["in_channels"]),
        int(cfg["out_channels"]),
        int(cfg["kernel_size"]),
        int(cfg.get("stride", 1)),
        act=cfg.get("act_func"),
        bn=bool(cfg.get("use_bn", True)),
    )


def _block_from_config(cfg: Mapping[str, Any]) -> ResidualBlock:
    layer = cfg.get("mobile_inverted_conv") or cfg["conv"]
    in_chs = int(layer["in_channels"])
    expand = float(layer.get("expand_ratio", 1))
    mid = layer.get("mid_channels")
    conv = MBConv(
        in_chs,
        in_chs if expand == 1 else (int(mid) if mid is not None else round(in_chs * expand)),
        int(layer["out_channels"]),
        int(layer["kernel_size"]),
        int(layer.get("stride", 1)),
        act=layer.get("act_func") or "relu",
        se=bool(layer.get("use_se", False)),
    )
    return ResidualBlock(conv, shortcut=cfg.get("shortcut") is not None)


def subnet_resolution(subnet: MobileNetV3, resolution: int | None = None) -> int:
    """The input side of a static subnet: ``resolution`` if given, else the ``r`` of its arch.

    Raises:
        ValueError: Neither is set, or the value is not a positive int.
    """
    if resolution is None:
        r = (subnet.arch or {}).get("r")
        if isinstance(r, (list, tuple)) and len(r) == 1:
            r = r[0]
        if r is None:
            raise ValueError("resolution is required: the subnet's arch has no 'r'")
        resolution = int(r)
    if int(resolution) < 1:
        raise ValueError(f"resolution must be a positive int, got {resolution!r}")
    return int(resolution)


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


def _static_classes() -> dict[str, type]:
    # Imported here: the other families' static networks import this module.
    from supernet.static_proxyless import ProxylessNASNets
    from supernet.static_resnet import ResNets

    return {"ofa-mbv3": MobileNetV3, "ofa-proxyless": ProxylessNASNets, "ofa-resnet50": ResNets}


def save_subnet(net: nn.Module, path: str | Path) -> Path:
    """Write a static subnet of any family as ``{format_version, family, config, arch, state_dict}`` with
    ``torch.save``.

    Returns:
        The path written.
    """
    path = Path(path)
    family = next(name for name, cls in _static_classes().items() if isinstance(net, cls))
    torch.save(
        {
            "format_version": SUBNET_FORMAT_VERSION,
            "family": family,
            "config": net.config,
            "arch": net.arch,
            "state_dict": net.state_dict(),
        },
        path,
    )
    logger.debug("saved subnet to %s", path)
    return path


def load_subnet(path: str | Path) -> nn.Module:
    """Read a file written by :func:`save_subnet` (files without ``family`` are MobileNetV3s).

    Raises:
        ValueError: the file is not a subnet file or has another format version.
    """
    check_archive(path)  # a zip bomb is refused (ValueError) before torch inflates anything
    blob = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(blob, dict) or "config" not in blob or "state_dict" not in blob:
        raise ValueError(f"{path} is not a lutnas subnet file (expected keys config, state_dict)")
    version = blob.get("format_version")
    if version != SUBNET_FORMAT_VERSION:
        raise ValueError(f"{path} has subnet format_version {version!r}; this lutnas reads {SUBNET_FORMAT_VERSION}")
    classes = _static_classes()
    family = blob.get("family", "ofa-mbv3")
    if family not in classes:
        raise ValueError(f"{path}: family must be one of {', '.join(classes)}, got {str(family)[:200]!r}")
    net = classes[family].build_from_config(blob["config"])
    net.load_state_dict(blob["state_dict"], strict=True)
    net.arch = blob.get("arch")
    return net
