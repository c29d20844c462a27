"""The search's prediction cache: each distinct network scored once."""

from __future__ import annotations

import numpy as np
import pytest

from search import PredictionCache
from space import Genome, get_space

from .conftest import SyntheticAccuracy

SPACE = get_space("ofa-mbv3-w1.2")


def test_networks_are_scored_once():
    pred = SyntheticAccuracy()
    genome = Genome(SPACE)
    cache = PredictionCache(pred, genome)
    genes = genome.sample(30, np.random.default_rng(0))
    twin = genes[:5].copy()
    twin[:, genome.d] = 2
    other = twin.copy()
    other[:, genome.ks.start + 3] = np.where(other[:, genome.ks.start + 3] == 3, 5, 3)  # an unused slot differs
    expected = np.asarray(pred.predict_batch(genome.to_batch(genes)))
    np.testing.assert_allclose(cache(genes), expected)
    assert (cache.calls, cache.scored, len(cache)) == (1, 30, 30)
    np.testing.assert_allclose(cache(genes[::-1]), expected[::-1])
    assert cache.calls == 1  # all known: no predictor call
    out = cache(np.concatenate([twin, other, twin]))
    np.testing.assert_allclose(out[:5], out[5:10])
    assert (cache.calls, cache.scored) == (2, 35)  # the 15 rows were 5 networks
    assert cache.looked_up == 30 + 30 + 15


def test_memory_bound_and_bad_predictors():
    genome = Genome(SPACE)
    cache = PredictionCache(SyntheticAccuracy(), genome, max_entries=40)
    rng = np.random.default_rng(1)
    cache(genome.sample(30, rng))
    cache(genome.sample(30, rng))
    assert len(cache) == 30  # forgot the first 30 to hold the next
    with pytest.raises(ValueError, match="max_entries"):
        PredictionCache(SyntheticAccuracy(), genome, max_entries=0)

    class Short:
        def predict_batch(self, batch):
            return np.zeros(len(batch) - 1)

    with pytest.raises(ValueError, match="returned shape"):
        PredictionCache(Short(), genome)(genome.sample(3, rng))
