"""Budget sweeps: one search per budget, each starting from the previous one's population.

Sweeping budgets in ascending order lets every search start from the final population of
the search before it: those subnets met a tighter budget, so they meet this one too, and
the search spends its generations improving instead of re-discovering good regions. The
points share one prediction cache, so no network is scored twice across the sweep.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from search.evolution import (
    Constraint,
    EvolutionSettings,
    SearchResult,
    SeedLike,
    evolutionary_search,
)
from search.prediction_cache import PredictionCache
from space import Genome, SearchSpace, get_space

__all__ = ["pareto_front", "pareto_sweep"]

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
    from search.evolution import check_constraints, search_resolutions

    # Check every point before searching any, so a bad budget fails at once.
    for point in points:
        cons = [*point, *extra_constraints]
        res = search_resolutions(space, cons, predictor, settings.resolutions if settings else None)
        check_constraints(space, cons, predictor, res)
    rng = np.random.default_rng(random_state)
    cache = PredictionCache(predictor, Genome(get_space(space)))  # points share the networks they score
    results: list[SearchResult] = []
    previous = None
    for point in points:
        result = evolutionary_search(space, [*point, *extra_constraints], predictor, settings, rng,
                                     seed_population=previous, prediction_cache=cache)
        logger.debug("sweep point %s: %.2f%%", result.limits, result.predicted_accuracy)
        results.append(result)
        previous = result.population
    return results


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
