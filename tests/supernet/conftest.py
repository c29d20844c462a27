"""Shared fixtures for the supernet tests: one torch thread, the OFA golden files and their weights recipe, a tiny
ImageFolder of real digits."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
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


def recipe_weights(shapes: dict[str, list[int]], seed: int = 0) -> dict[str, torch.Tensor]:
    """Weights by the golden files' recipe (shared/data/README.md, "Golden weights recipe"), key by key in order.

    With seed 0 and a golden ``shapes.json`` this regenerates the weights OFA's logits were computed with; any other
    state_dict shapes get weights of the same kind (BN statistics included), so slicing mistakes show.
    """
    gen = torch.Generator().manual_seed(seed)
    weights: dict[str, torch.Tensor] = {}
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            weights[key] = torch.tensor(0, dtype=torch.int64)
        elif key.endswith("running_var"):
            weights[key] = torch.rand(shape, generator=gen) * 0.5 + 0.75
        elif key.endswith("running_mean"):
            weights[key] = torch.randn(shape, generator=gen) * 0.1
        else:
            scale = 0.5 / math.sqrt(math.prod(shape[1:])) if len(shape) >= 2 else 0.1
            shift = 1.0 if key.endswith("bn.weight") else 0.0
            weights[key] = torch.randn(shape, generator=gen) * scale + shift
    return weights


@dataclass(frozen=True)
class FamilyGolden:
    """One golden pair of files: the supernet's key shapes (OFA's order), its regenerated weights, the cases."""

    shapes: dict[str, list[int]]
    weights: dict[str, torch.Tensor]
    cases: list[dict]


@pytest.fixture(scope="session")
def family_golden(golden_dir: Path):
    """Loader of ``<name>_shapes.json`` and ``<name>_cases.pt`` (ofa_proxyless_w1.3, ofa_resnet50), cached."""
    loaded: dict[str, FamilyGolden] = {}

    def load(name: str) -> FamilyGolden:
        if name not in loaded:
            shapes_path, cases_path = golden_dir / f"{name}_shapes.json", golden_dir / f"{name}_cases.pt"
            if not (shapes_path.is_file() and cases_path.is_file()):
                pytest.skip(f"golden files for {name} not found under {golden_dir}")
            shapes = json.loads(shapes_path.read_text())
            cases = torch.load(cases_path, map_location="cpu", weights_only=True)["cases"]
            loaded[name] = FamilyGolden(shapes, recipe_weights(shapes), cases)
        return loaded[name]

    return load


def write_digits_folder(root: Path, per_class: int) -> Path:
    """An ImageFolder under ``root``: the first ``per_class`` of scikit-learn's 8x8 digits 0, 1 and 7 as PNGs."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    for label in (0, 1, 7):
        (root / f"class{label}").mkdir()
        for i, idx in enumerate(np.flatnonzero(digits.target == label)[:per_class]):
            pixels = (digits.images[idx] * 255 / 16).astype(np.uint8)
            Image.fromarray(pixels, mode="L").save(root / f"class{label}" / f"{i}.png")
    return root
