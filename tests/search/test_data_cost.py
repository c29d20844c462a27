"""Reading accuracy data and counting MACs and parameters."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from search import (
    DataFormatError,
    infer_space,
    load_accuracy_data,
    macs_table,
    params_table,
)
from space import SubnetBatch

from .conftest import DYNAST


def test_dynast_files_merge_duplicates(evo_data, linas_data):
    assert len(evo_data) == 1336 and len(linas_data) == 826
    assert evo_data.resolutions == (224,)
    assert 70 < evo_data.accuracy_pct.min() < evo_data.accuracy_pct.max() < 80
    assert len(evo_data.fingerprint) == 16 and evo_data.fingerprint != linas_data.fingerprint


def test_plain_csv_and_bad_header(tmp_path, evo_data):
    archs = evo_data.archs()[:5]
    path = tmp_path / "plain.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["arch", "accuracy"])
        for a, acc in zip(archs, evo_data.accuracy_pct[:5]):
            w.writerow([json.dumps(a), acc])
    data = load_accuracy_data(path)
    assert len(data) == 5 and data.macs is None
    np.testing.assert_allclose(data.accuracy_pct, evo_data.accuracy_pct[:5])
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(DataFormatError, match="unknown header"):
        load_accuracy_data(bad)


def test_macs_and_params_match_dynast_columns():
    path = DYNAST / "mbnv3w10_evounsga3_acc_macs_params.csv"
    rows = list(csv.DictReader(path.open()))
    data = load_accuracy_data(path)
    batch = data.to_batch()
    macs = macs_table("ofa-mbv3-w1.0").predict_batch(batch)
    np.testing.assert_array_equal(macs, data.macs)
    import ast

    first = ast.literal_eval(rows[0]["Sub-network"])
    one = SubnetBatch(np.array([first["ks"]]), np.array([first["e"]]), np.array([first["d"]]), np.array(first["r"]))
    assert params_table("ofa-mbv3-w1.0").predict_batch(one)[0] == int(rows[0]["Model Parameters"])
    assert infer_space(data) == "ofa-mbv3-w1.0"


def test_cost_range_is_exact_bounds():
    t = macs_table("ofa-mbv3-w1.2", (160, 224))
    lo, hi = t.value_range()
    from space import get_space

    sp = get_space("ofa-mbv3-w1.2")
    vals = t.predict_batch(sp.sample(2000, np.random.default_rng(0), resolutions=(160, 224)))
    assert lo <= vals.min() and vals.max() <= hi
    smallest = SubnetBatch(np.full((1, 20), 3), np.full((1, 20), 3), np.full((1, 5), 2), np.array([160]))
    assert t.predict_batch(smallest)[0] == pytest.approx(lo)
