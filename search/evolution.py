"""Constrained evolutionary search over a population held as integer arrays.

The algorithm is OFA's EvolutionFinder with its defaults: a population of 100, 500
generations; each generation keeps the best 25% as parents and breeds the rest of the next
population as 50 mutants (each gene resampled with probability 0.1, resolution included)
and 50 uniform crossovers of two random parents. A child that violates a constraint is
bred again from the same parent(s), as OFA does. Differences from OFA's code: the whole
population is one :class:`space.SubnetBatch`; each constraint prices a whole round of
candidates with one gathered call (``predict_batch``), several candidates per pending child
at once; the accuracy predictor scores each generation's distinct children with one call;
the initial population keeps all its members (OFA keeps the first half); a budget
outside the achievable range is an immediate error instead of an ``input()`` prompt; and
children that cannot be repaired within ``max_retries`` rounds fall back to a parent copy.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from search.cost import macs_table, params_table
from search.errors import (
    BudgetOutOfRangeError,
    InfeasibleSearchError,
    SpaceMismatchError,
)
from space import SearchSpace, SubnetBatch, get_space

__all__ = [
    "AccuracyModel",
    "Constraint",
    "CostModel",
    "EvolutionSettings",
    "SearchResult",
    "check_constraints",
    "evolutionary_search",
    "initial_population",
    "latency_constraint",
    "macs_constraint",
    "params_constraint",
    "search_resolutions",
    "with_limit",
]

logger = logging.getLogger(__name__)

SeedLike = int | np.random.Generator | None

# Odd 64-bit multipliers for hashing gene rows (read-only; see _predict_unique).
_HASH_MULTIPLIERS = (np.random.default_rng(20190826).integers(1, 2**62, 256, dtype=np.uint64) * 2 + 1)
_HASH_MULTIPLIERS.setflags(write=False)


@runtime_checkable
class CostModel(Protocol):
    """What a constraint needs from a latency LUT (or a MACs/params table)."""

    resolutions: tuple[int, ...]  # resolutions the model prices

    def predict_batch(self, batch: SubnetBatch) -> np.ndarray:
        """Cost of each subnet, shape (n,)."""

    def latency_range(self, resolutions: Iterable[int] | None = None) -> tuple[float, float]:
        """Exact (min, max) cost over every subnet at ``resolutions``."""


@runtime_checkable
class AccuracyModel(Protocol):
    """What the search needs from an accuracy predictor."""

    def predict_batch(self, batch: SubnetBatch) -> np.ndarray:
        """Predicted top-1 accuracy (percent) of each subnet, shape (n,)."""


@dataclass(frozen=True)
class Constraint:
    """One upper bound: ``model.predict_batch(subnet) <= limit``.

    Attributes:
        name: a label; latency constraints use the device name.
        kind: ``"latency"``, ``"macs"`` or ``"params"``.
        model: the cost model (a compiled LUT for latency).
        limit: the bound, in ``unit``.
        unit: ``"ms"`` for latency, ``""`` for counts.
    """

    name: str
    kind: str
    model: Any
    limit: float
    unit: str = ""

    def describe_limit(self) -> str:
        """The bound as text, e.g. ``"latency on note10 <= 25 ms"``."""
        unit = f" {self.unit}" if self.unit else ""
        where = f" on {self.name}" if self.kind == "latency" else ""
        return f"{self.kind}{where} <= {_num(self.limit)}{unit}"


def _num(x: float) -> str:
    return f"{x:.4g}" if abs(x) < 1e6 else f"{x:.4e}"


def latency_constraint(device: str, table: Any, budget_ms: float) -> Constraint:
    """A latency budget on one device, priced by its compiled LUT (anything with
    ``predict_batch``, ``resolutions`` and ``latency_range``)."""
    return Constraint(name=device, kind="latency", model=table, limit=float(budget_ms), unit="ms")


def macs_constraint(space: SearchSpace | str, max_macs: float) -> Constraint:
    """At most ``max_macs`` multiply-adds."""
    return Constraint(name="macs", kind="macs", model=macs_table(space), limit=float(max_macs))


def params_constraint(space: SearchSpace | str, max_params: float) -> Constraint:
    """At most ``max_params`` parameters."""
    return Constraint(name="params", kind="params", model=params_table(space), limit=float(max_params))


@dataclass(frozen=True)
class EvolutionSettings:
    """OFA's EvolutionFinder settings (its defaults) plus lutnas's safety limits."""

    population_size: int = 100  # subnets per generation
    generations: int = 500  # OFA's max_time_budget
    parent_ratio: float = 0.25  # share of the population kept as parents
    mutation_ratio: float = 0.5  # share of the children bred by mutation (the rest by crossover)
    mutate_prob: float = 0.1  # per-gene resampling probability (resolution included)
    max_retries: int = 50  # rounds to re-breed constraint violators before copying a parent
    tries_per_round: int = 4  # candidates bred at once per pending child in each round
    max_init_samples: int = 200_000  # random subnets drawn at most to fill the first population
    resolutions: tuple[int, ...] | None = None  # restrict the search further (default: all allowed)

    def validate(self) -> None:
        """Raise ValueError naming the first bad setting."""
        if self.population_size < 2:
            raise ValueError(f"population_size should be >= 2; got {self.population_size}")
        if self.generations < 0:
            raise ValueError(f"generations should be >= 0; got {self.generations}")
        for name in ("parent_ratio", "mutation_ratio", "mutate_prob"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} should be in [0, 1]; got {value}")
        if self.n_parents < 1:
            raise ValueError(f"parent_ratio {self.parent_ratio} leaves no parent in a population of "
                             f"{self.population_size}")
        if self.max_retries < 1 or self.tries_per_round < 1 or self.max_init_samples < self.population_size:
            raise ValueError("max_retries and tries_per_round should be >= 1 and max_init_samples >= population_size; "
                             f"got {self.max_retries}, {self.tries_per_round}, {self.max_init_samples}")

    @property
    def n_parents(self) -> int:
        return round(self.parent_ratio * self.population_size)

    @property
    def n_mutations(self) -> int:
        return round(self.mutation_ratio * self.population_size)


@dataclass(frozen=True)
class SearchResult:
    """The best subnet found and how the search went.

    Attributes:
        arch: the best subnet as an OFA arch dict.
        predicted_accuracy: its predicted top-1 accuracy (percent).
        latency_ms: its LUT latency per constrained device.
        costs: every constraint's value for it, by constraint name.
        limits: every constraint's bound, by constraint name.
        search_seconds: wall time of the search.
        resolutions: the resolutions searched.
        history: best predicted accuracy after each generation, shape (generations + 1,).
        population: the final population.
        population_accuracy: the final population's predicted accuracies.
        predictor_calls: batched predictor calls made.
    """

    arch: dict[str, Any]
    predicted_accuracy: float
    latency_ms: dict[str, float]
    costs: dict[str, float]
    limits: dict[str, float]
    search_seconds: float
    resolutions: tuple[int, ...]
    history: np.ndarray = field(repr=False)
    population: SubnetBatch = field(repr=False)
    population_accuracy: np.ndarray = field(repr=False)
    predictor_calls: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready summary: arch, predicted_accuracy, latency_ms, search_seconds and more."""
        out: dict[str, Any] = {
            "arch": self.arch,
            "predicted_accuracy": self.predicted_accuracy,
            "latency_ms": dict(self.latency_ms),
            "search_seconds": self.search_seconds,
        }
        extra = {k: v for k, v in self.costs.items() if k not in self.latency_ms}
        if extra:
            out["costs"] = extra
        out["limits"] = dict(self.limits)
        out["resolutions"] = list(self.resolutions)
        return out


