"""Read OFA's static ``net.config`` JSON (its specialized networks, every family) into the block list a LUT prices."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from space.block import Block
from space.bounds import loads_json, quoted

__all__ = ["read_net_config", "load_net_config", "net_config_family"]


def load_net_config(source: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    """The net.config dict from a path (file or the folder holding ``net.config``) or a dict."""
    if isinstance(source, Mapping):
        return dict(source)
    if not isinstance(source, (str, Path)):
        raise ValueError(f"a net.config must be a path or a dict, got {type(source).__name__}")
    path = Path(source)
    if path.is_dir():
        path = path / "net.config"
    try:
        cfg = loads_json(path.read_text())
    except OSError as err:
        raise ValueError(f"cannot read net.config {quoted(str(path))}: {err.strerror}") from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{quoted(str(path))}: not JSON ({_not_json_reason(err)})") from err
    if not isinstance(cfg, Mapping):
        raise ValueError(f"{quoted(str(path))}: a net.config must be a JSON object, got {type(cfg).__name__}")
    return cfg


def _not_json_reason(err: Exception) -> str:
    """Why a file is not JSON, in a few words (a decode error's message quotes the bytes)."""
    if isinstance(err, json.JSONDecodeError):
        return f"line {err.lineno}: {err.msg}"
    return "not UTF-8 text"


def read_net_config(source: str | Path | Mapping[str, Any], resolution: int) -> list[Block]:
    """The ordered blocks of an OFA net.config at ``resolution``: MobileNetV3 (``MobileNetV3``), ProxylessNAS
    (``ProxylessNASNets``) or ResNet (``ResNets``), told apart by their layers.

    Raises:
        ValueError: the config is none of these or is malformed.
    """
    cfg = load_net_config(source)
    try:
        return _blocks(cfg, resolution)
    except (KeyError, TypeError, AttributeError, OverflowError) as err:
        # A field of the wrong kind (a list where a layer dict goes, a string where a number goes).
        raise ValueError(f"net.config is not an OFA MobileNetV3, ProxylessNAS or ResNet config (missing or bad field "
                         f"{quoted(str(err))})") from err


def net_config_family(cfg: Mapping[str, Any]) -> str:
    """``ofa-mbv3``, ``ofa-proxyless`` or ``ofa-resnet50``: which of OFA's families a net.config's layers are.

    Raises:
        ValueError: none of them.
    """
    if "input_stem" in cfg:
        return "ofa-resnet50"
    if "final_expand_layer" in cfg:
        return "ofa-mbv3"
    if "feature_mix_layer" in cfg and "first_conv" in cfg:
        return "ofa-proxyless"
    raise ValueError(f"net.config {quoted(cfg.get('name', '?'))} is not an OFA MobileNetV3, ProxylessNAS or ResNet "
                     "config (it has none of final_expand_layer, feature_mix_layer, input_stem)")


def _blocks(cfg: Mapping[str, Any], resolution: int) -> list[Block]:
    family = net_config_family(cfg)
    if family == "ofa-resnet50":
        return _resnet_blocks(cfg, resolution)
    first = cfg["first_conv"]
    out = [Block.first_conv(resolution, int(first["out_channels"]), act=_act(first, "h_swish"))]
    side = out[0].out_hw
    for entry in cfg["blocks"]:
        if not isinstance(entry, Mapping):
            raise TypeError("a block must be a JSON object")
        # OFA's older configs name the layer mobile_inverted_conv, newer ones conv.
        conv = entry["mobile_inverted_conv"] if "mobile_inverted_conv" in entry else entry["conv"]
        in_chs, out_chs = int(conv["in_channels"]), int(conv["out_channels"])
        mid = conv.get("mid_channels")
        mid = int(mid) if mid is not None else round(in_chs * float(conv["expand_ratio"]))
        block = Block.mbconv(
            side, in_chs, out_chs, mid, kernel=int(conv["kernel_size"]), stride=int(conv["stride"]),
            skip=entry.get("shortcut") is not None, se=bool(conv.get("use_se", False)), act=_act(conv, "relu"),
        )
        out.append(block)
        side = block.out_hw
    cls = cfg["classifier"]
    if family == "ofa-proxyless":  # feature mix on the last map (keyed Conv_1), then a classifier that pools
        fm = cfg["feature_mix_layer"]
        return out + [
            Block.fixed("final_expand", side, int(fm["in_channels"]), side, int(fm["out_channels"]),
                        act=_act(fm, "relu6")),
            Block.fixed("classifier", side, int(cls["in_features"]), 1, int(cls["out_features"])),
        ]
    fe = cfg["final_expand_layer"]
    fm = cfg["feature_mix_layer"]
    return out + [
        Block.fixed("final_expand", side, int(fe["in_channels"]), side, int(fe["out_channels"])),
        Block.fixed("avgpool", side, int(fe["out_channels"]), 1, int(fe["out_channels"])),
        Block.fixed("feature_mix", 1, int(fm["in_channels"]), 1, int(fm["out_channels"])),
        Block.fixed("classifier", 1, int(cls["in_features"]), 1, int(cls["out_features"])),
    ]


def _act(layer: Mapping[str, Any], default: str) -> str:
    """A layer's activation: OFA's act_func (MobileNetV3 configs write only h_swish and relu)."""
    act = layer.get("act_func") or default
    if act not in ("relu", "relu6", "h_swish"):
        raise ValueError(f"net.config act_func must be one of relu, relu6, h_swish, got {quoted(act)}")
    return act


def _resnet_blocks(cfg: Mapping[str, Any], resolution: int) -> list[Block]:
    """OFA's ResNets: the input stem's convs (the middle one a residual), 3x3/2 max pool, bottlenecks, classifier."""
    out: list[Block] = []
    side = resolution
    for layer in cfg["input_stem"]:
        if not isinstance(layer, Mapping):
            raise TypeError("an input_stem layer must be a JSON object")
        conv = layer["conv"] if layer.get("name") == "ResidualBlock" else layer
        block = Block.conv_bn_act(side, int(conv["in_channels"]), int(conv["out_channels"]),
                                  int(conv["kernel_size"]), int(conv["stride"]), _act(conv, "relu"),
                                  skip=layer.get("name") == "ResidualBlock" and layer.get("shortcut") is not None)
        out.append(block)
        side = block.out_hw
    pool = Block.maxpool(side, out[-1].out_chs)
    out.append(pool)
    side = pool.out_hw
    for entry in cfg["blocks"]:
        if not isinstance(entry, Mapping):
            raise TypeError("a block must be a JSON object")
        if entry.get("downsample_mode", "avgpool_conv") != "avgpool_conv":
            raise ValueError(f"net.config bottleneck downsample_mode must be avgpool_conv (OFA's ResNet50), got "
                             f"{quoted(entry.get('downsample_mode'))}")
        block = Block.bottleneck(side, int(entry["in_channels"]), int(entry["mid_channels"]),
                                 int(entry["out_channels"]), int(entry["stride"]), kernel=int(entry["kernel_size"]),
                                 act=_act(entry, "relu"))
        out.append(block)
        side = block.out_hw
    cls = cfg["classifier"]
    return out + [Block.fixed("classifier", side, int(cls["in_features"]), 1, int(cls["out_features"]))]
