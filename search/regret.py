"""Cross-device regret: what deploying one device's best subnet on another device costs.

For each budget quantile ``q`` every device ``D`` gets the matched budget

    budget_D = lo_D + q * (hi_D - lo_D)

where ``[lo_D, hi_D]`` is the exact range of ``D``'s LUT predictions over every subnet at the
resolutions shared by all the compared LUTs and the accuracy predictor. A constrained
evolutionary search finds the best subnet on each device under its own budget (its *pick*,
searched at those shared resolutions only, so every LUT can price every pick). Then, for every
ordered pair (A, B), A's pick is priced on B's LUT:

- when it meets B's budget, ``regret = acc(B's pick) - acc(A's pick)``: the predicted top-1
  points lost by deploying A's pick on B instead of B's own. One predictor scores every pick,
  so a pick's accuracy does not depend on the device. The diagonal is 0.
- when it exceeds B's budget, the pick cannot be deployed on B under that budget: ``regret`` is
  undefined (None) and the overshoot is reported in ms and as a percentage of B's budget.

The search is a heuristic: another device's search may find a subnet that also meets B's budget
with a higher predicted accuracy than B's own search did. B's pick is therefore the best subnet
known under B's budget: its own search result, replaced by another device's pick when that one
meets B's budget and scores higher (``found_by`` names the device whose search found it). So
every defined regret is >= 0 and never reflects search noise as a gain.

Picks and prices use whatever the given cost models predict (raw or calibrated LUT sums).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from search.evolution import (
    AccuracyModel,
    CostModel,
    EvolutionSettings,
    SearchResult,
    SeedLike,
    evolutionary_search,
    latency_constraint,
    search_resolutions,
)
from search.errors import InfeasibleSearchError, SearchFailedError
from search.prediction_cache import PredictionCache
from space import AnySpace, Genome, SearchSpace, SubnetBatch, get_space

__all__ = [
    "DEFAULT_QUANTILES",
    "CrossPrice",
    "DevicePick",
    "QuantileRegret",
    "RegretReport",
    "compare",
    "cross_device_regret",
]

logger = logging.getLogger(__name__)

_REGRET_TASK = "searching the best subnet per device and budget"

# Budget quantiles of each device's achievable latency range used when none are given.
DEFAULT_QUANTILES: tuple[float, ...] = (0.25, 0.5, 0.75)


@dataclass(frozen=True)
class DevicePick:
    """The best subnet found on one device under its matched budget.

    Attributes:
        device: the device name.
        budget_ms: the device's budget at this quantile.
        range_ms: the device's achievable (min, max) latency at the shared resolutions.
        arch: the picked subnet (OFA arch dict).
        predicted_accuracy: its predicted top-1 (percent).
        latency_ms: its latency on this device.
        search_seconds: wall time of this device's search.
        found_by: the device whose search found the pick (this device unless another device's
            pick meets this budget with a higher predicted accuracy).
        searched_accuracy: the predicted top-1 of this device's own search result.
    """

    device: str
    budget_ms: float
    range_ms: tuple[float, float]
    arch: dict[str, Any]
    predicted_accuracy: float
    latency_ms: float
    search_seconds: float
    found_by: str
    searched_accuracy: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {"device": self.device, "budget_ms": self.budget_ms, "range_ms": list(self.range_ms),
                "arch": self.arch, "predicted_accuracy": self.predicted_accuracy, "latency_ms": self.latency_ms,
                "search_seconds": self.search_seconds, "found_by": self.found_by,
                "searched_accuracy": self.searched_accuracy}


@dataclass(frozen=True)
class CrossPrice:
    """Device ``source``'s pick deployed on device ``target`` under ``target``'s budget.

    Attributes:
        source: the device the pick was searched for (A).
        target: the device it is deployed on (B).
        latency_ms: the pick's latency on ``target``.
        budget_ms: ``target``'s budget.
        feasible: whether ``latency_ms <= budget_ms``.
        over_budget_ms: ``latency_ms - budget_ms`` when infeasible, else 0.
        over_budget_pct: the same as a percentage of ``budget_ms``.
        regret: ``acc(target's pick) - acc(source's pick)`` in top-1 points when feasible, else None.
    """

    source: str
    target: str
    latency_ms: float
    budget_ms: float
    feasible: bool
    over_budget_ms: float
    over_budget_pct: float
    regret: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class QuantileRegret:
    """The picks and the regret matrix at one budget quantile.

    Attributes:
        quantile: the budget quantile ``q``.
        picks: device -> its pick.
        cross: one entry per ordered pair (source, target), diagonal included, sources in device order.
    """

    quantile: float
    picks: dict[str, DevicePick]
    cross: tuple[CrossPrice, ...]

    def price(self, source: str, target: str) -> CrossPrice:
        """The entry for ``source``'s pick on ``target``.

        Raises:
            KeyError: no such pair.
        """
        for c in self.cross:
            if c.source == source and c.target == target:
                return c
        raise KeyError(f"no pair ({source!r}, {target!r}); devices: {', '.join(self.picks)}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {"quantile": self.quantile, "picks": {d: p.to_dict() for d, p in self.picks.items()},
                "cross": [c.to_dict() for c in self.cross]}


@dataclass(frozen=True)
class RegretReport:
    """The result of :func:`cross_device_regret`.

    Attributes:
        devices: the devices, in the order given.
        space: the search space name.
        resolutions: the shared resolutions every search used and every range was taken over.
        generations: evolution generations per search.
        by_quantile: one entry per quantile, in the order given.
        searched: the space itself (a user's space has no name :func:`space.get_space` knows), for describing picks.
    """

    devices: tuple[str, ...]
    space: str
    resolutions: tuple[int, ...]
    generations: int
    by_quantile: tuple[QuantileRegret, ...]
    searched: AnySpace | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {"devices": list(self.devices), "space": self.space, "resolutions": list(self.resolutions),
                "generations": self.generations, "quantiles": [q.quantile for q in self.by_quantile],
                "by_quantile": [q.to_dict() for q in self.by_quantile]}


def cross_device_regret(
    space: SearchSpace | str,
    compiled_by_device: Mapping[str, CostModel],
    predictor: AccuracyModel,
    quantiles: Sequence[float] | None = None,
    settings: EvolutionSettings | None = None,
    random_state: SeedLike = None,
    progress: Callable[[str, int, int | None], None] | None = None,
) -> RegretReport:
    """Best subnet per device at matched budgets and the regret of deploying each pick elsewhere.

    Args:
        space: a space name or SearchSpace.
        compiled_by_device: device name -> its latency model (a compiled LUT: anything with
            ``predict_batch``, ``resolutions`` and ``value_range``); two or more devices.
        predictor: the accuracy predictor (``predict_batch``; its ``resolutions`` limit the shared set).
        quantiles: budget quantiles in (0, 1) of each device's achievable range; default
            :data:`DEFAULT_QUANTILES`.
        settings: evolution settings (OFA's defaults when None); their ``resolutions``, when set,
            narrow the shared resolutions.
        random_state: an int seed, a numpy Generator or None; searches run in quantile then
            device order from one generator.
        progress: called ``(task, searches done, searches in all)`` after each search.

    Returns:
        The picks and the cross-device prices and regrets per quantile.

    Raises:
        ValueError: fewer than two devices, or a quantile outside (0, 1).
        SpaceMismatchError: a LUT or the predictor belongs to another space.
        InfeasibleSearchError: no resolution is shared, or a search finds no feasible subnet.
        BudgetOutOfRangeError: a device's latency range is degenerate (every subnet costs the same).
    """
    space = get_space(space)
    devices = list(compiled_by_device)
    if len(devices) < 2:
        raise ValueError(f"compiled_by_device needs two or more devices; got {devices}")
    qs = tuple(float(q) for q in (DEFAULT_QUANTILES if quantiles is None else quantiles))
    if not qs:
        raise ValueError("quantiles should hold at least one value in (0, 1); got none")
    bad = [q for q in qs if not 0.0 < q < 1.0]
    if bad:
        raise ValueError(f"quantiles should lie in (0, 1) (exclusive); got {list(qs)}")
    settings = settings or EvolutionSettings()
    settings.validate()
    # Placeholder limits: only the models matter for the shared resolution set.
    probes = [latency_constraint(d, compiled_by_device[d], 0.0) for d in devices]
    shared = search_resolutions(space, probes, predictor, settings.resolutions)
    settings = dataclasses.replace(settings, resolutions=shared)
    ranges = {d: tuple(float(v) for v in compiled_by_device[d].value_range(shared)) for d in devices}
    rng = np.random.default_rng(random_state)
    cache = PredictionCache(predictor, Genome(space))  # every search scores networks with the same predictor

    by_quantile = []
    for q in qs:
        picks: dict[str, DevicePick] = {}
        batches: dict[str, SubnetBatch] = {}
        for d in devices:
            lo, hi = ranges[d]
            budget = lo + q * (hi - lo)
            result = evolutionary_search(space, [latency_constraint(d, compiled_by_device[d], budget)], predictor,
                                         settings, rng, prediction_cache=cache)
            picks[d] = _pick(d, budget, (lo, hi), result)
            if progress is not None:
                progress(_REGRET_TASK, len(by_quantile) * len(devices) + len(picks), len(qs) * len(devices))
            batches[d] = SubnetBatch.from_subnets([space.validate(result.arch)])
            logger.debug("q=%g %s: budget %.3f ms, pick %.3f ms, %.2f%%", q, d, budget, result.latency_ms[d],
                         result.predicted_accuracy)
        searched = dict(picks)
        priced = {(a, b): float(np.asarray(compiled_by_device[b].predict_batch(batches[a]), dtype=np.float64)[0])
                  for a in devices for b in devices}
        for b in devices:
            picks[b] = _best_known(b, searched, priced)
            if picks[b].found_by != b:
                logger.debug("q=%g: %s's pick beats %s's own search on %s", q, picks[b].found_by, b, b)
        cross = [_cross_price(picks[a], picks[b], priced[picks[a].found_by, b]) for a in devices for b in devices]
        by_quantile.append(QuantileRegret(quantile=q, picks=picks, cross=tuple(cross)))
    return RegretReport(devices=tuple(devices), space=space.name, resolutions=shared,
                        generations=settings.generations, by_quantile=tuple(by_quantile), searched=space)


def _pick(device: str, budget_ms: float, range_ms: tuple[float, float], result: SearchResult) -> DevicePick:
    return DevicePick(device=device, budget_ms=float(budget_ms), range_ms=range_ms, arch=result.arch,
                      predicted_accuracy=float(result.predicted_accuracy), latency_ms=float(result.latency_ms[device]),
                      search_seconds=float(result.search_seconds), found_by=device,
                      searched_accuracy=float(result.predicted_accuracy))


def _best_known(device: str, searched: Mapping[str, DevicePick], priced: Mapping[tuple[str, str], float]) -> DevicePick:
    """``device``'s own search result, or another device's search result that meets its budget
    with a higher predicted accuracy (the first such device in order on ties)."""
    own = searched[device]
    best = own
    for other, pick in searched.items():
        if priced[other, device] <= own.budget_ms and pick.predicted_accuracy > best.predicted_accuracy:
            best = pick
    if best is own:
        return own
    return dataclasses.replace(own, arch=best.arch, predicted_accuracy=best.predicted_accuracy,
                               latency_ms=priced[best.device, device], found_by=best.device)


def _cross_price(source: DevicePick, target: DevicePick, latency_ms: float) -> CrossPrice:
    budget = target.budget_ms
    feasible = latency_ms <= budget
    over = 0.0 if feasible else latency_ms - budget
    regret = target.predicted_accuracy - source.predicted_accuracy if feasible else None
    return CrossPrice(source=source.device, target=target.device, latency_ms=latency_ms, budget_ms=budget,
                      feasible=feasible, over_budget_ms=over, over_budget_pct=100.0 * over / budget, regret=regret)


def compare(store: Any, devices: Sequence[str], *, predictor: Any = None, quantiles: Sequence[float] | None = None,
            generations: int | None = None, seed: int = 0, resolutions: Sequence[int] | None = None,
            progress: Callable[[str, int, int | None], None] | None = None, **options: Any) -> Any:
    """``lutnas compare`` as one call: :func:`lut.compare.compare`, and with a predictor the best subnet per
    device at matched budgets and the cross-device regret (``regret`` in the report).

    Args:
        store: the LUT store (a LutStore or its locator).
        devices: names, selectors or ids (two or more), as :func:`lut.compare.compare`.
        predictor: a predictor file (lutnas's or OFA's format) or a loaded predictor; None compares LUTs only.
        quantiles: with a predictor, budget quantiles of each device's achievable range (default
            :data:`DEFAULT_QUANTILES`).
        generations: with a predictor, generations per search (default OFA's 500).
        seed: seed of the subnet draw and of the searches.
        resolutions: resolutions to compare (and search) at.
        progress: called ``(task, done, total)`` as the matched-budget searches finish.
        **options: ``precision``, ``space``, ``subnets``, ``plot`` of :func:`lut.compare.compare`.

    Returns:
        A :class:`lut.compare.CompareReport`.

    Raises:
        ValueError: bad input (nothing searched).
        InfeasibleSearchError: a matched-budget search found no subnet.
    """
    from lut.compare import compare as compare_luts
    from lut.spaces import predictor_source
    from search.loading import predictor_and_label
    from search.fitting import extrapolation

    if predictor is None:
        if quantiles is not None or generations is not None:
            raise ValueError("--budgets and --generations go with --predictor P")
        return compare_luts(store, devices, resolutions=resolutions, seed=seed, **options)
    qs = [float(q) for q in (DEFAULT_QUANTILES if quantiles is None else quantiles)]
    if not qs or any(not 0.0 < q < 1.0 for q in qs):
        raise ValueError(f"budget quantiles must lie strictly between 0 and 1, got {qs}")
    settings = EvolutionSettings()
    if generations is not None:
        settings = dataclasses.replace(settings, generations=generations)
    if resolutions:
        settings = dataclasses.replace(settings, resolutions=tuple(int(r) for r in resolutions))
    settings.validate()
    pred, label = predictor_and_label(predictor)
    report = compare_luts(store, devices, resolutions=resolutions, seed=seed,
                          sources=[predictor_source(label, pred)], **options)
    try:
        # The compiled LUTs' space, not its name: a user's space (--space FILE, or recorded in the store) is no
        # built-in one.
        space = next(iter(report.luts.values())).space
        regret = cross_device_regret(space, report.luts, pred, qs, settings, random_state=seed, progress=progress)
    except InfeasibleSearchError:
        raise
    except Exception as err:  # noqa: BLE001 - the input was checked: what the searches raise is their failure
        raise SearchFailedError.wrapping(err, "regret search") from err
    picked = [p.predicted_accuracy for qr in regret.by_quantile for p in qr.picks.values()]
    return dataclasses.replace(report, regret=regret, extrapolation=extrapolation(pred, picked))