# -- checks ------------------------------------------------------------------------------
def _model_space_name(model: Any) -> str | None:
    space = getattr(model, "space", None)
    if space is not None and hasattr(space, "name"):
        return str(space.name)
    name = getattr(model, "space_name", None)
    return None if name is None else str(name)


def search_resolutions(space: SearchSpace | str, constraints: Sequence[Constraint], predictor: Any = None,
                       resolutions: Iterable[int] | None = None) -> tuple[int, ...]:
    """The resolutions a search may use: the space's, held by every constraint's model and
    trained on by the predictor, optionally narrowed to ``resolutions``.

    Raises:
        InfeasibleSearchError: no resolution is left; the message lists each source's set.
    """
    space = get_space(space)
    allowed = set(space.resolutions)
    sources = [f"space {space.name}: {_ranges(space.resolutions)}"]
    for c in constraints:
        held = getattr(c.model, "resolutions", None)
        if held is not None:
            allowed &= {int(r) for r in held}
            sources.append(f"{c.kind} {c.name}: {_ranges(held)}")
    held = getattr(predictor, "resolutions", None) if predictor is not None else None
    if held is not None:
        allowed &= {int(r) for r in held}
        sources.append(f"predictor: {_ranges(held)}")
    if resolutions is not None:
        allowed &= {int(r) for r in resolutions}
        sources.append(f"requested: {_ranges(resolutions)}")
    if not allowed:
        raise InfeasibleSearchError("no resolution is allowed by every source; " + "; ".join(sources))
    return tuple(sorted(allowed))


