"""Shared test fixtures: where the reference data lives."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def _find_shared_data() -> Path | None:
    env = os.environ.get("LUTNAS_SHARED_DATA")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    fallback = Path("/work/shared/data")
    return fallback if fallback.is_dir() else None


SHARED_DATA = _find_shared_data()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The reference data folder (OFA LUTs, predictor, DyNAS-T, ...); skips when absent."""
    if SHARED_DATA is None:
        pytest.skip("reference data folder (shared/data) not found; set LUTNAS_SHARED_DATA")
    return SHARED_DATA


@pytest.fixture()
def one_torch_thread():
    """torch limited to one thread for the test: several test processes share the host, and one
    thread each avoids OpenMP oversubscription."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
