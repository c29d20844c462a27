"""Vectorized prediction against a slow reference sum, coverage, ranges and errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from lut import CompiledLut, LutStore, MissingBlocksError, predict, qualified_key
from space import SubnetBatch, get_space


def _reference(table: dict, space, batch: SubnetBatch) -> np.ndarray:
    """Each subnet's block sum, a block's value timed for the subnet's resolution first (lut.keys)."""
    def ms(key: str, r: int) -> float:
        return table.get(qualified_key(key, r), table[key])

    return np.array([sum(ms(b.key, int(batch.r[i])) for b in space.blocks(batch[i])) for i in range(len(batch))])


@pytest.mark.parametrize("device, space_name", [("note10", "ofa-mbv3-w1.2"), ("i7", "ofa-mbv3-w1.0"),
                                                ("i7", "ofa-mbv3-w1.2")])
def test_batch_matches_reference_on_1000_subnets(ref_store: LutStore, device: str, space_name: str) -> None:
    compiled = CompiledLut.from_store(ref_store, device, space_name)
    space = get_space(space_name)
    batch = space.sample(1000, np.random.default_rng(7), resolutions=compiled.resolutions)
    expected = _reference(compiled.table, space, batch)
    np.testing.assert_allclose(compiled.predict_batch(batch), expected, rtol=1e-12)
    # The one-at-a-time and convenience paths agree.
    assert compiled.predict(batch[3].to_arch()) == pytest.approx(expected[3], rel=1e-12)
    np.testing.assert_allclose(predict(ref_store, device, batch.take(np.arange(10)), space_name), expected[:10])
    np.testing.assert_allclose(predict(compiled, None, [batch[i] for i in range(5)], space_name), expected[:5])


def test_chunking_gives_the_same_answer(ref_store: LutStore) -> None:
    compiled = CompiledLut.from_store(ref_store, "i7", "ofa-mbv3-w1.0")
    batch = compiled.space.sample(20_000, np.random.default_rng(0), resolutions=compiled.resolutions)
    whole = compiled.predict_batch(batch)
    parts = np.concatenate([compiled.predict_batch(batch.take(np.arange(i, min(i + 999, 20_000))))
                            for i in range(0, 20_000, 999)])
    np.testing.assert_array_equal(whole, parts)


