"""Two precisions of one device through the CLI: naming them, predicting, comparing and searching."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lut import CompiledLut, DeviceSetting, LutStore
from lutnas.cli import app
from tests.conftest import SHARED_DATA

runner = CliRunner()
ARCH = {"ks": [5] * 20, "e": [4] * 20, "d": [3] * 5, "r": 224}


def _int8_ms(key: str, ms: float) -> float:
    # a synthetic int8 table: 0.6x everywhere except the kernel-7 blocks, which get slower
    return ms * (1.1 if "kernel:7" in key else 0.6)


@pytest.fixture()
def db(ref_db: Path, tmp_path: Path) -> Path:
    path = tmp_path / "lut.db"
    shutil.copy(ref_db, path)
    with LutStore(path) as store:
        rows = [(key, {"median_ms": _int8_ms(key, ms)}, None) for key, ms in store.table("note10").items()]
        store.import_rows(DeviceSetting("note10", "unknown", precision="int8"), rows)
    return path


def _json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_list_gives_each_setting_a_selector(db: Path) -> None:
    listing = _json(runner.invoke(app, ["lut", "list", "--db", str(db), "--json"]))["devices"]
    assert {d["selector"] for d in listing} == {"note10:fp32", "note10:int8", "i7"}


def test_predict_names_the_precision(db: Path) -> None:
    base = ["lut", "predict", "--db", str(db), "--arch", json.dumps(ARCH), "--json"]
    ambiguous = runner.invoke(app, [*base, "--device", "note10"])
    assert ambiguous.exit_code == 2 and "note10:int8" in ambiguous.output and "note10:fp32" in ambiguous.output
    fp32 = _json(runner.invoke(app, [*base, "--device", "note10", "--precision", "fp32"]))
    int8 = _json(runner.invoke(app, [*base, "--device", "note10", "--precision", "int8"]))
    assert _json(runner.invoke(app, [*base, "--device", "note10:int8"]))["latency_ms"] == int8["latency_ms"]
    assert int8["latency_ms"] < fp32["latency_ms"]
    missing = runner.invoke(app, [*base, "--device", "note10", "--precision", "fp16"])
    assert missing.exit_code == 2 and "no setting of 'note10' matches 'note10:fp16'" in missing.output


def test_compare_two_precisions_lists_the_blocks_int8_slows(db: Path, tmp_path: Path) -> None:
    plot = tmp_path / "int8.png"
    doc = _json(runner.invoke(app, ["compare", "--db", str(db), "--device", "note10", "--precision", "fp32,int8",
                                    "--subnets", "200", "--plot", str(plot), "--json"]))
    (pair,) = doc["pairs"]
    assert (pair["a"], pair["b"]) == ("note10:fp32", "note10:int8")
    assert pair["ratio_by_kind"]["first_conv"]["median"] == pytest.approx(0.6)
    assert 0.6 < pair["ratio_by_kind"]["mbconv"]["max"] == pytest.approx(1.1)
    assert pair["n_slower"] > 0 and all("kernel:7" in b["block_key"] for b in pair["slower"])
    assert all(b["ratio"] == pytest.approx(1.1) for b in pair["slower"])
    assert set(pair["ratio_by_resolution"]) == {str(r) for r in doc["resolutions"]}
    assert plot.stat().st_size > 0
    human = runner.invoke(app, ["compare", "--db", str(db), "--device", "note10", "--precision", "fp32,int8",
                                "--subnets", "200"])
    assert human.exit_code == 0 and "blocks slower on note10:int8 than on note10:fp32" in human.stderr
    bad = runner.invoke(app, ["compare", "--db", str(db), "--device", "note10", "--precision", "fp32,int8,fp16"])
    assert bad.exit_code == 2 and "precision must be one precision, or two (A,B) with one device" in bad.output


def test_search_under_an_int8_budget(db: Path) -> None:
    weights = SHARED_DATA / "ofa" / "acc_predictor.pth" if SHARED_DATA is not None else None
    if weights is None or not weights.is_file():
        pytest.skip("OFA's acc_predictor.pth not found")
    with LutStore(db) as store:
        fastest_fp32_ms = CompiledLut.from_store(store, "note10:fp32", "ofa-mbv3-w1.2").value_range()[0]
    budget = f"{0.8 * fastest_fp32_ms:.3f}"  # out of fp32's reach, within int8's
    base = ["search", "--db", str(db), "--device", "note10", "--predictor", str(weights), "--generations", "10",
            "--json", "--latency-ms", budget]
    doc = _json(runner.invoke(app, [*base, "--precision", "int8"]))
    assert doc["accuracy_model"] == "top-1 at fp32 (the predictor's training data)"  # OFA's predictor: fp32 accuracy
    (int8,) = doc["results"]
    assert int8["latency_ms"]["note10:int8"] <= float(budget)
    (fp32,) = _json(runner.invoke(app, [*base, "--precision", "fp32"]))["results"]  # an answer: no fp32 subnet
    assert fp32["feasible"] is False and "achievable range" in fp32["reason"]
