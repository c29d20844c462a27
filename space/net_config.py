"""Read OFA's static ``net.config`` JSON (its specialized networks) into the block list a LUT prices."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from space.block import Block
from space.bounds import loads_json, quoted

__all__ = ["read_net_config", "load_net_config"]


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
    """The ordered blocks of an OFA MobileNetV3 net.config at ``resolution``.

    Raises:
        ValueError: the config is not an OFA MobileNetV3 (e.g. ProxylessNAS) or is malformed.
    """
    cfg = load_net_config(source)
    try:
        return _blocks(cfg, resolution)
    except (KeyError, TypeError, AttributeError, OverflowError) as err:
        # A field of the wrong kind (a list where a layer dict goes, a string where a number goes).
        raise ValueError(f"net.config is not an OFA MobileNetV3 config (missing or bad field {quoted(str(err))})") from err


def _blocks(cfg: Mapping[str, Any], resolution: int) -> list[Block]:
    if "final_expand_layer" not in cfg:
        raise ValueError(f"net.config {quoted(cfg.get('name', '?'))} has no final_expand_layer: only OFA MobileNetV3 is supported")
    first = cfg["first_conv"]
    out = [Block.first_conv(resolution, int(first["out_channels"]))]
    side = out[0].out_hw
    for i, entry in enumerate(cfg["blocks"]):
        conv = entry["mobile_inverted_conv"]
        in_chs, out_chs = int(conv["in_channels"]), int(conv["out_channels"])
        mid = conv.get("mid_channels")
        mid = int(mid) if mid is not None else round(in_chs * float(conv["expand_ratio"]))
        block = Block.mbconv(
            side, in_chs, out_chs, mid, kernel=int(conv["kernel_size"]), stride=int(conv["stride"]),
            skip=entry.get("shortcut") is not None, se=bool(conv.get("use_se", False)),
            act="h_swish" if conv.get("act_func") == "h_swish" else "relu",
        )
        out.append(block)
        side = block.out_hw
    fe = cfg["final_expand_layer"]
    fm = cfg["feature_mix_layer"]
    cls = cfg["classifier"]
    out += [
        Block.fixed("final_expand", side, int(fe["in_channels"]), side, int(fe["out_channels"])),
        Block.fixed("avgpool", side, int(fe["out_channels"]), 1, int(fe["out_channels"])),
        Block.fixed("feature_mix", 1, int(fm["in_channels"]), 1, int(fm["out_channels"])),
        Block.fixed("classifier", 1, int(cls["in_features"]), 1, int(cls["out_features"])),
    ]
    return out
