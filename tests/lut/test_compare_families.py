"""compare on ProxylessNAS and ResNet50 LUTs: two synthetic settings per family, with known ratios."""

from __future__ import annotations

import numpy as np
import pytest

from lut import CompiledLut
from lut.compare import compare_luts, space_groups, space_kinds
from space import get_space
from space.counts import block_macs


def _lut(space_name: str, name: str, slow: str | None) -> CompiledLut:
    """A synthetic LUT priced from MACs; blocks of kind ``slow`` take three times as long."""
    space = get_space(space_name)
    table = {b.key: (3.0 if b.kind == slow else 1.0) * (2e-8 * block_macs(b) + 0.01)
             for b in space.unique_blocks([160, 192])}
    return CompiledLut.from_table(table, space, device=name)


@pytest.mark.parametrize("space_name, slow, groups", [
    ("ofa-proxyless-w1.3", "classifier",
     ("first_conv", "first_block", "stage1", "stage2", "stage3", "stage4", "stage5", "stage6", "final_expand",
      "classifier")),
    ("ofa-resnet50", "maxpool", ("stem", "stage1", "stage2", "stage3", "stage4", "classifier")),
])
def test_compare_two_settings_of_each_family(space_name, slow, groups):
    space = get_space(space_name)
    assert space_groups(space) == groups
    cmp = compare_luts({"a": _lut(space_name, "a", None), "b": _lut(space_name, "b", slow)}, n_subnets=300)
    (pair,) = cmp.pairs
    assert cmp.resolutions == (160, 192) and pair.n_shared_blocks == pair.n_ratio_blocks > 0
    assert list(pair.ratio_by_group.index) == list(groups)
    assert list(pair.ratio_by_kind.index) == [k for k in space_kinds(space) if k in pair.ratio_by_kind.index]
    assert pair.ratio_by_kind.loc[slow, "median"] == pytest.approx(3.0)
    others = pair.ratio_by_kind.drop(index=slow)
    np.testing.assert_allclose(others["median"].to_numpy(), 1.0)
    assert list(pair.ratio_by_resolution.columns) == list(groups)
    assert pair.subnet_spearman > 0.9 and pair.subnet_median_ratio > 1.0
    for device in ("a", "b"):
        assert sum(s for _, s in cmp.dominant[device]) == pytest.approx(1.0)
        assert sum(s for _, s in cmp.dominant_kinds[device]) == pytest.approx(1.0)
    assert dict(cmp.dominant_kinds["b"])[slow] > dict(cmp.dominant_kinds["a"])[slow]
    assert cmp.to_dict()["space"] == space_name
