"""Few-shot planning on the other families: block usage is exact for a ResNet space (against random subnets'
block counts), and strata file blocks under their stage by the space's slots (ProxylessNAS w0.25 has two stages
of one width)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from lut.transfer import block_strata, block_usage, plan_few_shot, transfer_table
from space import get_space


def test_resnet_block_usage_is_the_mean_count_over_random_subnets() -> None:
    space = get_space("ofa-resnet50-w0.25")
    usage = block_usage(space, [12, 16])
    assert list(usage.index) == [b.key for b in space.unique_blocks([12, 16])]
    subs = space.sample_archs(20_000, np.random.default_rng(0), [12, 16])
    counts = Counter(b.key for s in subs for b in space.blocks(s))
    sampled = np.array([counts[k] / len(subs) for k in usage.index])
    assert usage.sum() == pytest.approx(np.mean([len(space.blocks(s)) for s in subs]), rel=0.01)
    np.testing.assert_allclose(usage.to_numpy(), sampled, atol=0.02)


@pytest.mark.parametrize("name, per_stage", [
    ("ofa-proxyless-w0.25", {-1: 4, 0: 18, 1: 18, 2: 18, 3: 9, 4: 18, 5: 9}),
    ("ofa-resnet50-w0.25", {-1: 7, 0: 10, 1: 32, 2: 36, 3: 36}),
])
def test_strata_follow_the_spaces_slots(name: str, per_stage: dict[int, int]) -> None:
    strata = block_strata(name, [12])
    assert strata["stage"].value_counts().to_dict() == per_stage


@pytest.mark.parametrize("name", ["ofa-proxyless-w0.25", "ofa-resnet50-w0.25"])
def test_plan_and_transfer_work_on_the_family(name: str) -> None:
    space = get_space(name)
    blocks = space.unique_blocks([12])
    rng = np.random.default_rng(1)
    base = {b.key: float(rng.uniform(0.02, 1.0)) for b in blocks}
    sources = {"a": base, "b": {k: 2 * v * rng.uniform(0.9, 1.1) for k, v in base.items()}}
    keys = plan_few_shot(sources, space, [12], 10)
    assert len(set(keys)) == 10 and block_strata(space, [12]).loc[keys, "stage"].nunique() >= 4
    result = transfer_table(sources, {k: 1.5 * base[k] for k in keys}, space, [12])
    assert set(result.predicted_ms) == {b.key for b in blocks} - set(keys)
    predicted = np.array([result.predicted_ms[k] for k in result.predicted_ms])
    np.testing.assert_allclose(predicted, [1.5 * base[k] for k in result.predicted_ms], rtol=0.2)
