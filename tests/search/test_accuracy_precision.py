"""Accuracy data measured at int8 (``supernet collect --precision int8`` writes a precision column): a predictor
trained on it records that its top-1 is int8 top-1, and keeps saying so after a save and a load."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from search import DataFormatError, LutnasPredictor, load_accuracy_data
from space import get_space

SPACE = "ofa-mbv3-w1.0"


def _write(path: Path, precision: str | None, n: int = 40, seed: int = 0) -> Path:
    space = get_space(SPACE)
    batch = space.sample(n, np.random.default_rng(seed), resolutions=[160])
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["arch", "accuracy", *(["precision"] if precision else [])])
        for i, sub in enumerate(batch.to_subnets()):
            arch = sub.to_arch()
            writer.writerow([json.dumps(arch), 60 + sum(arch["d"]) + 0.1 * i, *([precision] if precision else [])])
    return path


def test_int8_accuracy_is_recorded_through_save_and_load(tmp_path: Path) -> None:
    data = load_accuracy_data(_write(tmp_path / "int8.csv", "int8"))
    assert data.precision == "int8" and data.subset(np.arange(5)).precision == "int8"
    pred = LutnasPredictor(space=SPACE, random_state=0).fit_data(data)
    assert pred.accuracy_precision_ == "int8"
    path = pred.save(tmp_path / "pred.pt")
    assert LutnasPredictor.load(path).accuracy_precision_ == "int8"
    assert load_accuracy_data(_write(tmp_path / "plain.csv", None)).precision == "fp32"  # DyNAS-T style: fp32


def test_mixed_precisions_are_refused(tmp_path: Path) -> None:
    files = [_write(tmp_path / "a.csv", "fp32"), _write(tmp_path / "b.csv", "int8", seed=1)]
    with pytest.raises(DataFormatError, match="different precisions \\(fp32, int8\\)"):
        load_accuracy_data(files)