def _ranges(values: Iterable[int]) -> str:
    vals = sorted({int(v) for v in values})
    if len(vals) > 2 and len({b - a for a, b in itertools.pairwise(vals)}) == 1:
        return f"{vals[0]}..{vals[-1]} step {vals[1] - vals[0]}"
    return ",".join(str(v) for v in vals) or "none"


def check_constraints(space: SearchSpace | str, constraints: Sequence[Constraint], predictor: Any,
                      resolutions: tuple[int, ...]) -> None:
    """Fail fast on a space mismatch or a bound no subnet can meet (or every subnet meets).

    Raises:
        SpaceMismatchError: a cost model or the predictor belongs to another space.
        BudgetOutOfRangeError: naming the bound and the achievable range at ``resolutions``.
    """
    space = get_space(space)
    pred_space = _model_space_name(predictor)
    if pred_space is not None and pred_space != space.name:
        raise SpaceMismatchError(f"the accuracy predictor was trained for {pred_space!r}, "
                                 f"but the search space is {space.name!r}")
    for c in constraints:
        model_space = _model_space_name(c.model)
        if model_space is not None and model_space != space.name:
            raise SpaceMismatchError(f"the {c.kind} model for {c.name!r} is compiled for {model_space!r}, "
                                     f"but the search space is {space.name!r}")
        lo, hi = c.model.latency_range(resolutions)
        unit = f" {c.unit}" if c.unit else ""
        span = f"achievable range at r={_ranges(resolutions)}: {_num(lo)}..{_num(hi)}{unit}"
        if c.limit < lo:
            raise BudgetOutOfRangeError(f"no subnet meets {c.describe_limit()}: {span}")
        if c.limit >= hi:
            raise BudgetOutOfRangeError(f"every subnet meets {c.describe_limit()}, so it constrains nothing: {span}")


# -- the search --------------------------------------------------------------------------
class _Evaluator:
    """Prices batches against all constraints."""

    def __init__(self, constraints: Sequence[Constraint]) -> None:
        self.constraints = list(constraints)

    def costs(self, batch: SubnetBatch) -> np.ndarray:
        """(n, n_constraints) costs."""
        if not self.constraints:
            return np.zeros((len(batch), 0))
        return np.stack([np.asarray(c.model.predict_batch(batch), dtype=np.float64) for c in self.constraints],
                        axis=1)

    def feasible(self, batch: SubnetBatch) -> np.ndarray:
        ok = np.ones(len(batch), dtype=bool)
        for c in self.constraints:
            ok &= np.asarray(c.model.predict_batch(batch)) <= c.limit
        return ok


def _replace_rows(target: SubnetBatch, rows: np.ndarray, source: SubnetBatch) -> SubnetBatch:
    arrays = []
    for name in ("ks", "e", "d", "r"):
        arr = getattr(target, name).copy()
        arr[rows] = getattr(source, name)
        arrays.append(arr)
    return SubnetBatch(*arrays)


def _shrink(space: SearchSpace, batch: SubnetBatch, prob: float, rng: np.random.Generator,
            resolutions: tuple[int, ...]) -> SubnetBatch:
    """Set each gene to its smallest choice with probability ``prob`` (biases sampling toward cheap subnets)."""
    out = []
    smallest = {"ks": min(space.ks_choices), "e": min(space.expand_choices), "d": min(space.depth_choices),
                "r": min(resolutions)}
    for name in ("ks", "e", "d", "r"):
        arr = getattr(batch, name)
        out.append(np.where(rng.random(arr.shape) < prob, smallest[name], arr))
    return SubnetBatch(*out)


