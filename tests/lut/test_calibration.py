"""Calibration: metrics, features, fitting by cross-validation, JSON, storage and use in predictions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lut import (
    FEATURES,
    Calibration,
    CalibrationError,
    CompiledLut,
    LutStore,
    block_features,
    fidelity_metrics,
    fit_calibration,
    subnet_features,
)
from space import SubnetBatch, read_net_config

from .conftest import NOTE10_NET


def test_fidelity_metrics_known_values() -> None:
    m = fidelity_metrics([11.0, 9.0, 10.4, 10.0], [10.0, 10.0, 10.0, 10.0])
    assert m["n"] == 4
    assert m["rmse_ms"] == pytest.approx(np.sqrt((1 + 1 + 0.16 + 0) / 4))
    assert m["mape"] == pytest.approx((10 + 10 + 4 + 0) / 4)
    assert m["rmspe"] == pytest.approx(100 * np.sqrt((0.01 + 0.01 + 0.0016) / 4))
    assert m["bias"] == pytest.approx(1.0) and m["bias_ms"] == pytest.approx(0.1)
    assert m["within_5pct"] == 50.0 and m["within_10pct"] == 100.0
    with pytest.raises(ValueError, match="measured_ms must be finite and > 0"):
        fidelity_metrics([1.0], [0.0])


def test_features_match_prediction(ref_store: LutStore) -> None:
    compiled = CompiledLut.from_store(ref_store, "note10", "ofa-mbv3-w1.2")
    batch = compiled.space.sample(300, np.random.default_rng(0), resolutions=compiled.resolutions)
    feats = subnet_features(compiled, batch)
    assert list(feats.columns) == list(FEATURES)
    np.testing.assert_allclose(feats.raw_ms, compiled.predict_batch(batch), rtol=1e-12)
    stage_sum = feats[[f"stage{k}_ms" for k in range(1, 6)]].sum(axis=1) + feats.fixed_ms
    np.testing.assert_allclose(stage_sum, feats.raw_ms, rtol=1e-12)
    np.testing.assert_array_equal(feats.n_blocks, batch.d.sum(axis=1) + 6)
    # A net.config's features price the same blocks.
    blocks = read_net_config(NOTE10_NET, 224)
    f = block_features(compiled, blocks)
    assert f["raw_ms"] == pytest.approx(compiled.predict_blocks(blocks))
    assert f["n_blocks"] == len(blocks)
    assert f["raw_ms"] == pytest.approx(f["fixed_ms"] + sum(f[f"stage{k}_ms"] for k in range(1, 6)))


def _synthetic(compiled, n: int, seed: int, noise: float):
    rng = np.random.default_rng(seed)
    batch = compiled.space.sample(n, rng, resolutions=compiled.resolutions)
    feats = subnet_features(compiled, batch)
    measured = 2.0 + 0.8 * feats.raw_ms.to_numpy() * (1 + rng.normal(0, noise, n))
    return batch, feats, measured


def test_fit_recovers_an_affine_truth_and_beats_raw(ref_store: LutStore) -> None:
    compiled = CompiledLut.from_store(ref_store, "note10", "ofa-mbv3-w1.2")
    _, feats, measured = _synthetic(compiled, 120, 0, 0.01)
    cal = fit_calibration(feats, measured, space="ofa-mbv3-w1.2")
    assert cal.kind in ("affine", "affine_blocks", "per_stage")
    assert set(cal.candidates) == {"identity", "scale", "affine", "affine_blocks", "per_stage"}
    assert cal.cv_metrics["rmspe"] < 2.0 < cal.candidates["identity"]["rmspe"]
    assert cal.raw_metrics["rmspe"] == pytest.approx(cal.candidates["identity"]["rmspe"])
    # Held-out subnets are predicted within noise.
    _, test_feats, test_measured = _synthetic(compiled, 200, 1, 0.01)
    held = fidelity_metrics(cal.predict(test_feats), test_measured)
    assert held["within_5pct"] >= 99.0
    exact = fit_calibration(feats, 2.0 + 0.8 * feats.raw_ms, models=["affine"])
    assert exact.intercept_ms == pytest.approx(2.0, abs=1e-6) and exact.coef == pytest.approx((0.8,), abs=1e-8)


def test_identity_wins_when_the_lut_is_right(ref_store: LutStore) -> None:
    compiled = CompiledLut.from_store(ref_store, "note10", "ofa-mbv3-w1.2")
    _, feats, _ = _synthetic(compiled, 60, 2, 0.0)
    cal = fit_calibration(feats, feats.raw_ms)
    assert cal.kind == "identity" and cal.coef == (1.0,) and cal.intercept_ms == 0.0


def test_json_round_trip_and_errors() -> None:
    cal = Calibration(kind="affine_blocks", features=("raw_ms", "n_blocks"), coef=(0.9, -0.01), intercept_ms=1.5,
                      space="ofa-mbv3-w1.0", n_samples=30, cv_metrics={"rmspe": 2.0})
    again = Calibration.from_json(cal.to_json())
    assert again == cal and again.cv_metrics == {"rmspe": 2.0}
    with pytest.raises(CalibrationError, match="format_version 7 is unknown"):
        Calibration.from_json('{"format_version": 7}')
    with pytest.raises(CalibrationError, match="features .*'gpu_ms'.* are unknown"):
        Calibration(kind="x", features=("gpu_ms",), coef=(1.0,))
    with pytest.raises(CalibrationError, match="at least 3 samples"):
        fit_calibration(pd.DataFrame({"raw_ms": [1.0, 2.0]}), [1.0, 2.0])
    with pytest.raises(CalibrationError, match="features lack columns"):
        fit_calibration(pd.DataFrame({"raw_ms": [1.0, 2.0, 3.0]}), [1.0, 2.0, 3.0])


def test_store_refit_and_calibrated_predictions(ref_store: LutStore) -> None:
    raw = CompiledLut.from_store(ref_store, "note10", "ofa-mbv3-w1.2")
    batch, feats, measured = _synthetic(raw, 80, 3, 0.005)
    sid = ref_store.setting("note10").id
    run_id = ref_store.save_validation_run(sid, pd.DataFrame({
        "arch": [batch[i].to_arch() for i in range(len(batch))],
        "predicted_ms": feats.raw_ms, "measured_ms": measured}))
    # Refit from the stored run.
    samples = ref_store.validation_samples(run_id)
    stored_batch = SubnetBatch.from_subnets([raw.space.validate(a) for a in samples.arch])
    cal = fit_calibration(subnet_features(raw, stored_batch), samples.measured_ms, models=["affine"],
                          space="ofa-mbv3-w1.2")
    ref_store.save_calibration(sid, cal)
    compiled = CompiledLut.from_store(ref_store, "note10", "ofa-mbv3-w1.2")
    assert compiled.calibration == cal
    np.testing.assert_allclose(compiled.predict_batch(batch), cal.predict(feats), rtol=1e-12)
    np.testing.assert_allclose(compiled.predict_batch(batch, calibrated=False), feats.raw_ms, rtol=1e-12)
    assert CompiledLut.from_store(ref_store, "note10", "ofa-mbv3-w1.2", calibrated=False).calibration is None
    # Calibrated ranges stay exact bounds.
    lo, hi = compiled.value_range([224])
    preds = compiled.predict_batch(compiled.space.sample(5000, np.random.default_rng(0), resolutions=[224]))
    assert lo <= preds.min() and preds.max() <= hi
    # A second fit replaces the first; another space's calibration is not applied.
    cal2 = fit_calibration(feats, measured, models=["per_stage"], space="ofa-mbv3-w1.2")
    ref_store.save_calibration(sid, cal2)
    assert CompiledLut.from_store(ref_store, "note10", "ofa-mbv3-w1.2").calibration == cal2
    assert Calibration.from_store(ref_store, sid, "ofa-mbv3-w1.0") is None
    # The store keeps documents, newest first; Calibration builds itself from them.
    assert [d["kind"] for d in ref_store.calibration_docs(sid)] == ["per_stage", "affine"]
    assert Calibration.from_store(ref_store, sid) == cal2
    assert ref_store.calibrations(sid).kind.tolist() == ["affine", "per_stage"]


def test_additive_form_reproduces_predictions(ref_store: LutStore) -> None:
    """fixed[r] + the active slots' entries equals predict_batch, calibrated or not."""
    compiled = CompiledLut.from_store(ref_store, "note10", "ofa-mbv3-w1.2")
    batch, feats, measured = _synthetic(compiled, 200, 5, 0.02)
    blocks = Calibration(kind="affine_blocks", features=("raw_ms", "n_blocks"), coef=(0.9, -0.01), intercept_ms=1.5,
                         space="ofa-mbv3-w1.2")
    per_stage = fit_calibration(feats, measured, models=["per_stage"], space="ofa-mbv3-w1.2")
    res = tuple(compiled.resolutions)
    ri = np.searchsorted(res, batch.r)
    active = np.repeat(batch.d, 4, axis=1) > np.tile(np.arange(4), 5)
    k_pos = np.searchsorted([3, 5, 7], batch.ks)
    e_pos = np.searchsorted([3, 4, 6], batch.e)
    for cal in (None, blocks, per_stage):
        table = compiled.with_calibration(cal)
        fixed, slot = table.additive_tables(res)
        assert slot.shape == (len(res), 20, 3, 3)
        terms = slot[ri[:, None], np.arange(20)[None, :], k_pos, e_pos]
        np.testing.assert_allclose(fixed[ri] + (terms * active).sum(axis=1), table.predict_batch(batch), rtol=1e-12)
