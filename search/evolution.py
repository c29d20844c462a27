"""Constrained evolutionary search over a population held as one integer matrix.

The algorithm is OFA's EvolutionFinder with its defaults: a population of 100, 500
generations; each generation keeps the best 25% as parents and breeds 100 children: 50
mutants (each slot's kernel and expand ratio together, each stage's depth and the
resolution resampled with probability 0.1) and 50 uniform crossovers of two random parents.
A child that violates a constraint is bred again from the same parent(s), as OFA does.
Differences from OFA's code: the population is one gene matrix (:class:`space.Genome`);
each constraint prices a whole round of candidates with one gathered call
(``predict_batch``), several candidates per pending child at once; the accuracy predictor
is called once per generation on the networks it has not scored yet
(:class:`search.prediction_cache.PredictionCache`); the initial population keeps all its
members (OFA keeps the first half); a budget outside the achievable range is an immediate
error instead of an ``input()`` prompt; and children that cannot be repaired within
``max_tries`` candidates fall back to a parent copy.
"""

from __future__ import annotations

import contextlib
import dataclasses
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
from search.genomes import genome_for
from search.prediction_cache import PredictionCache
from space import Genome, ResNetSpace, SearchSpace, SubnetBatch, describe_resolutions, get_space
from space.batch import choice_index

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

