"""Calibration on spaces of every family: the stage features follow the space (ProxylessNAS has six stages,
ResNet50 four), net.config-style block lists get the same features as their subnets, and a stored
five-stage calibration (as written before stage features were derived) still reads and prices."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from lut import Calibration, CalibrationError, CompiledLut, block_features, features_for, fit_calibration, subnet_features
from space import ResNetSpace, SubnetBatch, get_space

from .conftest import random_table

FAMILIES = ["ofa-proxyless-w1.3", "ofa-proxyless-w0.25", "ofa-resnet50", "ofa-resnet50-w0.25"]


def _lut(name: str) -> CompiledLut:
    space = get_space(name)
    res = space.resolutions[:2]
    return CompiledLut.from_table(random_table(space, res), space, resolutions=res)


def _population(compiled: CompiledLut, n: int, seed: int):
    space, rng = compiled.space, np.random.default_rng(seed)
    if isinstance(space, ResNetSpace):
        subs = space.sample_archs(n, rng, compiled.resolutions)
        return subs, subs
    batch = space.sample(n, rng, resolutions=compiled.resolutions)
    return batch, batch.to_subnets()


@pytest.mark.parametrize("name", FAMILIES)
def test_stage_features_follow_the_space(name: str) -> None:
    compiled = _lut(name)
    batch, subs = _population(compiled, 120, 1)
    feats = subnet_features(compiled, batch)
    n = compiled.space.n_stages
    assert tuple(feats.columns) == features_for(n)
    stages = feats[[f"stage{k}_ms" for k in range(1, n + 1)]]
    assert (stages.to_numpy() > 0).all()  # every stage runs blocks, the last one included
    np.testing.assert_allclose(stages.sum(axis=1) + feats.fixed_ms, feats.raw_ms, rtol=1e-12)
    # A truth that weighs the last stage twice is recovered only when that stage has its own feature.
    truth = 1.5 + feats.fixed_ms + stages.sum(axis=1) + stages[f"stage{n}_ms"]
    cal = fit_calibration(feats, truth, models=["per_stage"], space=name)
    assert cal.features == ("fixed_ms", *stages.columns, "n_blocks")
    assert dict(zip(cal.features, cal.coef))[f"stage{n}_ms"] == pytest.approx(2.0, rel=1e-6)
    assert cal.cv_metrics["max_abs_pct"] < 1e-6
    # The compiled LUT applies it as the features do, and it survives the store's JSON.
    again = Calibration.from_json(cal.to_json())
    np.testing.assert_allclose(compiled.with_calibration(again).predict_batch(batch), truth, rtol=1e-9)


@pytest.mark.parametrize("name", FAMILIES)
def test_block_lists_get_their_subnets_features(name: str) -> None:
    """A net.config's blocks are split into stages as its subnet's are (ProxylessNAS w0.25 has two stages of
    the same width, so stages are told apart by where a block without identity skip starts one)."""
    compiled = _lut(name)
    _, subs = _population(compiled, 25, 2)
    feats = subnet_features(compiled, _population(compiled, 25, 2)[0])
    for i, sub in enumerate(subs):
        got = block_features(compiled, compiled.space.blocks(sub))
        assert set(got) == set(feats.columns)
        for col in feats.columns:
            assert got[col] == pytest.approx(feats[col].iloc[i], rel=1e-12), col


def test_a_block_list_with_more_stages_than_the_space_is_refused() -> None:
    compiled = _lut("ofa-resnet50-w0.25")
    sub = compiled.space.sample_archs(1, np.random.default_rng(3), compiled.resolutions)[0]
    blocks = compiled.space.blocks(sub)
    extra = [b for b in blocks if b.kind == "bottleneck"][0]  # a stage's first block once more, after the last
    with pytest.raises(CalibrationError, match="does not fit ofa-resnet50-w0.25 \\(4 stages\\)"):
        block_features(compiled, [*blocks[:-1], extra, blocks[-1]])


def test_a_stored_five_stage_calibration_still_reads_and_prices(ref_store) -> None:
    """A MobileNetV3 per_stage document as stores hold it (feature names listed, stage1_ms .. stage5_ms)."""
    doc = {"format_version": 1, "kind": "per_stage", "space": "ofa-mbv3-w1.2", "n_samples": 40,
           "features": ["fixed_ms", "stage1_ms", "stage2_ms", "stage3_ms", "stage4_ms", "stage5_ms", "n_blocks"],
           "coef": [1.1, 0.9, 0.95, 1.0, 1.05, 0.8, 0.02], "intercept_ms": 0.7,
           "cv_metrics": {"rmspe": 2.0}, "candidates": {}, "raw_metrics": {}}
    sid = ref_store.setting("note10").id
    ref_store.save_calibration(sid, Calibration.from_json(json.dumps(doc)))
    compiled = CompiledLut.from_store(ref_store, "note10", "ofa-mbv3-w1.2")
    assert compiled.calibration.features == tuple(doc["features"])
    batch = compiled.space.sample(50, np.random.default_rng(4), resolutions=compiled.resolutions)
    feats = subnet_features(compiled, batch)
    expected = 0.7 + sum(c * feats[f] for f, c in zip(doc["features"], doc["coef"]))
    np.testing.assert_allclose(compiled.predict_batch(batch), expected, rtol=1e-12)


def test_a_calibration_weighing_more_stages_than_the_space_is_refused() -> None:
    six = _lut("ofa-proxyless-w0.25")
    batch, _ = _population(six, 40, 5)
    feats = subnet_features(six, batch)
    cal = fit_calibration(feats, 1.0 + feats.raw_ms, models=["per_stage"])
    for name in ("ofa-mbv3-w0.25", "ofa-resnet50-w0.25"):
        other = _lut(name)
        batch_other, _ = _population(other, 3, 6)
        with pytest.raises(CalibrationError, match=f"weighs 6 stages but {name} has [45]"):
            other.with_calibration(cal).predict_batch(batch_other)


def test_unknown_feature_names_are_refused() -> None:
    with pytest.raises(CalibrationError, match=r"features \['stage0_ms'\] are unknown; valid: raw_ms, fixed_ms, stageK_ms"):
        Calibration(kind="x", features=("stage0_ms",), coef=(1.0,))
    assert Calibration(kind="x", features=("stage12_ms",), coef=(1.0,)).n_stages == 12
    with pytest.raises(ValueError, match="n_stages must be an int >= 1, got 0"):
        features_for(0)
    # fit_calibration reads the stage count off the columns it is given.
    rng = np.random.default_rng(7)
    cols = pd.DataFrame({name: rng.uniform(1.0, 2.0, 40) for name in features_for(3)})
    cal = fit_calibration(cols, cols.sum(axis=1), models=["per_stage"])
    assert cal.features == ("fixed_ms", "stage1_ms", "stage2_ms", "stage3_ms", "n_blocks")
    with pytest.raises(CalibrationError, match="8 samples are too few to fit and cross-validate"):
        fit_calibration(cols[:8], cols.sum(axis=1)[:8], models=["per_stage"])
