"""Import and export keep a setting whole: metadata and calibration travel through CSV and Parquet,
and an import says how many rows were new and how many replaced rows already there."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lut import Calibration, DeviceSetting, LutStore, read_metadata
from space import get_space
from tests.conftest import SHARED_DATA

from .conftest import invoke, invoke_json

NOTE10 = sorted(((SHARED_DATA or Path("/nonexistent")) / "ofa" / "note10").glob("*_lookup_table.yaml"))
ARCH = {"ks": [5] * 20, "e": [4] * 20, "d": [3] * 5, "r": 224}


@pytest.fixture()
def pi_db(tmp_path: Path) -> Path:
    """A store with one onnxruntime setting 'pi' (w1.2 at 224, from Note10's table) and a calibration."""
    path = tmp_path / "pi.db"
    from lut import read_ofa_yaml

    table = {k: s for k, s, _ in read_ofa_yaml(NOTE10)}
    keys = {b.key for b in get_space("ofa-mbv3-w1.2").unique_blocks([224])}
    with LutStore(path) as store:
        sid, _ = store.import_rows(DeviceSetting("pi", "onnxruntime", "1.20.0", threads=2, model_format="onnx"),
                                   [(k, table[k], {}) for k in sorted(keys)])
        store.save_calibration(sid, Calibration("scale", ("raw_ms",), (1.5,), space="ofa-mbv3-w1.2"))
    return path


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ""])
def test_setting_and_calibration_survive_export_and_import(pi_db: Path, tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"pi{suffix}"
    files = invoke_json("lut", "export", "--db", pi_db, "--device", "pi", "--out", out)["files"]
    fmt = suffix[1:] or "ofa-yaml"  # no extension: a directory of OFA yaml files and the setting's file
    meta = read_metadata(files[0], fmt)
    assert meta["device"] == "pi" and meta["setting"]["runtime_version"] == "1.20.0"
    other = tmp_path / "other.db"
    doc = invoke_json("lut", "import", "--db", other, "--device", "pi2", *sorted(files))
    assert (doc["runtime"], doc["runtime_version"], doc["threads"], doc["model_format"]) == (
        "onnxruntime", "1.20.0", 2, "onnx")
    assert doc["calibrations"] == 1 and doc["new_rows"] == doc["rows"] == 96
    before = invoke_json("lut", "predict", "--db", pi_db, "--device", "pi", "--arch", json.dumps(ARCH))
    after = invoke_json("lut", "predict", "--db", other, "--device", "pi2", "--arch", json.dumps(ARCH))
    assert after["calibrated"] is True and after["latency_ms"] == pytest.approx(before["latency_ms"])
    assert after["latency_ms"] == pytest.approx(1.5 * after["raw_ms"])


def test_import_counts_new_and_replaced_rows(tmp_path: Path) -> None:
    db = tmp_path / "n.db"
    first = invoke_json("lut", "import", "--db", db, "--device", "note10", NOTE10[0])
    assert first["new_rows"] == first["rows"] and first["replaced_rows"] == 0
    again = invoke_json("lut", "import", "--db", db, "--device", "note10", NOTE10[0], NOTE10[1])
    assert again["replaced_rows"] > 0 and again["new_rows"] > 0
    assert again["new_rows"] + again["replaced_rows"] == again["rows"]
    human = invoke("lut", "import", "--db", db, "--device", "note10", NOTE10[1])
    n = invoke_json("lut", "import", "--db", db, "--device", "note10", NOTE10[1])["rows"]
    assert human.exit_code == 0 and f"imported {n} rows (0 new, {n} replaced)" in " ".join(human.stderr.split())