@runtime_checkable
class CostModel(Protocol):
    """What a constraint needs from a latency LUT (or a MACs/params table)."""

    resolutions: tuple[int, ...]  # resolutions the model prices

    def predict_batch(self, batch: SubnetBatch) -> np.ndarray:
        """Cost of each subnet, shape (n,)."""

    def value_range(self, resolutions: Iterable[int] | None = None) -> tuple[float, float]:
        """Exact (min, max) cost over every subnet at ``resolutions`` (ms for a LUT, a count for MACs)."""


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
    ``predict_batch``, ``resolutions`` and ``value_range``)."""
    return Constraint(name=device, kind="latency", model=table, limit=float(budget_ms), unit="ms")


def macs_constraint(space: SearchSpace | ResNetSpace | str, max_macs: float) -> Constraint:
    """At most ``max_macs`` multiply-adds."""
    return Constraint(name="macs", kind="macs", model=macs_table(space), limit=float(max_macs))


def params_constraint(space: SearchSpace | ResNetSpace | str, max_params: float) -> Constraint:
    """At most ``max_params`` parameters."""
    return Constraint(name="params", kind="params", model=params_table(space), limit=float(max_params))


@dataclass(frozen=True)
class EvolutionSettings:
    """OFA's EvolutionFinder settings (its defaults) plus lutnas's safety limits."""

    population_size: int = 100  # subnets per generation
    generations: int = 500  # OFA's max_time_budget
    parent_ratio: float = 0.25  # share of the population kept as parents
    mutation_ratio: float = 0.5  # share of the children bred by mutation (the rest by crossover)
    mutate_prob: float = 0.1  # resampling probability of each slot (kernel and expand), depth and the resolution
    max_tries: int = 500  # candidates bred for one child before it falls back to a parent copy
    tries_per_round: int | None = None  # candidates per pending child per round (None: sized from the feasible share)
    distinct_parents: bool = False  # parents are distinct networks (OFA's rule lets copies of the best crowd in)
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
        if self.max_tries < 1 or (self.tries_per_round is not None and self.tries_per_round < 1):
            raise ValueError(f"max_tries and tries_per_round should be >= 1; got {self.max_tries}, {self.tries_per_round}")
        if self.max_init_samples < self.population_size:
            raise ValueError(f"max_init_samples should be >= population_size; got {self.max_init_samples}")

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
        predictor_calls: batched predictor calls made (a generation whose children were all
            scored before makes none).
        predicted_subnets: distinct subnets the predictor scored.
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
    predicted_subnets: int = 0

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


def search_resolutions(space: SearchSpace | ResNetSpace | str, constraints: Sequence[Constraint], predictor: Any = None,
                       resolutions: Iterable[int] | None = None) -> tuple[int, ...]:
    """The resolutions a search may use: the space's, held by every constraint's model and
    trained on by the predictor, optionally narrowed to ``resolutions``.

    Raises:
        InfeasibleSearchError: no resolution is left; the message lists each source's set.
    """
    space = get_space(space)
    allowed = set(space.resolutions)
    sources = [f"space {space.name}: {describe_resolutions(space.resolutions)}"]
    for c in constraints:
        held = getattr(c.model, "resolutions", None)
        if held is not None:
            allowed &= {int(r) for r in held}
            sources.append(f"{c.kind} {c.name}: {describe_resolutions(held)}")
    held = getattr(predictor, "resolutions", None) if predictor is not None else None
    if held is not None:
        allowed &= {int(r) for r in held}
        sources.append(f"predictor: {describe_resolutions(held)}")
    if resolutions is not None:
        allowed &= {int(r) for r in resolutions}
        sources.append(f"requested: {describe_resolutions(resolutions)}")
    if not allowed:
        raise InfeasibleSearchError("no resolution is allowed by every source; " + "; ".join(sources))
    return tuple(sorted(allowed))


def check_constraints(space: SearchSpace | ResNetSpace | str, constraints: Sequence[Constraint], predictor: Any,
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
        lo, hi = c.model.value_range(resolutions)
        unit = f" {c.unit}" if c.unit else ""
        span = f"achievable range at r={describe_resolutions(resolutions)}: {_num(lo)}..{_num(hi)}{unit}"
        if c.limit < lo:
            raise BudgetOutOfRangeError(f"no subnet meets {c.describe_limit()}: {span}")
        if c.limit >= hi:
            raise BudgetOutOfRangeError(f"every subnet meets {c.describe_limit()}, so it constrains nothing: {span}")


# -- the search --------------------------------------------------------------------------
class _StackedTables:
    """Every constraint's additive form stacked into one table, priced with one gather.

    Cost models that expose ``additive_tables`` (compiled LUTs, MACs and parameter tables)
    are sums of per-slot terms, so the (m, n_constraints) costs of m gene rows are one gather
    over (resolution, slot, kernel, expand) and a row sum: no per-model call, no re-checks.
    """

    def __init__(self, genome: Genome, models: Sequence[Any]) -> None:
        space = genome.space
        self.genome = genome
        res = tuple(int(r) for r in genome.resolution_choices)
        parts = [model.additive_tables(res) for model in models]
        fixed = np.stack([np.asarray(f, dtype=np.float64) for f, _ in parts], axis=-1)  # (R, C)
        slot = np.stack([np.asarray(t, dtype=np.float64) for _, t in parts], axis=-1)  # (R, S, K, E, C)
        n_r, n_slots, _, _, n_c = slot.shape
        # Kernel and expand axes indexed by the gene values themselves (unused values hold 0),
        # so a row's index needs no value-to-choice lookups.
        self._k_span, self._e_span = max(space.ks_choices) + 1, max(space.expand_choices) + 1
        by_value = np.zeros((n_r, n_slots, self._k_span, self._e_span, n_c))
        by_value[:, :, np.asarray(space.ks_choices)[:, None], np.asarray(space.expand_choices)[None, :]] = slot
        flat = by_value.reshape(-1, n_c)
        self._slot = [np.ascontiguousarray(flat[:, c]) for c in range(n_c)]  # one gather table per constraint
        # NaN (a block the LUT lacks) would poison the masked sums; such tables are not used.
        self.finite = bool(np.isfinite(slot).all() and np.isfinite(fixed).all())
        self._fixed = fixed
        self._r_stride = n_slots * self._k_span * self._e_span
        self._slot_base = np.arange(n_slots, dtype=np.int64) * (self._k_span * self._e_span)
        self._r_lut = choice_index(res)
        self._ones = np.ones(n_slots)

    def __call__(self, genes: np.ndarray) -> np.ndarray:
        g = self.genome
        ri = self._r_lut[genes[:, g.r]]
        idx = genes[:, g.ks] * self._e_span
        idx += genes[:, g.e]
        idx += self._slot_base
        idx += (ri * self._r_stride)[:, None]
        active = g.active(genes)
        out = np.empty((len(genes), len(self._slot)))
        for c, table in enumerate(self._slot):  # usually one constraint
            vals = table[idx]
            vals *= active  # inactive slots weigh 0 (multiplying is branch-free, unlike a masked write)
            out[:, c] = vals @ self._ones
        out += self._fixed[ri]
        return out


class _Evaluator:
    """Prices subnets against all constraints (exactly through each model's ``predict_batch``,
    or, for gene rows, through :class:`_StackedTables` when every model is additive)."""

    def __init__(self, constraints: Sequence[Constraint], genome: Any = None) -> None:
        self.constraints = list(constraints)
        self.limits = np.array([c.limit for c in self.constraints], dtype=np.float64)
        self._stacked = None
        if isinstance(genome, Genome) and self.constraints and all(
                hasattr(c.model, "additive_tables") for c in self.constraints):
            stacked = _StackedTables(genome, [c.model for c in self.constraints])
            self._stacked = stacked if stacked.finite else None
        self.genome = genome

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

    def feasible_genes(self, genes: np.ndarray) -> np.ndarray:
        """Which gene rows meet every constraint (NaN costs, i.e. missing blocks, do not)."""
        if self._stacked is None:
            return self.feasible(self.genome.to_batch(genes))
        return (self._stacked(genes) <= self.limits).all(axis=1)


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


def initial_population(space: SearchSpace | ResNetSpace, evaluator: _Evaluator, n: int, rng: np.random.Generator,
                       resolutions: tuple[int, ...], settings: EvolutionSettings,
                       seed_population: Any = None) -> Any:
    """``n`` feasible subnets: the feasible part of ``seed_population`` first, then uniform
    random subnets kept when feasible (OFA's rejection sampling); when those are too rare,
    draws biased toward the smallest choices.

    Raises:
        InfeasibleSearchError: fewer than ``n`` feasible subnets after ``max_init_samples`` draws.
    """
    genome = genome_for(space, resolutions)
    parts: list[Any] = []
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
        cand = _draw(genome, chunk, rng, shrink, resolutions)
        drawn += chunk
        ok = np.flatnonzero(evaluator.feasible(cand))
        if len(ok):
            take = cand.take(ok[: n - have])
            parts.append(take)
            have += len(take)
        # Rare feasible subnets: lean toward the smallest choices, more each round.
        if have < n and len(ok) < 0.01 * chunk and drawn >= 16 * n:
            shrink = min(1.0, shrink + 0.1)
    return type(parts[0]).concat(parts) if len(parts) > 1 else parts[0]


def _draw(genome: Any, n: int, rng: np.random.Generator, shrink: float, resolutions: tuple[int, ...]) -> Any:
    """``n`` random subnets, each gene set to its smallest choice with probability ``shrink``."""
    genes = genome.sample(n, rng)
    if shrink <= 0:
        return genome.to_batch(genes)
    if isinstance(genome, Genome):
        return _shrink(genome.space, genome.to_batch(genes), shrink, rng, resolutions)
    return genome.to_batch(genome.shrink(genes, shrink, rng))


class _TryPlan:
    """How many candidates to breed at once per pending child, from the feasible share seen so far.

    A child is the first feasible candidate of a sequence of independent tries, however many
    are bred per round, so this changes only the work: enough candidates in the first round
    that about 1.5 of each child's are feasible, and about 4 in later rounds.
    """

    def __init__(self, fixed: int | None, cap: int) -> None:
        self.fixed, self.cap = fixed, cap
        self.rate = {"mutation": 0.5, "crossover": 0.5}

    def tries(self, kind: str, first_round: bool) -> int:
        if self.fixed is not None:
            return self.fixed
        want = 1.5 if first_round else 4.0
        return int(min(self.cap, max(1.0, np.ceil(want / max(self.rate[kind], 0.01)))))

    def observe(self, kind: str, candidates: int, feasible: int) -> None:
        if candidates:
            self.rate[kind] = max(feasible / candidates, 0.01)


def _breed(genome: Any, parents: np.ndarray, mut_parent: np.ndarray, pair: np.ndarray,
           settings: EvolutionSettings, evaluator: _Evaluator, rng: np.random.Generator,
           plan: _TryPlan) -> tuple[np.ndarray, int]:
    """One generation's children (gene rows): mutants of ``parents[mut_parent]``, then crossovers of the ``pair`` rows.

    OFA re-breeds a violating child from the same parent(s) until it is feasible. Here each
    pending child gets several candidates per round (one LUT gather prices the round) and
    keeps its first feasible one, which picks from the same distribution as trying them in
    turn. A child still infeasible after ``max_tries`` candidates becomes a copy of its
    (first) parent.

    Returns:
        The children and how many of them fell back to a parent copy.
    """
    n_mut = len(mut_parent)
    first_parent = np.concatenate([mut_parent, pair[0]])
    children = parents[first_parent]  # the fallback, overwritten as feasible children arrive
    pending = np.arange(len(first_parent))
    used = 0
    while len(pending) and used < settings.max_tries:
        first_round = used == 0
        split = int(np.searchsorted(pending, n_mut))  # pending is ascending: mutants first
        t_mut = min(plan.tries("mutation", first_round), settings.max_tries - used)
        t_cross = min(plan.tries("crossover", first_round), settings.max_tries - used)
        per_child = np.full(len(pending), t_cross)
        per_child[:split] = t_mut
        owner = np.repeat(np.arange(len(pending)), per_child)  # candidate -> position in pending
        rows = pending[owner]
        n_mut_cand = split * t_mut
        candidates = parents[first_parent[rows]]
        if n_mut_cand:
            candidates[:n_mut_cand] = genome.mutate(candidates[:n_mut_cand], settings.mutate_prob, rng)
        if n_mut_cand < len(rows):
            other = parents[pair[1][rows[n_mut_cand:] - n_mut]]
            candidates[n_mut_cand:] = genome.crossover(candidates[n_mut_cand:], other, rng)
        ok = evaluator.feasible_genes(candidates)
        if first_round:
            plan.observe("mutation", n_mut_cand, int(ok[:n_mut_cand].sum()))
            plan.observe("crossover", len(rows) - n_mut_cand, int(ok[n_mut_cand:].sum()))
        hits = np.flatnonzero(ok)
        hit_owner = owner[hits]
        first = np.ones(len(hits), dtype=bool)  # the first feasible candidate of each child
        first[1:] = hit_owner[1:] != hit_owner[:-1]
        children[pending[hit_owner[first]]] = candidates[hits[first]]
        settled = np.zeros(len(pending), dtype=bool)
        settled[hit_owner] = True
        pending = pending[~settled]
        used += max(t_mut, t_cross)
    return children, len(pending)


def _select_parents(accuracy: np.ndarray, keys: list[bytes], n: int, distinct: bool) -> np.ndarray:
    """Indices of the ``n`` most accurate members (OFA's rule), or of the ``n`` most accurate
    distinct networks when ``distinct`` (copies fill up only when fewer exist)."""
    order = np.argsort(-accuracy, kind="stable")
    if not distinct:
        return order[:n]
    seen: set[bytes] = set()
    first, copies = [], []
    for i in order.tolist():
        if keys[i] in seen:
            copies.append(i)
        else:
            seen.add(keys[i])
            first.append(i)
            if len(first) == n:
                break
    return np.asarray((first + copies)[:n], dtype=np.int64)


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
    space: SearchSpace | ResNetSpace | str,
    constraints: Sequence[Constraint],
    predictor: AccuracyModel,
    settings: EvolutionSettings | None = None,
    random_state: SeedLike = None,
    seed_population: SubnetBatch | None = None,
    prediction_cache: PredictionCache | None = None,
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
        prediction_cache: predictions of ``predictor`` to reuse and extend (a sweep shares
            one across its points); a fresh one when None.

    Returns:
        The best subnet and the final population.

    Raises:
        SpaceMismatchError: the predictor or a cost model belongs to another space.
        BudgetOutOfRangeError: a bound below (or at or above) every subnet's cost.
        InfeasibleSearchError: no resolution is allowed, or the bounds are jointly unreachable.
        ValueError: ``prediction_cache`` holds another predictor's predictions.
    """
    with _one_blas_thread():
        return _evolutionary_search(space, constraints, predictor, settings, random_state, seed_population,
                                    prediction_cache)


def _evolutionary_search(
    space: SearchSpace | ResNetSpace | str,
    constraints: Sequence[Constraint],
    predictor: AccuracyModel,
    settings: EvolutionSettings | None,
    random_state: SeedLike,
    seed_population: SubnetBatch | None,
    cache: PredictionCache | None,
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
    genome = genome_for(space, resolutions)
    evaluator = _Evaluator(constraints, genome)
    if cache is None:
        cache = PredictionCache(predictor, genome)
    elif cache.predictor is not predictor or cache.genome.space.name != space.name:
        raise ValueError("prediction_cache was built for another predictor or search space")
    calls0, scored0 = cache.calls, cache.scored
    n_pop, n_par, n_mut = settings.population_size, settings.n_parents, settings.n_mutations
    n_cross = n_pop - n_mut
    plan = _TryPlan(settings.tries_per_round, cap=64)

    first = initial_population(space, evaluator, n_pop, rng, resolutions, settings, seed_population)
    population = genome.from_batch(first)
    accuracy, keys = cache.score(population)
    history = np.empty(settings.generations + 1)
    best_acc = -np.inf
    best: np.ndarray | None = None
    fallbacks = 0
    for gen in range(settings.generations + 1):
        order = _select_parents(accuracy, keys, n_par, settings.distinct_parents)
        parents, parent_acc = population[order], accuracy[order]
        if parent_acc[0] > best_acc:
            best_acc, best = float(parent_acc[0]), parents[:1].copy()
        history[gen] = best_acc
        if gen == settings.generations:
            break
        mut_parent = rng.integers(0, n_par, n_mut)
        pair = rng.integers(0, n_par, (2, n_cross))
        children, n_fb = _breed(genome, parents, mut_parent, pair, settings, evaluator, rng, plan)
        fallbacks += n_fb
        child_acc, child_keys = cache.score(children)
        population = np.concatenate([parents, children])
        accuracy = np.concatenate([parent_acc, child_acc])
        keys = [keys[i] for i in order.tolist()] + child_keys
    if fallbacks:
        logger.debug("%d children fell back to a parent copy after %d tries", fallbacks, settings.max_tries)
    if best is None:  # unreachable: the loop selects parents at least once
        raise InfeasibleSearchError("the search produced no subnet")
    best_batch = genome.to_batch(best)
    costs = evaluator.costs(best_batch)[0]
    arch = best_batch[0].to_arch()
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
        population=genome.to_batch(population.copy()),
        population_accuracy=accuracy,
        predictor_calls=cache.calls - calls0,
        predicted_subnets=cache.scored - scored0,
    )


def with_limit(constraint: Constraint, limit: float) -> Constraint:
    """The same constraint with another bound."""
    return dataclasses.replace(constraint, limit=float(limit))
