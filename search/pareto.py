"""Budget sweeps: one search per budget.

:func:`pareto_sweep` chains the points: sweeping budgets in ascending order lets every search
start from the final population of the search before it (those subnets met a tighter budget,
so they meet this one too), and the search spends its generations improving instead of
re-discovering good regions; a point's answer then depends on the points before it.
:func:`independent_sweep` runs every point as if alone, with the same seed, so a budget gives
the same answer in any list, and an unreachable point is reported in its place instead of
failing the sweep. Both share one prediction cache, so no network is scored twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from search.errors import BudgetOutOfRangeError, InfeasibleSearchError
from search.evolution import (
    Constraint,
    EvolutionSettings,
    SearchResult,
    SeedLike,
    check_constraints,
    evolutionary_search,
    search_resolutions,
)
from search.genomes import genome_for
from search.prediction_cache import PredictionCache
from space import SearchSpace

__all__ = ["independent_sweep", "pareto_front", "pareto_sweep"]

logger = logging.getLogger(__name__)


def pareto_sweep(
    space: SearchSpace | str,
    points: Sequence[Sequence[Constraint]],
    predictor: Any,
    settings: EvolutionSettings | None = None,
    random_state: SeedLike = None,
    extra_constraints: Sequence[Constraint] = (),
) -> list[SearchResult]:
    """Run one search per point of a sweep, sharing populations between consecutive points.

    Args:
        space: a space name or SearchSpace.
        points: the constraints of each point (e.g. one latency budget per device), ordered
            from the tightest to the loosest; each point's search starts from the previous
            point's final population (its members that meet the new constraints).
        predictor: the accuracy predictor (``predict_batch``).
        settings: evolution settings (OFA's defaults when None).
        random_state: one seed for the whole sweep.
        extra_constraints: constraints added to every point (e.g. MACs).

    Returns:
        One result per point, in the order given.

    Raises:
        BudgetOutOfRangeError: a point's bound is out of range (checked for every point first).
    """
    # Check every point before searching any, so a bad budget fails at once.
    for point in points:
        cons = [*point, *extra_constraints]
        res = search_resolutions(space, cons, predictor, settings.resolutions if settings else None)
        check_constraints(space, cons, predictor, res)
    rng = np.random.default_rng(random_state)
    cache = PredictionCache(predictor, genome_for(space))  # points share the networks they score
    results: list[SearchResult] = []
    previous = None
    for point in points:
        result = evolutionary_search(space, [*point, *extra_constraints], predictor, settings, rng,
                                     seed_population=previous, prediction_cache=cache)
        logger.debug("sweep point %s: %.2f%%", result.limits, result.predicted_accuracy)
        results.append(result)
        previous = result.population
    return results


def independent_sweep(
    space: SearchSpace | str,
    points: Sequence[Sequence[Constraint]],
    predictor: Any,
    settings: EvolutionSettings | None = None,
    random_state: int | None = None,
    extra_constraints: Sequence[Constraint] = (),
    progress: Callable[[str, int, int | None], None] | None = None,
) -> list[SearchResult | BudgetOutOfRangeError | InfeasibleSearchError]:
    """Run one search per point, each exactly as a search of that point alone with ``random_state``.

    Args:
        space: a space name or SearchSpace.
        points: the constraints of each point (e.g. one latency budget per device).
        predictor: the accuracy predictor (``predict_batch``).
        settings: evolution settings (OFA's defaults when None).
        random_state: the seed every point's search starts from (an int, so each point draws the
            same stream it would draw alone; None draws fresh entropy per point).
        extra_constraints: constraints added to every point (e.g. MACs).
        progress: called ``("searching budgets", done, total)`` as points finish.

    Returns:
        One entry per point, in the order given: its result, or the error that says why no subnet
        fits it (out of the achievable range, or jointly unreachable).
    """
    cache = PredictionCache(predictor, genome_for(space))
    out: list[SearchResult | BudgetOutOfRangeError | InfeasibleSearchError] = []
    for point in points:
        try:
            out.append(evolutionary_search(space, [*point, *extra_constraints], predictor, settings, random_state,
                                           prediction_cache=cache))
        except (BudgetOutOfRangeError, InfeasibleSearchError) as err:
            logger.debug("sweep point %s: %s", [c.describe_limit() for c in point], err)
            out.append(err)
        if progress is not None:
            progress("searching budgets", len(out), len(points))
    return out


def pareto_front(results: Sequence[SearchResult], cost: str | None = None) -> list[int]:
    """Indices of the results no other result beats on both cost and predicted accuracy.

    Args:
        results: sweep results.
        cost: the cost name to compare (default: the first latency device of the first result).

    Returns:
        Indices into ``results``, by ascending cost.
    """
    if not results:
        return []
    if cost is None:
        cost = next(iter(results[0].latency_ms), None) or next(iter(results[0].costs))
    order = sorted(range(len(results)), key=lambda i: (results[i].costs[cost], -results[i].predicted_accuracy))
    front, best = [], -np.inf
    for i in order:
        if results[i].predicted_accuracy > best:
            front.append(i)
            best = results[i].predicted_accuracy
    return front
