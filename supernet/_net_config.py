"""OFA's ``net.config`` JSON for single layers, written from and read into :mod:`layers` modules.

Shared by the static ProxylessNAS and ResNet50 networks (the static MobileNetV3 uses the classifier and BN
helpers; its conv and block entries keep OFA's older MobileNetV3 naming); the field sets are those of OFA's
``ofa.utils.layers`` ``config`` properties (``ConvLayer``, ``IdentityLayer``, ``LinearLayer``, ``MBConvLayer``,
``ResNetBottleneckBlock``), so a written config compares equal to OFA's own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from layers import Bottleneck, Classifier, ConvBNAct, MBConv, ResidualBlock
from space.families import bottleneck_mid_chs

__all__ = [
    "bn_config",
    "bottleneck_config",
    "bottleneck_from_config",
    "classifier_config",
    "classifier_from_config",
    "conv_config",
    "conv_from_config",
    "identity_config",
    "mbconv_block_config",
    "mbconv_block_from_config",
    "set_bn_from_config",
    "set_bn_param",
]


def _act(name: str) -> str | None:
    return None if name == "none" else name


def bn_config(net: nn.Module) -> dict[str, Any]:
    """OFA's ``bn`` entry: momentum and epsilon of the network's BatchNorms (``ws_eps``: no weight standardization)."""
    bn = next((m for m in net.modules() if isinstance(m, nn.BatchNorm2d)), None)
    momentum, eps = (bn.momentum, bn.eps) if bn is not None else (0.1, 1e-5)
    return {"momentum": momentum, "eps": eps, "ws_eps": None}


def set_bn_param(net: nn.Module, momentum: float, eps: float) -> None:
    """Set momentum and epsilon of every BatchNorm in ``net``."""
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = momentum
            module.eps = eps


def set_bn_from_config(net: nn.Module, config: Mapping[str, Any], default_eps: float) -> None:
    """Set every BatchNorm's momentum and epsilon from a ``net.config``'s ``bn`` entry (or the defaults)."""
    bn_cfg = config.get("bn") or {}
    set_bn_param(net, float(bn_cfg.get("momentum", 0.1)), float(bn_cfg.get("eps", default_eps)))


def conv_config(layer: ConvBNAct) -> dict[str, Any]:
    """``ConvLayer`` entry."""
    return {
        "name": "ConvLayer",
        "kernel_size": layer.kernel,
        "stride": layer.stride,
        "dilation": 1,
        "groups": layer.groups,
        "bias": False,
        "has_shuffle": False,
        "use_se": layer.se is not None,
        "in_channels": layer.in_chs,
        "out_channels": layer.out_chs,
        "use_bn": layer.bn is not None,
        "act_func": _act(layer.act_name),
        "dropout_rate": 0,
        "ops_order": "weight_bn_act",
    }


def conv_from_config(cfg: Mapping[str, Any]) -> ConvBNAct:
    """A :class:`layers.ConvBNAct` from a ``ConvLayer`` entry."""
    return ConvBNAct(
        int(cfg["in_channels"]),
        int(cfg["out_channels"]),
        int(cfg.get("kernel_size", 3)),
        int(cfg.get("stride", 1)),
        groups=int(cfg.get("groups") or 1),
        act=cfg.get("act_func"),
        bn=bool(cfg.get("use_bn", True)),
        se=bool(cfg.get("use_se", False)),
    )


def identity_config(chs: int) -> dict[str, Any]:
    """``IdentityLayer`` entry (a residual shortcut)."""
    return {
        "name": "IdentityLayer",
        "in_channels": chs,
        "out_channels": chs,
        "use_bn": False,
        "act_func": None,
        "dropout_rate": 0,
        "ops_order": "weight_bn_act",
    }


def classifier_config(layer: Classifier) -> dict[str, Any]:
    """``LinearLayer`` entry."""
    return {
        "name": "LinearLayer",
        "in_features": layer.in_chs,
        "out_features": layer.out_chs,
        "bias": True,
        "use_bn": False,
        "act_func": None,
        "dropout_rate": layer.dropout_rate,
        "ops_order": "weight_bn_act",
    }


def classifier_from_config(cfg: Mapping[str, Any]) -> Classifier:
    """A :class:`layers.Classifier` from a ``LinearLayer`` entry."""
    return Classifier(int(cfg["in_features"]), int(cfg["out_features"]), float(cfg.get("dropout_rate") or 0.0))


def mbconv_block_config(block: ResidualBlock) -> dict[str, Any]:
    """``ResidualBlock`` entry around an ``MBConvLayer`` (no expand conv: ratio 1, no mid channels)."""
    conv: MBConv = block.conv  # type: ignore[assignment]
    expanded = conv.inverted_bottleneck is not None
    ratio = conv.mid_chs / conv.in_chs if expanded else 1
    layer = {
        "name": "MBConvLayer",
        "in_channels": conv.in_chs,
        "out_channels": conv.out_chs,
        "kernel_size": conv.kernel,
        "stride": conv.stride,
        "expand_ratio": int(ratio) if float(ratio).is_integer() else ratio,
        "mid_channels": conv.mid_chs if expanded else None,
        "act_func": conv.act_name,
        "use_se": conv.se is not None,
        "groups": None,
    }
    shortcut = identity_config(conv.in_chs) if block.has_skip else None
    return {"name": "ResidualBlock", "conv": layer, "shortcut": shortcut}


def mbconv_block_from_config(cfg: Mapping[str, Any]) -> ResidualBlock:
    """A :class:`layers.ResidualBlock` around a :class:`layers.MBConv` from a ``ResidualBlock`` entry."""
    layer = cfg.get("conv") or cfg["mobile_inverted_conv"]
    in_chs = int(layer["in_channels"])
    ratio = float(layer.get("expand_ratio", 1))
    mid = layer.get("mid_channels")
    mid_chs = in_chs if ratio == 1 else (int(mid) if mid is not None else round(in_chs * ratio))
    conv = MBConv(
        in_chs,
        mid_chs,
        int(layer["out_channels"]),
        int(layer["kernel_size"]),
        int(layer.get("stride", 1)),
        act=layer.get("act_func") or "relu6",
        se=bool(layer.get("use_se", False)),
    )
    return ResidualBlock(conv, shortcut=cfg.get("shortcut") is not None)


def bottleneck_config(block: Bottleneck) -> dict[str, Any]:
    """``ResNetBottleneckBlock`` entry."""
    ratio = block.expand_ratio if block.expand_ratio is not None else block.mid_chs / block.out_chs
    return {
        "name": "ResNetBottleneckBlock",
        "in_channels": block.in_chs,
        "out_channels": block.out_chs,
        "kernel_size": block.kernel,
        "stride": block.stride,
        "expand_ratio": ratio,
        "mid_channels": block.mid_chs,
        "act_func": block.act_name,
        "groups": 1,
        "downsample_mode": block.downsample_mode,
    }


def bottleneck_from_config(cfg: Mapping[str, Any]) -> Bottleneck:
    """A :class:`layers.Bottleneck` from a ``ResNetBottleneckBlock`` entry (``mid_channels`` as given)."""
    out_chs = int(cfg["out_channels"])
    ratio = float(cfg.get("expand_ratio", 0.25))
    mid = cfg.get("mid_channels")
    if mid is None:
        mid = bottleneck_mid_chs(out_chs, ratio)
    return Bottleneck(
        int(cfg["in_channels"]),
        int(mid),
        out_chs,
        int(cfg.get("kernel_size", 3)),
        int(cfg.get("stride", 1)),
        act=cfg.get("act_func") or "relu",
        downsample_mode=cfg.get("downsample_mode") or "avgpool_conv",
        expand_ratio=ratio,
    )
