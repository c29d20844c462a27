"""Device comparison on LUTs with known answers, and its plot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lut import CompiledLut, LutStore, MissingBlocksError
from lut.compare import GROUPS, compare_luts, plot_comparison


def _scaled(table: dict, factor: float, name: str, space: str = "ofa-mbv3-w1.2") -> CompiledLut:
    return CompiledLut.from_table({k: v * factor for k, v in table.items()}, space, device=name)


def test_scaled_copy_has_ratio_two_and_perfect_ranks(note10_table: dict, tmp_path: Path) -> None:
    luts = {"a": _scaled(note10_table, 1.0, "a"), "b": _scaled(note10_table, 2.0, "b")}
    cmp = compare_luts(luts, n_subnets=2000)
    (pair,) = cmp.pairs
    assert (pair.a, pair.b) == ("a", "b")
    assert pair.n_shared_blocks == 450 and pair.n_ratio_blocks == 450
    assert pair.median_ratio == pytest.approx(2.0) and pair.subnet_median_ratio == pytest.approx(2.0)
    for frame in (pair.ratio_by_kind, pair.ratio_by_group):
        np.testing.assert_allclose(frame[["median", "geomean", "min", "max"]].to_numpy(), 2.0)
    assert list(pair.ratio_by_group.index) == list(GROUPS)
    assert list(pair.ratio_by_resolution.index) == [160, 176, 192, 208, 224]
    np.testing.assert_allclose(pair.ratio_by_resolution.to_numpy(), 2.0)
    assert pair.block_spearman == pytest.approx(1.0) and pair.block_kendall == pytest.approx(1.0)
    assert pair.subnet_spearman == pytest.approx(1.0) and pair.subnet_kendall == pytest.approx(1.0)
    assert cmp.resolutions == (160, 176, 192, 208, 224)
    # Shares do not change under scaling, and sum to one.
    assert dict(cmp.dominant["a"]) == pytest.approx(dict(cmp.dominant["b"]))
    assert sum(s for _, s in cmp.dominant["a"]) == pytest.approx(1.0)
    assert cmp.dominant_kinds["a"][0][0] == "mbconv"
    doc = cmp.to_dict()
    assert doc["pairs"][0]["ratio_by_kind"]["mbconv"]["median"] == pytest.approx(2.0)
    png = plot_comparison(cmp, tmp_path / "plots" / "cmp.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_reversed_block_order_is_seen(note10_table: dict) -> None:
    # Device c prices every block at (max + min - t): the block ranking is reversed.
    hi, lo = max(note10_table.values()), min(note10_table.values())
    flipped = CompiledLut.from_table({k: hi + lo - v for k, v in note10_table.items()}, "ofa-mbv3-w1.2")
    cmp = compare_luts({"a": _scaled(note10_table, 1.0, "a"), "c": flipped}, n_subnets=500, resolutions=[224])
    assert cmp.pairs[0].block_spearman == pytest.approx(-1.0)
    assert cmp.resolutions == (224,)


def test_real_devices_three_way(ref_store: LutStore, tmp_path: Path) -> None:
    luts = {d: CompiledLut.from_store(ref_store, d, "ofa-mbv3-w1.2", calibrated=False) for d in ("note10", "i7")}
    luts["i7x3"] = _scaled(ref_store.table("i7"), 3.0, "i7x3")
    cmp = compare_luts(luts, n_subnets=1000)
    assert len(cmp.pairs) == 3
    by_pair = {(p.a, p.b): p for p in cmp.pairs}
    assert by_pair[("i7", "i7x3")].subnet_kendall == pytest.approx(1.0)
    assert 0.5 < by_pair[("note10", "i7")].subnet_spearman < 1.0
    plot_comparison(cmp, tmp_path / "three.png")
    assert (tmp_path / "three.png").stat().st_size > 10_000


def test_compare_errors(note10_table: dict, i7_table: dict) -> None:
    a = _scaled(note10_table, 1.0, "a")
    with pytest.raises(ValueError, match="at least two devices"):
        compare_luts({"a": a})
    with pytest.raises(ValueError, match="one space"):
        compare_luts({"a": a, "b": _scaled(i7_table, 1.0, "b", "ofa-mbv3-w1.0")})
    with pytest.raises(MissingBlocksError, match=r"resolution\(s\) \[100\] not fully covered"):
        compare_luts({"a": a, "b": _scaled(i7_table, 1.0, "b")}, resolutions=[100])
