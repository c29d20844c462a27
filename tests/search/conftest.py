"""Shared fixtures: the Note10 LUT, OFA's predictor, a synthetic latency table, DyNAS-T data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SHARED_DATA

DATA = SHARED_DATA if SHARED_DATA is not None else Path("shared-data-not-found")
NOTE10 = sorted((DATA / "ofa" / "note10").glob("*_lookup_table.yaml"))
OFA_WEIGHTS = DATA / "ofa" / "acc_predictor.pth"
DYNAST = DATA / "dynast"


class SyntheticLatencyTable:
    """A tiny additive latency table: per (resolution, slot, kernel, expand) weights plus a fixed part."""

    def __init__(self, space_name: str, resolutions: tuple[int, ...], seed: int = 0, scale: float = 1.0) -> None:
        from space import get_space

        self.space = get_space(space_name)
        self.resolutions = tuple(resolutions)
        rng = np.random.default_rng(seed)
        r_factor = (np.asarray(resolutions, dtype=float) / 224.0) ** 2
        ks = np.asarray(self.space.ks_choices, dtype=float) / 3.0
        e = np.asarray(self.space.expand_choices, dtype=float) / 3.0
        base = rng.uniform(0.2, 1.0, (self.space.n_slots, 1, 1))
        self.slot = scale * r_factor[:, None, None, None] * base[None] * (0.5 * ks[:, None] + e[None, :])[None, None]
        self.fixed = scale * 2.0 * r_factor
        self.calls = 0

    def predict_batch(self, batch) -> np.ndarray:
        self.calls += 1
        ri = np.searchsorted(self.resolutions, batch.r)
        k = np.searchsorted(self.space.ks_choices, batch.ks)
        e = np.searchsorted(self.space.expand_choices, batch.e)
        active = (np.arange(4)[None, None, :] < batch.d[:, :, None]).reshape(len(batch.r), -1)
        vals = self.slot[ri[:, None], np.arange(self.space.n_slots)[None, :], k, e]
        return self.fixed[ri] + (vals * active).sum(axis=1)

    def value_range(self, resolutions=None) -> tuple[float, float]:
        res = self.resolutions if resolutions is None else tuple(resolutions)
        lows, highs = [], []
        for r in res:
            i = self.resolutions.index(r)
            per = self.slot[i].reshape(5, 4, -1)
            lo = np.cumsum(per.min(axis=2), axis=1)[:, [1, 2, 3]].min(axis=1).sum()
            hi = np.cumsum(per.max(axis=2), axis=1)[:, [1, 2, 3]].max(axis=1).sum()
            lows.append(self.fixed[i] + lo)
            highs.append(self.fixed[i] + hi)
        return float(min(lows)), float(max(highs))


class SyntheticAccuracy:
    """Accuracy rising with kernel, expand, depth and resolution (a stand-in predictor)."""

    def __init__(self, space_name: str = "ofa-mbv3-w1.2", resolutions: tuple[int, ...] | None = None) -> None:
        self.space_name = space_name
        self.resolutions = resolutions
        self.calls = 0

    def predict_batch(self, batch) -> np.ndarray:
        self.calls += 1
        active = (np.arange(4)[None, None, :] < batch.d[:, :, None]).reshape(len(batch.r), -1)
        return 60 + 0.1 * (batch.ks * active).sum(1) + 0.2 * (batch.e * active).sum(1) + 0.05 * batch.r


@pytest.fixture(scope="session")
def note10_lut():
    from lut import CompiledLut, read_ofa_yaml

    if not NOTE10:
        pytest.skip("Note10 LUT files not available")
    table = {key: stats["median_ms"] for key, stats, _ in read_ofa_yaml(NOTE10)}
    return CompiledLut.from_table(table, "ofa-mbv3-w1.2", device="note10")


@pytest.fixture(scope="session")
def ofa_predictor():
    from search import load_ofa_predictor

    if not OFA_WEIGHTS.is_file():
        pytest.skip("OFA predictor weights not available")
    return load_ofa_predictor(OFA_WEIGHTS)


@pytest.fixture(scope="session")
def evo_data():
    from search import load_accuracy_data

    return load_accuracy_data(sorted(DYNAST.glob("*evo*.csv")))


@pytest.fixture(scope="session")
def linas_data():
    from search import load_accuracy_data

    return load_accuracy_data(sorted(DYNAST.glob("*linas*.csv")))


@pytest.fixture()
def synthetic_table():
    return SyntheticLatencyTable("ofa-mbv3-w1.2", (160, 192, 224), seed=0)
