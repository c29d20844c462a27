"""Shared fixtures for the supernet tests: one torch thread, the OFA golden files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread(one_torch_thread):
    """Every supernet test runs with one torch thread (see tests/conftest.py)."""


@pytest.fixture(scope="session")
def golden_dir(shared_data: Path) -> Path:
    folder = shared_data / "ofa" / "golden"
    if not (folder / "ofa_mbv3_w1.0_golden.pt").is_file():
        pytest.skip(f"OFA golden files not found under {folder}")
    return folder


@pytest.fixture(scope="session")
def golden(golden_dir: Path) -> dict:
    return torch.load(golden_dir / "ofa_mbv3_w1.0_golden.pt", map_location="cpu", weights_only=True)
