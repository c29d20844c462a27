"""A ResNet LUT prices whole populations with gathers: equal to the per-subnet block sum on random subnets
(arrays or arch dicts, with and without a calibration, with resolution-qualified rows), and rows the tables
cannot price fall back to the per-subnet path and its messages."""

from __future__ import annotations

import numpy as np
import pytest

from lut import Calibration, MissingBlocksError, qualified_key
from lut.blocksum import BlockSumLut
from lut.predict import CompiledLut
from search.genomes import ResNetBatch, ResNetGenome
from space import get_space

from .conftest import random_table


@pytest.mark.parametrize("name", ["ofa-resnet50", "ofa-resnet50-w0.25"])
def test_gathered_prices_equal_the_per_subnet_block_sum(name: str) -> None:
    space = get_space(name)
    res = space.resolutions[-2:]
    table = random_table(space, res)
    lut = CompiledLut.from_table(table, space)
    assert isinstance(lut, BlockSumLut)
    rng = np.random.default_rng(1)
    # Every gene drawn uniformly, the stem's middle conv's d[0] taking every depth choice (kept only at the largest).
    genome = ResNetGenome(space, res)
    genes = genome.sample(3000, rng)
    genes[:, genome.d.start] = rng.choice(space.depth_choices, size=len(genes))
    batch = genome.to_batch(genes)
    subs = list(batch)
    fast = lut.components(batch)
    slow = lut.components_by_blocks(subs)
    assert set(fast) == set(slow)
    for part in fast:
        np.testing.assert_allclose(fast[part], slow[part], rtol=1e-12, atol=1e-12, err_msg=part)
    np.testing.assert_allclose(fast["raw_ms"], [sum(table[b.key] for b in space.blocks(s)) for s in subs[:300]
                                                ] + list(fast["raw_ms"][300:]), rtol=1e-12)
    np.testing.assert_allclose(lut.predict_batch([s.to_arch() for s in subs[:200]]), fast["raw_ms"][:200], rtol=1e-12)
    cal = Calibration(kind="per_stage", features=("fixed_ms", "stage1_ms", "stage2_ms", "stage3_ms", "stage4_ms",
                                                  "n_blocks"), coef=(1.1, 0.9, 1.0, 1.2, 0.8, 0.03), intercept_ms=0.4)
    expected = 0.4 + 1.1 * slow["fixed_ms"] + 0.9 * slow["stage1_ms"] + slow["stage2_ms"] + 1.2 * slow["stage3_ms"] \
        + 0.8 * slow["stage4_ms"] + 0.03 * slow["n_blocks"]
    np.testing.assert_allclose(lut.with_calibration(cal).predict_batch(batch), expected, rtol=1e-12)
    assert lut.with_calibration(cal).predict_batch(batch, calibrated=False) == pytest.approx(fast["raw_ms"])


def test_a_resolution_qualified_row_wins_at_its_resolution() -> None:
    space = get_space("ofa-resnet50-w0.25")
    table = random_table(space, (12, 16))
    sub = space.sample_archs(1, np.random.default_rng(2), [12])[0]
    key = space.blocks(sub)[-2].key  # the last bottleneck
    table[qualified_key(key, 12)] = table[key] + 100.0
    lut = CompiledLut.from_table(table, space)
    at_12 = ResNetBatch.from_subnets([sub])
    assert lut.predict_batch(at_12)[0] == pytest.approx(lut.components_by_blocks([sub])["raw_ms"][0])
    assert lut.predict_batch(at_12)[0] == pytest.approx(sum(table[b.key] for b in space.blocks(sub)) + 100.0)


def test_rows_the_tables_cannot_price_keep_the_per_subnet_messages() -> None:
    space = get_space("ofa-resnet50-w0.25")
    table = random_table(space, (12, 16))
    good = ResNetBatch.from_subnets(space.sample_archs(4, np.random.default_rng(3), [12, 16]))
    lut = CompiledLut.from_table(table, space)
    bad_e = ResNetBatch(good.d, good.e.copy(), good.w, good.r)
    bad_e.e[2, 0] = 0.3
    with pytest.raises(ValueError, match=r"subnet e\[0\] = 0.3 is not one of \[0.2, 0.25, 0.35\]"):
        lut.predict_batch(bad_e)
    bad_w = ResNetBatch(good.d, good.e, good.w.copy(), good.r)
    bad_w.w[1, 3] = 3
    with pytest.raises(ValueError, match=r"subnet w\[3\] = 3 is not one of \[0, 1, 2\]"):
        lut.predict_batch(bad_w)
    key = space.blocks(good[0])[0].key  # the first stem conv of the first subnet's resolution and width
    missing = {k: v for k, v in table.items() if k != key}
    with pytest.raises(MissingBlocksError, match=f"has no latency for 1 block\\(s\\): {key}"):
        CompiledLut.from_table(missing, space).predict_batch(good)
    with pytest.raises(ValueError, match=r"do not fit ofa-resnet50-w0.25 \(d: 5, e: 18, w: 6 per subnet\)"):
        lut.predict_batch(ResNetBatch(good.d[:, :4], good.e, good.w, good.r))
    assert lut.predict_batch([]).shape == (0,)


@pytest.mark.parametrize("name", ["ofa-mbv3-w0.25", "ofa-proxyless-w0.25", "ofa-resnet50-w0.25"])
def test_an_empty_resolution_list_is_one_clear_error(name: str) -> None:
    space = get_space(name)
    with pytest.raises(ValueError, match=r"^resolutions must be a non-empty list of ints in \[8, 1024\] "
                                         r"\(or None for the default\), got \[\]$"):
        CompiledLut.from_table(random_table(space, (12,)), space, resolutions=[])
