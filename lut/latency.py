"""A subnet's latency on a device from its LUT: ``lutnas lut predict`` as one library call.

    from lut.latency import predict_latency
    predict_latency("lut.db", "note10", arch={"ks": [...], "e": [...], "d": [...], "r": 224}).latency_ms
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lut.manage import StoreLike, few_shot_status, open_store, resolve_space, store_space

__all__ = ["LatencyReport", "predict_latency", "run_config_resolution"]


@dataclass(frozen=True)
class LatencyReport:
    """A subnet's predicted latency (``lutnas lut predict --json``)."""

    device: str
    space: str
    latency_ms: float
    calibrated: bool
    raw_ms: float
    calibration: str | None
    few_shot: dict[str, Any] | None
    notes: tuple[str, ...] = field(default=(), compare=False)  # lines for a reader (few-shot rows, a skipped calibration)

    def to_dict(self) -> dict[str, Any]:
        return {"device": self.device, "space": self.space, "latency_ms": self.latency_ms,
                "calibrated": self.calibrated, "raw_ms": self.raw_ms, "calibration": self.calibration,
                "few_shot": self.few_shot}


def predict_latency(store: StoreLike, device: str | int, *, arch: Mapping[str, Any] | None = None,
                    net_config: str | Path | None = None, resolution: int | None = None, space: str | None = None,
                    precision: str | None = None, raw: bool = False) -> LatencyReport:
    """Predict a subnet's latency on a device from its LUT, calibrated when a calibration exists.

    Args:
        store: the LUT store.
        device: a device name, selector (``cpu:int8``) or setting id.
        arch: the subnet as an OFA arch dict; or
        net_config: an OFA net.config file (or its folder), at ``resolution`` (default: the
            ``image_size`` of the run.config beside it).
        space: the search space (default: the one the LUT and the net.config fit).
        precision: narrow ``device`` to its setting at this precision.
        raw: ignore the device's calibration.

    Raises:
        ValueError: not exactly one of arch and net_config, a missing file, no resolution, an unknown
            device, a subnet outside the space, a LUT that lacks its blocks.
    """
    from lut.selectors import with_precision
    from lut.spaces import arch_source, net_config_source

    if (arch is None) == (net_config is None):
        raise ValueError("give exactly one of --arch JSON or --net-config FILE")
    if arch is not None and resolution is not None:
        raise ValueError("--resolution goes with --net-config; put r in the --arch JSON")
    blocks = _net_config_blocks(net_config, resolution) if net_config is not None else None
    with open_store(store) as opened:
        stored = opened.setting(with_precision(device, precision))
        if blocks is not None:
            others = [net_config_source(str(net_config), blocks)]
        else:  # an arch's shape tells its family (a space recorded with the LUT's too); one of no space is
            # refused below, naming what is wrong
            others = [arch_source("--arch", arch)]
        space_name = store_space(opened, {stored.name: stored}, others, space)
        few_shot, note = few_shot_status(opened, stored)
        from lut.predict import CompiledLut

        compiled = CompiledLut.from_store(opened, stored, resolve_space(space_name, [stored]), calibrated=not raw)
    notes = [note] if note else []
    latency, raw_ms, kind = _priced(compiled, arch, blocks, notes)
    return LatencyReport(device=compiled.device, space=space_name, latency_ms=latency, calibrated=kind is not None,
                         raw_ms=raw_ms, calibration=kind, few_shot=few_shot, notes=tuple(notes))


def _net_config_blocks(net_config: str | Path, resolution: int | None) -> Any:
    from space import read_net_config

    path = Path(net_config)
    if not path.exists():
        raise ValueError(f"no such file: {path}")
    return read_net_config(path, resolution or run_config_resolution(path))


def _priced(compiled: Any, arch: Mapping[str, Any] | None, blocks: Any, notes: list[str]
            ) -> tuple[float, float, str | None]:
    """(latency, raw LUT sum, calibration kind or None) of the arch or the net.config's blocks."""
    from lut.calibration import CalibrationError, block_features

    cal = compiled.calibration
    if arch is not None:
        sub = compiled.space.validate(arch)
        return compiled.predict(sub, calibrated=True), compiled.predict(sub, calibrated=False), \
            cal.kind if cal is not None else None
    raw_ms = compiled.predict_blocks(blocks)
    if cal is None:
        return raw_ms, raw_ms, None
    try:
        latency = float(cal.predict({k: [v] for k, v in block_features(compiled, blocks).items()})[0])
    except CalibrationError as err:
        notes.append(f"calibration not applied: {err}")
        return raw_ms, raw_ms, None
    return latency, raw_ms, cal.kind


def run_config_resolution(net_config: str | Path) -> int:
    """``image_size`` from the OFA run.config beside a net.config (OFA's specialized nets ship one).

    Raises:
        ValueError: no run.config, or one without an integer ``image_size``.
    """
    path = Path(net_config)
    run_config = (path if path.is_dir() else path.parent) / "run.config"
    try:
        size = json.loads(run_config.read_text()).get("image_size")
    except (OSError, ValueError, AttributeError):
        size = None
    if not isinstance(size, int) or isinstance(size, bool):
        found = f"image_size {size!r}" if size is not None else "no image_size"
        raise ValueError(f"--net-config needs --resolution R ({found} in {run_config})")
    return size
