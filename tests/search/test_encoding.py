"""Encodings: OFA's 128-float layout (checked against a plain re-implementation) and lutnas's."""

from __future__ import annotations

import numpy as np
import pytest

from search import LutnasEncoding, OFAEncoding, get_encoding
from space import SubnetBatch, get_space


def _ofa_reference(arch: dict) -> list[float]:
    """OFA's spec-to-features, written out slot by slot."""
    ks, ex = list(arch["ks"]), list(arch["e"])
    for stage, depth in enumerate(arch["d"]):
        for j in range(depth, 4):
            ks[stage * 4 + j] = 0
            ex[stage * 4 + j] = 0
    ks_hot, ex_hot, r_hot = [0.0] * 60, [0.0] * 60, [0.0] * 8
    for i in range(20):
        if ks[i]:
            ks_hot[i * 3 + {3: 0, 5: 1, 7: 2}[ks[i]]] = 1.0
        if ex[i]:
            ex_hot[i * 3 + {3: 0, 4: 1, 6: 2}[ex[i]]] = 1.0
    r_hot[(arch["r"] - 112) // 16] = 1.0
    return ks_hot + ex_hot + r_hot


def test_ofa_encoding_matches_reference():
    sp = get_space("ofa-mbv3-w1.2")
    batch = sp.sample(64, np.random.default_rng(1))
    enc = OFAEncoding(sp)(batch)
    assert enc.shape == (64, 128) and enc.dtype == np.float32
    for i in range(64):
        np.testing.assert_array_equal(enc[i], _ofa_reference(batch[i].to_arch()))


def test_ofa_encoding_ignores_inactive_slots():
    sp = get_space("ofa-mbv3-w1.0")
    a = sp.sample(1, np.random.default_rng(2))
    d = np.full((1, 5), 2)
    b1 = SubnetBatch(a.ks, a.e, d, a.r)
    ks2 = a.ks.copy()
    ks2[0, 3] = 7 if ks2[0, 3] != 7 else 3  # slot 3 is inactive at depth 2
    b2 = SubnetBatch(ks2, a.e, d, a.r)
    np.testing.assert_array_equal(OFAEncoding(sp)(b1), OFAEncoding(sp)(b2))
    assert OFAEncoding(sp)(b1)[0, :120].sum() == 20  # 10 active slots x (kernel + expand)


def test_encodings_reject_bad_values():
    sp = get_space("ofa-mbv3-w1.2")
    b = sp.sample(2, np.random.default_rng(0))
    bad_k = SubnetBatch(np.where(np.arange(20) == 0, 4, b.ks), b.e, b.d, b.r)
    with pytest.raises(ValueError, match="kernel values \\[4\\]"):
        OFAEncoding(sp)(bad_k)
    with pytest.raises(ValueError, match="unknown encoding 'nope'; known: lutnas, ofa"):
        get_encoding("nope", sp)


def test_small_resolutions_encode_and_ofa_predictor_refuses_them(shared_data):
    from search import load_predictor
    from search.encoding import LutnasEncoding

    sp = get_space("ofa-mbv3-w1.0")
    b = sp.sample(4, np.random.default_rng(0), resolutions=[12, 16])
    x = LutnasEncoding(sp)(b)  # small-data supernets train at 12-48 px
    assert np.isfinite(x).all()
    same_arch = SubnetBatch(b.ks[:1].repeat(2, 0), b.e[:1].repeat(2, 0), b.d[:1].repeat(2, 0), np.array([12, 16]))
    y = LutnasEncoding(sp)(same_arch)
    assert not np.array_equal(y[0], y[1])  # r/224 and MACs tell the resolutions apart
    ofa = load_predictor(shared_data / "ofa" / "acc_predictor.pth")
    big = get_space("ofa-mbv3-w1.2").sample(2, np.random.default_rng(0))
    with pytest.raises(ValueError, match="outside OFA's predictor range"):
        ofa.predict_batch(SubnetBatch(big.ks, big.e, big.d, np.array([96, 224])))




def test_lutnas_encoding_contents():
    sp = get_space("ofa-mbv3-w1.0")
    batch = sp.sample(16, np.random.default_rng(3))
    enc = LutnasEncoding(sp)(batch)
    assert enc.shape == (16, LutnasEncoding(sp).width) == (16, 151) and np.isfinite(enc).all()
    np.testing.assert_array_equal(enc[:, :120], OFAEncoding(sp)(batch)[:, :120])
    depth_hot = enc[:, 120:135].reshape(16, 5, 3)
    np.testing.assert_array_equal(depth_hot.argmax(axis=2), batch.d - 2)
    np.testing.assert_allclose(enc[:, -1], batch.r / 224.0, rtol=1e-6)
