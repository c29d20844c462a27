"""Gene rows: the search's population layout and OFA's evolutionary operators on it."""

from __future__ import annotations

import numpy as np
import pytest

from space import Genome, get_space

SPACE = get_space("ofa-mbv3-w1.2")


def test_rows_round_trip_through_batches():
    genome = Genome(SPACE)
    batch = SPACE.sample(50, np.random.default_rng(0))
    genes = genome.from_batch(batch)
    assert genes.shape == (50, genome.width) == (50, 46)
    back = genome.to_batch(genes)
    for name in ("ks", "e", "d", "r"):
        np.testing.assert_array_equal(getattr(back, name), getattr(batch, name))
    # Same draws as the batch sampler, so seeded sampling did not change.
    np.testing.assert_array_equal(genome.sample(50, np.random.default_rng(0)), genes)


def test_mutation_resamples_kernel_and_expand_together():
    genome = Genome(SPACE, (160, 224))
    rng = np.random.default_rng(1)
    genes = genome.sample(20_000, rng)
    out = genome.mutate(genes, 0.1, rng)
    ks_changed = out[:, genome.ks] != genes[:, genome.ks]
    e_changed = out[:, genome.e] != genes[:, genome.e]
    # One coin per slot: a slot hit (10%) changes its kernel with p 2/3 and its expand with p 2/3.
    assert 0.060 < ks_changed.mean() < 0.073 and 0.060 < e_changed.mean() < 0.073
    both = (ks_changed & e_changed).mean()
    assert 0.040 < both < 0.049  # 0.1 * 4/9; independent coins would give ~0.0044
    assert set(np.unique(out[:, genome.r])) <= {160, 224}
    assert set(np.unique(out[:, genome.d])) <= {2, 3, 4}
    np.testing.assert_array_equal(genome.mutate(genes, 0.0, rng), genes)
    every = genome.mutate(genes[:100], 1.0, rng)
    assert set(np.unique(every[:, genome.ks])) <= {3, 5, 7}
    with pytest.raises(ValueError, match="mutation prob"):
        genome.mutate(genes, 1.5, rng)


def test_crossover_takes_each_gene_from_either_parent():
    genome = Genome(SPACE)
    rng = np.random.default_rng(2)
    a, b = genome.sample(4000, rng), genome.sample(4000, rng)
    child = genome.crossover(a, b, rng)
    assert ((child == a) | (child == b)).all()
    differ = a != b
    assert 0.47 < (child[differ] == a[differ]).mean() < 0.53
    with pytest.raises(ValueError, match="equal-sized"):
        genome.crossover(a, b[:10], rng)


def test_canonical_rows_ignore_slots_beyond_the_depth():
    genome = Genome(SPACE)
    genes = genome.sample(2, np.random.default_rng(3))
    genes[:, genome.d] = 2
    genes[1] = genes[0]
    genes[1, genome.ks.start + 3] = 7 if genes[0, genome.ks.start + 3] != 7 else 3  # stage 1, slot 4: unused
    canon = genome.canonical(genes)
    np.testing.assert_array_equal(canon[0], canon[1])
    assert canon[0, genome.ks.start + 2] == 0 and canon[0, genome.ks.start + 1] != 0
    assert genome.active(genes)[0].sum() == 10
