"""What a report shows, gathered from a store: plain data, the same numbers the commands print.

Each section is computed by the library call its command makes, with the command's defaults, so the
page and ``--json`` never disagree:

- devices: :func:`lut.listing.list_settings` (``lutnas lut list``), plus when each LUT's rows were measured;
- fidelity: :func:`profiler.validate.report_from_store` (``lutnas validate --device D``, stored runs);
- comparison: :func:`lut.compare.compare_luts` on raw LUT sums (``lutnas compare``);
- deploy, with a predictor: :func:`search.independent_sweep` per device on the calibrated LUT
  (``lutnas search``) and :func:`search.cross_device_regret` on raw sums (``lutnas compare --predictor``).

Devices are named by their selector (``cpu:int8``), which every command accepts as ``--device``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DEFAULT_QUANTILES", "SCATTER_POINTS", "ReportData", "ReportSettings", "gather_report"]

logger = logging.getLogger(__name__)

# Where in each device's achievable latency range the front's budgets sit when no --budgets are given.
DEFAULT_QUANTILES: tuple[float, ...] = (0.1, 0.3, 0.5, 0.7, 0.9)
# Subnets drawn per comparison scatter: enough to see the shape, small enough to keep the page light.
SCATTER_POINTS = 1500

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ReportSettings:
    """What a report covers and how its searches run.

    Attributes:
        devices: settings to show (names, selectors or ids); empty: every setting of the store.
        predictor: a lutnas predictor file or OFA's ``acc_predictor.pth``; None leaves out "what to deploy".
        budgets_ms: latency budgets of every device's front; empty: :data:`DEFAULT_QUANTILES` of each
            device's achievable range.
        generations: evolution generations per search (None: OFA's 500, the ``search`` default).
        n_subnets: random subnets a comparison ranks (``compare --subnets``).
        seed: seeds the comparison's draw and every search (``--seed``).
    """

    devices: tuple[str, ...] = ()
    predictor: str | Path | None = None
    budgets_ms: tuple[float, ...] = ()
    generations: int | None = None
    n_subnets: int = 10_000
    seed: int = 0

    def validate(self) -> None:
        """Raise ValueError naming the first bad setting."""
        for b in self.budgets_ms:
            if not np.isfinite(b) or b <= 0:
                raise ValueError(f"budgets must be finite numbers > 0 ms, got {b!r}")
        if self.generations is not None and self.generations < 0:
            raise ValueError(f"generations must be >= 0, got {self.generations}")
        if self.n_subnets < 2:
            raise ValueError(f"n_subnets must be >= 2, got {self.n_subnets}")


@dataclass
class ReportData:
    """Everything a report page shows; ``to_dict()`` is JSON-ready."""

    store: str
    generated_at: str
    space: str | None  # the space compared and searched (None: no device covers one fully)
    devices: list[dict[str, Any]]
    fidelity: list[dict[str, Any]]
    comparison: dict[str, Any] | None
    deploy: dict[str, Any] | None
    notes: list[str] = field(default_factory=list)
    version: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return dataclasses.asdict(self)


def gather_report(store: Any, settings: ReportSettings | None = None, progress: Progress | None = None) -> ReportData:
    """Collect every section of a report from an open :class:`lut.LutStore`.

    Args:
        store: the open store.
        settings: what to cover (defaults: every setting, no predictor).
        progress: called with a short phrase before each slow step (None: silent).

    Raises:
        ValueError: bad settings, or a ``devices`` entry the store does not know.
        lut.UnknownDeviceError: a ``devices`` entry names no setting.
    """
    from lut.listing import list_settings

    settings = settings or ReportSettings()
    settings.validate()
    say = progress or (lambda _text: None)
    listed = list_settings(store)
    chosen = _chosen_ids(store, settings.devices)
    devices = [_with_dates(store, d) for d in listed if d["id"] in chosen]
    notes: list[str] = []
    say("fidelity")
    fidelity = [f for d in devices if (f := _fidelity(store, d, notes)) is not None]
    pred = _load_predictor(settings.predictor) if settings.predictor is not None else None
    space, members = _space_members(devices, pred, notes)
    comparison = deploy = None
    if len(members) >= 2:
        say("comparison")
        comparison = _comparison(store, members, space, settings, notes)
    elif space is not None:
        notes.append(f"device comparison needs two or more devices covering {space}; found {len(members)}")
    if pred is not None and members:
        say("search")
        deploy = _deploy(store, members, space, pred, settings, notes)
    return ReportData(store=str(store.path), generated_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                      space=space, devices=devices, fidelity=fidelity, comparison=comparison, deploy=deploy,
                      notes=notes, version=_version())


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lutnas")
    except PackageNotFoundError:  # run from a source tree
        return ""


def _chosen_ids(store: Any, refs: Sequence[str]) -> set[int]:
    if not refs:
        return {s.id for s in store.settings()}
    return {store.setting(int(r) if str(r).isdigit() else r).id for r in refs}


def _with_dates(store: Any, device: dict[str, Any]) -> dict[str, Any]:
    """The listing plus when the setting was created and when its rows were measured (first, last)."""
    stored = store.setting(device["id"])
    stamps = store.rows(stored.id)["measured_at"].dropna()
    stamps = stamps[stamps.astype(str) != ""]
    return {**device, "created_at": stored.created_at or None,
            "measured_first": str(stamps.min()) if len(stamps) else None,
            "measured_last": str(stamps.max()) if len(stamps) else None}


# -- fidelity --------------------------------------------------------------------------------------
def _fidelity(store: Any, device: Mapping[str, Any], notes: list[str]) -> dict[str, Any] | None:
    """The device's stored validation runs as ``validate --device D --json`` reports them, plus every sample."""
    if store.validation_runs(device["id"]).empty:
        return None
    # Whole-network validation lives with the profiler, which loads torch: only a store with runs pays for it.
    from profiler.validate import ValidationError, report_from_store

    try:
        report = report_from_store(store, device["id"])
    except ValidationError as err:
        notes.append(f"fidelity of {device['selector']!r} not shown: {err}")
        return None
    frame = report.samples
    columns = [c for c in ("predicted_ms", "measured_ms", "calibrated_ms", "repeat_ms") if c in frame]
    points = {c: [_round(v) for v in frame[c].to_numpy(dtype=np.float64)] for c in columns}
    points["r"] = [int(a["r"] if not isinstance(a["r"], list) else a["r"][0]) for a in frame["arch"]]
    # ``device`` is the selector, as everywhere in the report (the validate report names the device alone)
    return {**report.to_dict(), "device": device["selector"], "id": device["id"], "points": points}


# -- which devices are compared and searched -------------------------------------------------------
def _space_members(devices: Sequence[Mapping[str, Any]], pred: Any, notes: list[str]
                   ) -> tuple[str | None, list[Mapping[str, Any]]]:
    """The space compared and searched, and the devices whose LUT covers a resolution of it completely.

    With a predictor, its space; else the space the most devices cover (the default space first on a tie).
    """
    from space import DEFAULT_SPACE, list_spaces

    covering = {name: [d for d in devices if d["resolutions"].get(name)] for name in list_spaces()}
    if pred is not None:
        space = pred.space_name
    else:
        ranked = sorted(covering, key=lambda n: (-len(covering[n]), n != DEFAULT_SPACE))
        space = ranked[0] if ranked and covering[ranked[0]] else None
    if space is None:
        notes.append("no device's LUT covers a resolution of any space completely: nothing to compare or search")
        return None, []
    left = [d["selector"] for d in devices if d not in covering.get(space, [])]
    if left:
        notes.append(f"not compared or searched (no resolution of {space} complete): {', '.join(left)}")
    return space, covering.get(space, [])


def _compiled(store: Any, members: Sequence[Mapping[str, Any]], space: str, calibrated: bool) -> dict[str, Any]:
    from lut import CompiledLut

    return {d["selector"]: CompiledLut.from_store(store, d["id"], space, calibrated=calibrated) for d in members}


# -- comparison ------------------------------------------------------------------------------------
def _comparison(store: Any, members: Sequence[Mapping[str, Any]], space: str, settings: ReportSettings,
                notes: list[str]) -> dict[str, Any] | None:
    """``compare --json`` for the members (raw sums), with a sample of each device's subnet latencies."""
    from lut import MissingBlocksError
    from lut.compare import compare_luts

    luts = _compiled(store, members, space, calibrated=False)
    try:
        cmp = compare_luts(luts, n_subnets=settings.n_subnets, random_state=settings.seed)
    except MissingBlocksError as err:
        notes.append(f"devices not compared: {err}")
        return None
    shown = min(SCATTER_POINTS, cmp.n_subnets)
    doc = cmp.to_dict()
    doc["subnet_sample_ms"] = {d: [_round(v) for v in ms[:shown]] for d, ms in cmp.subnet_ms.items()}
    doc["precision_pairs"] = [[p.a, p.b] for p in cmp.pairs if _precision_pair(members, p.a, p.b)]
    return doc


def _precision_pair(members: Sequence[Mapping[str, Any]], a: str, b: str) -> bool:
    """Two settings of one device that differ only in precision (int8 vs fp32, say)."""
    da, db = (next(d for d in members if d["selector"] == s) for s in (a, b))
    same = ("device", "runtime", "runtime_version", "threads", "model_format", "delegate")
    return all(da[k] == db[k] for k in same) and da["precision"] != db["precision"]


# -- what to deploy --------------------------------------------------------------------------------
def _load_predictor(path: str | Path) -> Any:
    from search import load_predictor

    return load_predictor(path)


def _deploy(store: Any, members: Sequence[Mapping[str, Any]], space: str, pred: Any, settings: ReportSettings,
            notes: list[str]) -> dict[str, Any]:
    """Per device, the best subnet per budget (``search --json``'s results) and the cross-device regret."""
    from search import EvolutionSettings, SearchError, cross_device_regret

    evo = EvolutionSettings()
    if settings.generations is not None:
        evo = dataclasses.replace(evo, generations=settings.generations)
    fronts = []
    for name, lut in _compiled(store, members, space, calibrated=True).items():
        try:
            fronts.append(_front(space, name, lut, pred, evo, settings))
        except SearchError as err:
            notes.append(f"no front for {name!r}: {err}")
    regret = None
    if len(members) >= 2:
        try:
            regret = cross_device_regret(space, _compiled(store, members, space, calibrated=False), pred, None, evo,
                                         random_state=settings.seed).to_dict()
        except (SearchError, ValueError) as err:
            notes.append(f"no cross-device regret: {err}")
    accuracy = f"top-1 at {getattr(pred, 'accuracy_precision_', 'fp32')} (the predictor's training data)"
    return {"predictor": str(settings.predictor), "accuracy_model": accuracy, "generations": evo.generations,
            "seed": settings.seed, "fronts": fronts, "regret": regret}


def _front(space: str, name: str, lut: Any, pred: Any, evo: Any, settings: ReportSettings) -> dict[str, Any]:
    """One device's budgets and the search result at each, as ``search --device NAME --latency-ms ... --json``."""
    from search import SearchError, independent_sweep, latency_constraint, pareto_front, search_resolutions

    res = search_resolutions(space, [latency_constraint(name, lut, 0.0)], pred, None)
    lo, hi = (float(v) for v in lut.value_range(res))
    budgets = sorted(settings.budgets_ms) or [lo + q * (hi - lo) for q in DEFAULT_QUANTILES]
    points = [[latency_constraint(name, lut, b)] for b in budgets]
    outcomes = independent_sweep(space, points, pred, evo, settings.seed)
    found = [o for o in outcomes if not isinstance(o, SearchError)]
    on_front = {id(found[i]) for i in pareto_front(found, name)}
    results = []
    for budget, outcome in zip(budgets, outcomes):
        if isinstance(outcome, SearchError):
            results.append({"feasible": False, "budget_ms": budget, "reason": str(outcome)})
        else:
            results.append({"feasible": True, "budget_ms": budget, "on_front": id(outcome) in on_front,
                            **outcome.to_dict()})
    latency = "raw LUT sum" if lut.calibration is None else f"calibrated LUT ({lut.calibration.describe()})"
    return {"device": name, "range_ms": [lo, hi], "resolutions": list(res), "latency_model": latency,
            "results": results}


def _round(value: float) -> float | None:
    """Six significant digits: exact enough for hover, small enough for the page."""
    return None if not np.isfinite(value) else float(f"{value:.6g}")
