"""Searching a store's LUTs under latency budgets: ``lutnas search`` as one library call.

    from search.budgets import search, sweep
    one = search("lut.db", "note10", 25, "acc_predictor.pth")           # one budget
    front = sweep("lut.db", "note10", [15, 20, 25], "acc_predictor.pth")  # a budget sweep
    both = search("lut.db", ["note10", "i7"], {"note10": 25, "i7": 10}, "pred.pt")  # every device's budget at once

Each budget is searched as if alone from ``seed``, so its answer does not depend on the others. A budget
no subnet meets is an answer too (``"feasible": false`` with each device's achievable range); a budget
every subnet meets does not constrain that device, and the answer is the best subnet.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from search.errors import SearchError, SearchFailedError
from search.evolution import EvolutionSettings, SearchResult

__all__ = ["SearchReport", "plot_front", "search", "sweep"]

#: ``progress(task, done, total)``.
Progress = Callable[[str, int, "int | None"], None]
#: One budget (ms) for every device, or a budget per device.
Budget = float | Mapping[str, float]


@dataclass(frozen=True)
class SearchReport:
    """The answer of every budget (``lutnas search --json``); ``results`` ascend by budget.

    Attributes:
        outcomes: per result, the SearchResult (None for an infeasible budget), for plots.
        notes: lines for a reader (few-shot rows); never in the JSON.
    """

    space: str
    devices: list[str]
    latency_model: dict[str, str]
    accuracy_model: str
    seed: int
    few_shot: list[dict[str, Any]]
    results: list[dict[str, Any]]
    extrapolation: dict[str, Any] | None = None
    outcomes: tuple[SearchResult | None, ...] = field(default=(), compare=False, repr=False)
    notes: tuple[str, ...] = field(default=(), compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"space": self.space, "devices": self.devices, "latency_model": self.latency_model,
                "accuracy_model": self.accuracy_model, "seed": self.seed, "few_shot": self.few_shot,
                "results": self.results, "extrapolation": self.extrapolation}


def search(store: Any, device: str | Sequence[str], latency_ms: Budget, predictor: Any, **options: Any
           ) -> SearchReport:
    """The best subnet under one latency budget per device.

    Args:
        store: the LUT store (a LutStore or its locator).
        device: a device name, selector (``cpu:int8``) or setting id; or several.
        latency_ms: the budget (ms) for every device, or a mapping device -> budget.
        predictor: a predictor file (lutnas's or OFA's format) or a loaded predictor.
        **options: as :func:`sweep`.

    Raises:
        ValueError: bad devices, budgets, options, predictor or space (nothing searched).
    """
    budgets = {k: [v] for k, v in latency_ms.items()} if isinstance(latency_ms, Mapping) else [latency_ms]
    return sweep(store, device, budgets, predictor, **options)


def sweep(store: Any, device: str | Sequence[str], budgets: Sequence[float] | Mapping[str, Sequence[float]],
          predictor: Any, *, precision: str | None = None, space: str | None = None, seed: int = 0,
          max_macs: float | None = None, max_params: float | None = None, settings: EvolutionSettings | None = None,
          raw: bool = False, progress: Progress | None = None) -> SearchReport:
    """The best subnet at each of several budgets, one search per budget, each from ``seed``.

    Args:
        store: the LUT store (a LutStore or its locator).
        device: a device name, selector or setting id; or several.
        budgets: budgets (ms) each applying to every device, or per device a list (all of one length,
            or of length 1 to hold that device's budget fixed).
        predictor: a predictor file (lutnas's or OFA's format) or a loaded predictor.
        precision: price every device at its setting of this precision.
        space: the search space (default: the one every LUT and the predictor fit).
        seed: random seed each budget's search starts from.
        max_macs: also bound multiply-adds.
        max_params: also bound the parameter count.
        settings: evolution settings (OFA's defaults when None).
        raw: price with plain LUT sums, ignoring device calibrations.
        progress: called ``(task, done, total)`` as budgets are searched.

    Raises:
        ValueError: bad devices, budgets, options, predictor or space (nothing searched).
    """
    from lut.selectors import with_precision
    from search.loading import predictor_and_label

    given = [device] if isinstance(device, str) else list(device)
    devices = [str(with_precision(d, precision)) for d in given]
    if isinstance(budgets, Mapping):  # keyed by the devices as given
        budgets = {str(with_precision(d, precision)): v for d, v in budgets.items()}
    if not devices or len(set(devices)) != len(devices):
        raise ValueError(f"devices must be distinct and at least one, got {devices}")
    lists = _budget_lists(budgets, devices)
    settings = settings or EvolutionSettings()
    settings.validate()
    for value, name in ((max_macs, "max_macs"), (max_params, "max_params")):
        if value is not None:
            _positive(value, name)
    pred, label = predictor_and_label(predictor)
    space_name, tables, few_shot = _compiled_tables(store, devices, space, pred, label, not raw)
    return _run(space_name, devices, lists, tables, pred, settings, seed, (max_macs, max_params), progress,
                few_shot)


def _budget_lists(budgets: Sequence[float] | Mapping[str, Sequence[float]], devices: list[str]) -> list[list[float]]:
    """Per device, its list of budgets, all of one length."""
    if isinstance(budgets, Mapping):
        missing = [d for d in devices if d not in budgets]
        if missing or len(budgets) != len(devices):
            raise ValueError(f"budgets must give every device a list, got {sorted(budgets)} for {devices}")
        lists = [[float(v) for v in budgets[d]] for d in devices]
    else:
        lists = [[float(v) for v in budgets]] * len(devices)
    for values in lists:
        if not values:
            raise ValueError("latency_ms must hold at least one budget, got none")
        for v in values:
            _positive(v, "latency_ms")
    lengths = {len(v) for v in lists}
    if len(lengths - {1}) > 1:
        raise ValueError(f"every device's budget list must have the same length, got {sorted(lengths)}")
    n = max(lengths)
    return [v * n if len(v) == 1 else v for v in lists]


def _positive(value: float, name: str) -> None:
    import math

    if not math.isfinite(value) or value <= 0:  # nan passes every <= test, inf passes > 0
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def _compiled_tables(store: Any, devices: list[str], space: str | None, pred: Any, label: str, calibrated: bool
                     ) -> tuple[str, dict[str, Any], list[tuple[dict[str, Any], str]]]:
    """The space every LUT and the predictor fit, each device's compiled LUT, and few-shot (doc, note) pairs."""
    from lut.manage import few_shot_status, open_store, resolve_space, store_space
    from lut.predict import CompiledLut
    from lut.selectors import resolve_all
    from lut.spaces import predictor_source

    with open_store(store) as opened:
        stored = dict(zip(devices, resolve_all(opened.settings(), devices)))
        space_name = store_space(opened, stored, [predictor_source(label, pred)], space)
        chosen = resolve_space(space_name, stored.values())
        tables = {d: CompiledLut.from_store(opened, s, chosen, calibrated=calibrated) for d, s in stored.items()}
        status = [few_shot_status(opened, s) for s in stored.values()]
    return space_name, tables, [(doc, note) for doc, note in status if doc is not None]


def _run(space_name: str, devices: list[str], lists: list[list[float]], tables: dict[str, Any], pred: Any,
         settings: EvolutionSettings, seed: int, bounds: tuple[float | None, float | None],
         progress: Progress | None, few_shot: list[tuple[dict[str, Any], str]]) -> SearchReport:
    """Search every budget point and assemble the report."""
    from search.evolution import latency_constraint, search_resolutions
    from search.fitting import extrapolation
    from search.pareto import independent_sweep

    space = tables[devices[0]].space  # the space itself: a user's may be registered nowhere
    extra = _extra_constraints(space, *bounds)
    points = sorted(([latency_constraint(d, tables[d], lists[j][i]) for j, d in enumerate(devices)]
                     for i in range(len(lists[0]))), key=lambda cons: [c.limit for c in cons])
    resolutions = search_resolutions(space, points[0], pred, settings.resolutions)
    settings = dataclasses.replace(settings, resolutions=resolutions)
    # A budget every subnet meets constrains nothing: that device is priced, not constrained.
    binding = [[c for c in point if c.limit < c.model.value_range(resolutions)[1]] for point in points]
    try:
        outcomes = independent_sweep(space, binding, pred, settings, seed, extra_constraints=extra,
                                     progress=progress)
    except Exception as err:  # noqa: BLE001 - the input was checked: whatever the search raises is its failure
        raise SearchFailedError.wrapping(err, "search") from err
    rows = [_row(o, point, tables, resolutions) for o, point in zip(outcomes, points)]
    found = [o for o in outcomes if not isinstance(o, SearchError)]
    return SearchReport(
        space=space_name, devices=devices,
        latency_model={d: _latency_model(tables[d]) for d in devices},
        accuracy_model=f"top-1 at {getattr(pred, 'accuracy_precision_', 'fp32')} (the predictor's training data)",
        seed=seed, few_shot=[doc for doc, _ in few_shot], results=rows,
        extrapolation=extrapolation(pred, [o.predicted_accuracy for o in found]),
        outcomes=tuple(None if isinstance(o, SearchError) else o for o in outcomes),
        notes=tuple(note for _, note in few_shot))


def _extra_constraints(space: Any, max_macs: float | None, max_params: float | None) -> list[Any]:
    from search.evolution import macs_constraint, params_constraint

    extra = []
    if max_macs is not None:
        extra.append(macs_constraint(space, max_macs))
    if max_params is not None:
        extra.append(params_constraint(space, max_params))
    return extra


def _row(outcome: Any, point: list[Any], tables: dict[str, Any], resolutions: tuple[int, ...]) -> dict[str, Any]:
    """One budget's JSON entry: the result (every device priced and limited), or why no subnet fits."""
    if isinstance(outcome, SearchError):
        achievable = {c.name: [round(v, 4) for v in tables[c.name].value_range(resolutions)] for c in point}
        return {"feasible": False, "limits": {c.name: c.limit for c in point}, "reason": str(outcome),
                "achievable_ms": achievable}
    row = {"feasible": True, **outcome.to_dict()}
    for c in point:  # devices whose budget did not bind were priced after the search
        row["latency_ms"].setdefault(c.name, tables[c.name].predict(outcome.arch))
        row["limits"][c.name] = c.limit
    row["latency_ms"] = {c.name: row["latency_ms"][c.name] for c in point}
    row["limits"] = {**{c.name: c.limit for c in point}, **row["limits"]}
    return row


def _latency_model(compiled: Any) -> str:
    cal = getattr(compiled, "calibration", None)
    return "raw LUT sum (no calibration)" if cal is None else f"calibrated LUT ({cal.describe()})"


def plot_front(report: SearchReport, path: str | Path, device: str | None = None) -> Path:
    """Draw the accuracy/latency front of a sweep on ``device`` (default the first) to an image file.

    Raises:
        ValueError: no feasible budget to draw.
        OSError: the file cannot be written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    device = device or report.devices[0]
    feasible = [r for r in report.results if r["feasible"]]
    if not feasible:
        raise ValueError("no budget has a feasible subnet to draw")
    lat = [r["latency_ms"][device] for r in feasible]
    acc = [r["predicted_accuracy"] for r in feasible]
    front, best = [], float("-inf")
    for i in sorted(range(len(lat)), key=lambda i: (lat[i], -acc[i])):  # no other point is faster and better
        if acc[i] > best:
            front.append(i)
            best = acc[i]
    fig = Figure(figsize=(6, 4))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.scatter(lat, acc, color="tab:blue", label="best subnet per budget")
    ax.plot([lat[i] for i in front], [acc[i] for i in front], color="tab:orange", label="front")
    for r in report.results:
        ax.axvline(r["limits"][device], color="grey", linewidth=0.5, linestyle=":")
    ax.set_xlabel(f"LUT latency on {device} (ms)")
    ax.set_ylabel("predicted top-1 (%)")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return Path(path)
