"""Supernet checkpoint files: lutnas's own, and OFA's released ones.

A lutnas checkpoint is a ``torch.save`` dict of plain types and tensors (loadable with
``weights_only=True``)::

    {"format_version": 1, "kind": "lutnas-supernet", "family": "ofa-mbv3", "config": <the family's config>.to_dict(),
     "state_dict": ..., "meta": {...}, "train_state": {...} (only in resumable files)}

``family`` is one of :data:`supernet.presets.FAMILIES` (files without it are MobileNetV3s, as lutnas wrote them
before other families existed).

OFA's released files are a bare state_dict or ``{"state_dict": ...}``; their config is inferred
from tensor shapes (width from the stem, classes from the classifier, kernels from the matrices).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from space.bounds import check_archive
from supernet._family import AnyConfig, config_family, config_from_dict, net_from_config
from supernet.ofa_mbv3 import BASE_STAGE_WIDTH, OFAMobileNetV3, SupernetConfig
from supernet.static_subnet import remap_legacy_keys

__all__ = [
    "CHECKPOINT_FORMAT_VERSION",
    "CheckpointError",
    "SupernetCheckpoint",
    "infer_ofa_config",
    "load_checkpoint",
    "load_supernet",
    "save_checkpoint",
]

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT_VERSION = 1
_KIND = "lutnas-supernet"


class CheckpointError(ValueError):
    """A file is not a readable supernet checkpoint."""


@dataclass
class SupernetCheckpoint:
    """A loaded checkpoint."""

    config: AnyConfig  # how to rebuild the supernet (its type names the family)
    state_dict: dict[str, torch.Tensor]  # its weights
    meta: dict[str, Any] = field(default_factory=dict)  # dataset, resolutions, phase reached, ...
    train_state: dict[str, Any] | None = None  # optimizer, RNG and position, for resuming

    @property
    def family(self) -> str:
        """The supernet's family (``ofa-mbv3``, ``ofa-proxyless`` or ``ofa-resnet50``)."""
        return config_family(self.config)

    def build(self) -> Any:
        """The supernet with these weights, in eval mode."""
        net = net_from_config(self.config)
        net.load_state_dict(self.state_dict, strict=True)
        return net.eval()


def save_checkpoint(
    path: str | Path,
    net: Any,
    meta: Mapping[str, Any] | None = None,
    train_state: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``net`` (and optionally its training state) atomically to ``path``.

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    blob: dict[str, Any] = {
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "kind": _KIND,
        "family": config_family(net.config),
        "config": net.config.to_dict(),
        "state_dict": net.state_dict(),
        "meta": dict(meta or {}),
    }
    if train_state is not None:
        blob["train_state"] = dict(train_state)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(blob, tmp)
    tmp.replace(path)
    logger.debug("wrote checkpoint %s", path)
    return path


def infer_ofa_config(state_dict: Mapping[str, torch.Tensor]) -> SupernetConfig:
    """Guess the ``SupernetConfig`` of an OFA MobileNetV3 state_dict from its shapes.

    Raises:
        CheckpointError: the keys are not OFA MobileNetV3's.
    """
    try:
        stem = int(state_dict["first_conv.conv.weight"].shape[0])
        n_classes = int(state_dict["classifier.linear.weight"].shape[0])
        max_kernel = int(state_dict["blocks.1.conv.depth_conv.conv.conv.weight"].shape[-1])
        max_mid = int(state_dict["blocks.1.conv.inverted_bottleneck.conv.conv.weight"].shape[0])
        in_chs = int(state_dict["blocks.1.conv.inverted_bottleneck.conv.conv.weight"].shape[1])
    except KeyError as err:
        raise CheckpointError(f"not an OFA MobileNetV3 supernet state_dict: missing {err}") from err
    width_mult = {16: 1.0, 24: 1.2}.get(stem)
    if width_mult is None:
        raise CheckpointError(f"cannot infer width_mult from a {stem}-channel stem; known: 16 (w1.0), 24 (w1.2)")
    ks = sorted({max_kernel} | {int(k.split("to")[1].split("_")[0]) for k in state_dict if k.endswith("_matrix")})
    n_blocks = len({k.split(".")[1] for k in state_dict if k.startswith("blocks.")})
    max_depth = (n_blocks - 1) // 5
    depth_list = tuple(range(2, max_depth + 1)) if max_depth >= 2 else (max_depth,)
    max_expand = max_mid / in_chs
    expand = (3, 4, 6) if max_expand == 6 else (max_expand,)
    return SupernetConfig(
        width_mult=width_mult,
        ks_list=tuple(ks),
        expand_ratio_list=tuple(expand),
        depth_list=depth_list,
        n_classes=n_classes,
        base_stage_width=BASE_STAGE_WIDTH,
    )


def load_checkpoint(path: str | Path) -> SupernetCheckpoint:
    """Read a lutnas checkpoint, or an OFA release (config inferred from shapes).

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: the file is neither format, or has another format version.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        check_archive(path)  # a zip bomb is refused before torch inflates anything
    except ValueError as err:
        raise CheckpointError(str(err)) from err
    try:
        # OFA's releases are plain state dicts too; anything that needs more than tensors and
        # containers is refused, never unpickled (that would run whatever the file says).
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for foreign, damaged or hostile files
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path}: not a checkpoint of plain tensors (lutnas never unpickles objects): {first}") from err
    if isinstance(blob, Mapping) and blob.get("kind") == _KIND:
        version = blob.get("format_version")
        if version != CHECKPOINT_FORMAT_VERSION:
            raise CheckpointError(
                f"{path} has checkpoint format_version {version!r}; this lutnas reads {CHECKPOINT_FORMAT_VERSION}"
            )
        try:
            config = config_from_dict(str(blob.get("family", "ofa-mbv3")), blob["config"])
        except (ValueError, TypeError) as err:
            raise CheckpointError(f"{path}: {err}") from err
        return SupernetCheckpoint(
            config=config,
            state_dict=dict(blob["state_dict"]),
            meta=dict(blob.get("meta") or {}),
            train_state=blob.get("train_state"),
        )
    if isinstance(blob, Mapping) and isinstance(blob.get("state_dict"), Mapping):
        blob = blob["state_dict"]
    if not isinstance(blob, Mapping) or not all(isinstance(v, torch.Tensor) for v in blob.values()):
        raise CheckpointError(f"{path} is neither a lutnas supernet checkpoint nor an OFA state_dict")
    state_dict = dict(remap_legacy_keys(blob))
    return SupernetCheckpoint(config=infer_ofa_config(state_dict), state_dict=state_dict, meta={"source": "ofa"})


def load_supernet(path: str | Path) -> tuple[Any, dict[str, Any]]:
    """Build the supernet stored at ``path``; returns it (eval mode) with the checkpoint's meta."""
    ckpt = load_checkpoint(path)
    return ckpt.build(), ckpt.meta