def test_inactive_slots_are_ignored(ref_store: LutStore) -> None:
    compiled = CompiledLut.from_store(ref_store, "note10", "ofa-mbv3-w1.2")
    arch = {"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 224}
    other = {**arch, "ks": [3, 3, 7, 7] * 5, "e": [3, 3, 6, 6] * 5, "wid": None, "r": [224]}
    assert compiled.predict(arch) == compiled.predict(other)


def test_missing_blocks_are_named(note10_table: dict) -> None:
    table = dict(note10_table)
    space = get_space("ofa-mbv3-w1.2")
    victim = space.slot_block(2, 1, space.stage_input_sides(224)[2] // 2, 5, 6).key
    assert victim in table
    del table[victim]
    compiled = CompiledLut.from_table(table, space, device="n10")
    assert 224 not in compiled.resolutions and 208 in compiled.resolutions
    assert compiled.missing_keys(224) == [victim]
    ok = {"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 224}
    expected = compiled.predict(ok)  # does not touch the missing block
    # The missing block sits in an inactive slot (stage 3, slot 4 with depth 2): ignored.
    inactive = {**ok, "ks": [3] * 11 + [5] + [3] * 8, "e": [3] * 11 + [6] + [3] * 8}
    assert compiled.predict(inactive) == expected
    batch = SubnetBatch.from_subnets([compiled.space.validate(a) for a in (ok, inactive, ok)])
    np.testing.assert_array_equal(compiled.predict_batch(batch), [expected] * 3)
    bad = {**ok, "ks": [5] * 20, "e": [6] * 20, "d": [3] * 5}
    with pytest.raises(MissingBlocksError, match=rf"LUT 'n10' \(ofa-mbv3-w1.2\) lacks blocks for 1 of 1 .*{victim}"):
        compiled.predict(bad)
    with pytest.raises(MissingBlocksError, match=r"no blocks at resolution\(s\) \[228\]; fully covered: 160..208 step 16"):
        compiled.predict({**ok, "r": 228})
    with pytest.raises(MissingBlocksError, match="does not cover resolution 224"):
        compiled.value_range([224])


def test_bad_genes_are_value_errors(ref_store: LutStore) -> None:
    compiled = CompiledLut.from_store(ref_store, "note10", "ofa-mbv3-w1.2")
    good = compiled.space.sample(4, np.random.default_rng(0), resolutions=[224])
    for name, value, message in (("ks", 4, r"ks values \[4\] are not in \[3, 5, 7\]"),
                                 ("e", 5, r"e values \[5\] are not in \[3, 4, 6\]"),
                                 ("d", 1, r"d values \[1\] are not in \[2, 3, 4\]"),
                                 ("r", 5000, r"r values \[5000\] are out of range")):
        arrays = {f: getattr(good, f).copy() for f in ("ks", "e", "d", "r")}
        arrays[name][-1] = value
        with pytest.raises(ValueError, match=message):
            compiled.predict_batch(SubnetBatch(**arrays))
    # A bad value in a slot beyond the depth is still bad (SearchSpace.validate agrees).
    arrays = {f: getattr(good, f).copy() for f in ("ks", "e", "d", "r")}
    arrays["d"][0, 0], arrays["ks"][0, 3] = 2, 4
    with pytest.raises(ValueError, match=r"ks values \[4\] are not in \[3, 5, 7\]"):
        compiled.predict_batch(SubnetBatch(**arrays))
    with pytest.raises(ValueError, match=r"ks\[3\] = 4 is not one of"):
        compiled.space.validate(SubnetBatch(**arrays)[0])


def test_empty_batch(ref_store: LutStore) -> None:
    compiled = CompiledLut.from_store(ref_store, "note10", "ofa-mbv3-w1.2")
    empty = compiled.space.sample(0, np.random.default_rng(0), resolutions=[224])
    assert compiled.predict_batch(empty).shape == (0,)


def _brute_range(compiled: CompiledLut, r: int) -> tuple[float, float]:
    """Exact extremes by enumerating every depth combination (slots are independent given depths)."""
    space = compiled.space
    grid_ks = list(itertools.product(space.ks_choices, space.expand_choices))
    lows, highs = [], []
    base = {"r": r}
    table = compiled.table
    sides = space.stage_input_sides(r)
    per_slot_lo, per_slot_hi = [], []
    for stage, in_side in enumerate(sides):
        for j in range(space.max_depth):
            side = in_side if j == 0 else (in_side - 1) // space.stage_strides[stage] + 1
            vals = [table[space.slot_block(stage, j, side, k, e).key] for k, e in grid_ks]
            per_slot_lo.append(grid_ks[int(np.argmin(vals))])
            per_slot_hi.append(grid_ks[int(np.argmax(vals))])
    for depths in itertools.product(space.depth_choices, repeat=space.n_stages):
        for choice, out in ((per_slot_lo, lows), (per_slot_hi, highs)):
            arch = {"ks": [c[0] for c in choice], "e": [c[1] for c in choice], "d": list(depths), **base}
            out.append(compiled.predict(arch))
    return min(lows), max(highs)


@pytest.mark.parametrize("device, space_name, r", [("note10", "ofa-mbv3-w1.2", 192), ("i7", "ofa-mbv3-w1.0", 100)])
def test_value_range_is_exact(ref_store: LutStore, device: str, space_name: str, r: int) -> None:
    compiled = CompiledLut.from_store(ref_store, device, space_name)
    lo, hi = compiled.value_range([r])
    assert (lo, hi) == pytest.approx(_brute_range(compiled, r), rel=1e-12)
    sample = compiled.predict_batch(compiled.space.sample(5000, np.random.default_rng(0), resolutions=[r]))
    assert lo <= sample.min() and sample.max() <= hi
    all_lo, all_hi = compiled.value_range()
    assert all_lo <= lo and all_hi >= hi