def initial_population(space: SearchSpace, evaluator: _Evaluator, n: int, rng: np.random.Generator,
                       resolutions: tuple[int, ...], settings: EvolutionSettings,
                       seed_population: SubnetBatch | None = None) -> SubnetBatch:
    """``n`` feasible subnets: the feasible part of ``seed_population`` first, then uniform
    random subnets kept when feasible (OFA's rejection sampling); when those are too rare,
    draws biased toward the smallest choices.

    Raises:
        InfeasibleSearchError: fewer than ``n`` feasible subnets after ``max_init_samples`` draws.
    """
    parts: list[SubnetBatch] = []
    have = 0
    if seed_population is not None and len(seed_population):
        ok = np.isin(seed_population.r, resolutions)
        ok[ok] = evaluator.feasible(seed_population.take(np.flatnonzero(ok)))
        seeded = seed_population.take(np.flatnonzero(ok)[:n])
        parts.append(seeded)
        have = len(seeded)
    drawn = 0
    shrink = 0.0
    while have < n:
        if drawn >= settings.max_init_samples:
            raise InfeasibleSearchError(
                f"found only {have} of {n} subnets meeting every constraint in {drawn} random draws; "
                "the constraints may be jointly unreachable"
            )
        chunk = min(max(4 * (n - have), 256), settings.max_init_samples - drawn)
        cand = space.sample(chunk, rng, resolutions=resolutions)
        if shrink > 0:
            cand = _shrink(space, cand, shrink, rng, resolutions)
        drawn += chunk
        ok = np.flatnonzero(evaluator.feasible(cand))
        if len(ok):
            take = cand.take(ok[: n - have])
            parts.append(take)
            have += len(take)
        # Rare feasible subnets: lean toward the smallest choices, more each round.
        if have < n and len(ok) < 0.01 * chunk and drawn >= 16 * n:
            shrink = min(1.0, shrink + 0.1)
    return SubnetBatch.concat(parts) if len(parts) > 1 else parts[0]


def _breed(space: SearchSpace, parents: SubnetBatch, mut_parent: np.ndarray, pair: np.ndarray,
           settings: EvolutionSettings, resolutions: tuple[int, ...], evaluator: _Evaluator,
           rng: np.random.Generator, tries: int) -> tuple[SubnetBatch, int]:
    """One generation's children: mutants of ``parents[mut_parent]`` then crossovers of the ``pair`` rows.

    OFA re-breeds a violating child from the same parent(s) until it is feasible. Here each
    pending child gets ``tries`` candidates at once (one LUT call prices them all) and keeps
    its first feasible one, which picks from the same distribution as trying them in turn.
    Children still infeasible after ``max_retries`` rounds become a copy of their (first) parent.

    Returns:
        The children and how many of them fell back to a parent copy.
    """
    n_mut = len(mut_parent)
    first_parent = np.concatenate([mut_parent, pair[0]])
    children = parents.take(first_parent)  # the fallback, overwritten as feasible children arrive
    pending = np.arange(len(first_parent))
    for _ in range(max(settings.max_retries, 1)):
        if not len(pending):
            break
        rows = np.repeat(pending, tries)
        is_mut = rows < n_mut
        parts = []
        if is_mut.any():
            parts.append(space.mutate(parents.take(mut_parent[rows[is_mut]]), settings.mutate_prob, rng, resolutions))
        if (~is_mut).any():
            cross_rows = rows[~is_mut] - n_mut
            parts.append(space.crossover(parents.take(pair[0][cross_rows]), parents.take(pair[1][cross_rows]), rng))
        candidates = SubnetBatch.concat(parts) if len(parts) > 1 else parts[0]
        ok = evaluator.feasible(candidates).reshape(len(pending), tries)
        found = ok.any(axis=1)
        pick = np.flatnonzero(found) * tries + ok[found].argmax(axis=1)
        children = _replace_rows(children, pending[found], candidates.take(pick))
        pending = pending[~found]
    return children, len(pending)


def _predict_unique(predictor: AccuracyModel, batch: SubnetBatch) -> np.ndarray:
    """Predicted accuracies, with the predictor called once on the distinct subnets only
    (crossovers of converged parents often repeat a subnet)."""
    genes = np.concatenate([batch.ks, batch.e, batch.d, batch.r[:, None]], axis=1).astype(np.uint64)
    # A polynomial hash per row (wrapping uint64 arithmetic), verified exactly below.
    keys = genes @ _HASH_MULTIPLIERS[: genes.shape[1]]
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    if len(first) == len(keys) or not np.array_equal(genes[first][inverse], genes):
        return np.asarray(predictor.predict_batch(batch), dtype=np.float64)
    return np.asarray(predictor.predict_batch(batch.take(first)), dtype=np.float64)[inverse]


