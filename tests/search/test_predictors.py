"""OFA weight loading, lutnas's predictor: fit, quality, save/load, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from search import (
    LutnasPredictor,
    NotFittedError,
    OFAAccuracyPredictor,
    OFAEncoding,
    PredictorFormatError,
    SpaceMismatchError,
    load_predictor,
    prediction_metrics,
)
from space import get_space

from .conftest import OFA_WEIGHTS


def test_ofa_weights_load_and_match_torch_module(ofa_predictor):
    sp = get_space("ofa-mbv3-w1.2")
    batch = sp.sample(32, np.random.default_rng(0), resolutions=(160, 176, 192, 208, 224))
    acc = ofa_predictor.predict_batch(batch)
    with torch.no_grad():
        ref = ofa_predictor.module()(torch.from_numpy(OFAEncoding(sp)(batch)))[:, 0].numpy() * 100
    np.testing.assert_allclose(acc, ref, rtol=1e-5)
    assert 70 < acc.min() and acc.max() < 85  # ImageNet top-1 of OFA w1.2 subnets, in percent
    assert ofa_predictor.space_name == "ofa-mbv3-w1.2" and 224 in ofa_predictor.resolutions
    assert list(ofa_predictor.module().state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight",
                                                         "4.bias", "6.weight", "6.bias"]


def test_load_predictor_detects_formats(tmp_path, ofa_predictor):
    assert isinstance(load_predictor(OFA_WEIGHTS), OFAAccuracyPredictor)
    with pytest.raises(SpaceMismatchError):
        load_predictor(OFA_WEIGHTS, space="ofa-mbv3-w1.0")
    junk = tmp_path / "junk.pt"
    torch.save({"a": torch.zeros(1)}, junk)
    with pytest.raises(PredictorFormatError, match="neither"):
        load_predictor(junk)
    text = tmp_path / "text.pt"
    text.write_text("hello")
    with pytest.raises(PredictorFormatError):
        load_predictor(text)
    with pytest.raises(FileNotFoundError):
        load_predictor(tmp_path / "missing.pt")


def test_estimator_conventions():
    p = LutnasPredictor(space="ofa-mbv3-w1.0", length_scales=(1.0, 2.0), random_state=3)
    assert p.get_params()["length_scales"] == (1.0, 2.0) and p.random_state == 3
    with pytest.raises(NotFittedError):
        p.predict([])
    with pytest.raises(ValueError, match="invalid parameter 'bogus'"):
        p.set_params(bogus=1)
    with pytest.raises(ValueError, match="'noise' should be > 0"):
        LutnasPredictor(noise=0).fit(get_space("ofa-mbv3-w1.2").sample(4, np.random.default_rng(0)), np.arange(4.0))


def test_quality_and_save_load_round_trip(tmp_path, evo_data, linas_data):
    pred = LutnasPredictor(space="ofa-mbv3-w1.0", random_state=0).fit_data(evo_data)
    metrics = prediction_metrics(pred.predict(linas_data.to_batch()), linas_data.accuracy_pct)
    assert metrics["kendall"] > 0.92 and metrics["n"] == 826
    path = pred.save(tmp_path / "sub" / "pred.pt")
    again = LutnasPredictor.load(path, space="ofa-mbv3-w1.0")
    np.testing.assert_array_equal(again.predict(linas_data.to_batch()), pred.predict(linas_data.to_batch()))
    assert again.get_params() == pred.get_params()
    meta = again.metadata()
    assert meta["space"] == "ofa-mbv3-w1.0" and meta["resolutions"] == [224]
    assert meta["data_fingerprint"] == evo_data.fingerprint and meta["train_metrics"]["n"] == 1336
    with pytest.raises(SpaceMismatchError, match="trained for space 'ofa-mbv3-w1.0'"):
        LutnasPredictor.load(path, space="ofa-mbv3-w1.2")
    assert isinstance(load_predictor(path), LutnasPredictor)
    blob = torch.load(path, weights_only=True)
    blob["format_version"] = 99
    torch.save(blob, tmp_path / "v99.pt")
    with pytest.raises(PredictorFormatError, match="format_version 99"):
        LutnasPredictor.load(tmp_path / "v99.pt")


def test_fit_accepts_arch_dicts(evo_data):
    archs = evo_data.archs()[:50]
    pred = LutnasPredictor(space="ofa-mbv3-w1.0", max_train_samples=40, random_state=0)
    pred.fit(archs, evo_data.accuracy_pct[:50])
    assert pred.n_train_ == 40 and pred.predict(archs[:3]).shape == (3,)
    r2 = pred.score(archs, evo_data.accuracy_pct[:50])
    assert -1.0 < r2 <= 1.0