def _one_blas_thread() -> contextlib.AbstractContextManager[Any]:
    """Limit BLAS to one thread while the search runs (restored afterwards).

    The search multiplies small matrices hundreds of times; waking BLAS worker threads for
    each costs more than the product, and on a busy host much more.
    """
    try:
        from threadpoolctl import threadpool_limits  # installed with scikit-learn
    except ImportError:  # pragma: no cover - scikit-learn is a host dependency
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def evolutionary_search(
    space: SearchSpace | str,
    constraints: Sequence[Constraint],
    predictor: AccuracyModel,
    settings: EvolutionSettings | None = None,
    random_state: SeedLike = None,
    seed_population: SubnetBatch | None = None,
) -> SearchResult:
    """Find the subnet with the best predicted accuracy meeting every constraint.

    Args:
        space: a space name or SearchSpace.
        constraints: upper bounds (latency on one or more devices, MACs, params); may be empty.
        predictor: anything with ``predict_batch(batch) -> accuracy (percent)``; its
            ``resolutions`` (when present) limit the resolutions searched.
        settings: OFA's defaults when None.
        random_state: an int seed, a numpy Generator or None.
        seed_population: subnets to start from (the feasible ones are kept), e.g. the final
            population of a search under a tighter budget.

    Returns:
        The best subnet and the final population.

    Raises:
        SpaceMismatchError: the predictor or a cost model belongs to another space.
        BudgetOutOfRangeError: a bound below (or at or above) every subnet's cost.
        InfeasibleSearchError: no resolution is allowed, or the bounds are jointly unreachable.
    """
    with _one_blas_thread():
        return _evolutionary_search(space, constraints, predictor, settings, random_state, seed_population)


def _evolutionary_search(
    space: SearchSpace | str,
    constraints: Sequence[Constraint],
    predictor: AccuracyModel,
    settings: EvolutionSettings | None,
    random_state: SeedLike,
    seed_population: SubnetBatch | None,
) -> SearchResult:
    start = time.perf_counter()
    settings = settings or EvolutionSettings()
    settings.validate()
    space = get_space(space)
    names = [c.name for c in constraints]
    if len(set(names)) != len(names):
        raise ValueError(f"constraint names must be unique, got {names}")
    resolutions = search_resolutions(space, constraints, predictor, settings.resolutions)
    check_constraints(space, constraints, predictor, resolutions)
    rng = np.random.default_rng(random_state)
    evaluator = _Evaluator(constraints)
    n_pop, n_par, n_mut = settings.population_size, settings.n_parents, settings.n_mutations
    n_cross = n_pop - n_mut

    population = initial_population(space, evaluator, n_pop, rng, resolutions, settings, seed_population)
    accuracy = np.asarray(predictor.predict_batch(population), dtype=np.float64)
    calls = 1
    history = np.empty(settings.generations + 1)
    best_acc = -np.inf
    best: SubnetBatch | None = None
    fallbacks = 0
    for gen in range(settings.generations + 1):
        order = np.argsort(-accuracy, kind="stable")[:n_par]
        parents, parent_acc = population.take(order), accuracy[order]
        if parent_acc[0] > best_acc:
            best_acc, best = float(parent_acc[0]), parents.take([0])
        history[gen] = best_acc
        if gen == settings.generations:
            break
        mut_parent = rng.integers(0, n_par, n_mut)
        pair = rng.integers(0, n_par, (2, n_cross))
        children, n_fb = _breed(space, parents, mut_parent, pair, settings, resolutions, evaluator, rng,
                                settings.tries_per_round)
        fallbacks += n_fb
        child_acc = _predict_unique(predictor, children)
        calls += 1
        population = SubnetBatch.concat([parents, children])
        accuracy = np.concatenate([parent_acc, child_acc])
    if fallbacks:
        logger.debug("%d children fell back to a parent copy after %d retries", fallbacks, settings.max_retries)
    if best is None:  # unreachable: the loop selects parents at least once
        raise InfeasibleSearchError("the search produced no subnet")
    costs = evaluator.costs(best)[0]
    arch = best[0].to_arch()
    elapsed = time.perf_counter() - start
    return SearchResult(
        arch=arch,
        predicted_accuracy=best_acc,
        latency_ms={c.name: float(v) for c, v in zip(constraints, costs) if c.kind == "latency"},
        costs={c.name: float(v) for c, v in zip(constraints, costs)},
        limits={c.name: c.limit for c in constraints},
        search_seconds=elapsed,
        resolutions=resolutions,
        history=history,
        population=population,
        population_accuracy=accuracy,
        predictor_calls=calls,
    )


def with_limit(constraint: Constraint, limit: float) -> Constraint:
    """The same constraint with another bound."""
    return dataclasses.replace(constraint, limit=float(limit))
