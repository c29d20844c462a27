"""train -> collect -> predictor -> search -> extract through the CLI for the digits-scale ProxylessNAS and ResNet50
supernets (one epoch of the full network and one of the last shrinking phase, a few subnets), on a LUT of the
space collect labels the accuracies with."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from lut import DeviceSetting, LutStore
from lut.predict import CompiledLut
from space import get_space
from space.counts import block_macs
from supernet.checkpoint import load_checkpoint
from supernet.runs import phase_names
from supernet.static_subnet import load_subnet
from tests.cli.conftest import invoke, invoke_json

RES = (12, 16)
CASES = [("ofa-proxyless", "ofa-proxyless-w0.25"), ("ofa-resnet50", "ofa-resnet50-w0.25")]


def _lut(db: Path, space_name: str) -> CompiledLut:
    """A LUT of the space in a real store: every block priced from its multiply-adds plus an overhead."""
    space = get_space(space_name)
    table = {b.key: 1e-5 * block_macs(b) + 0.01 for b in space.unique_blocks(list(RES))}
    with LutStore(db) as store:
        store.import_rows(DeviceSetting("board", "onnxruntime"), [(k, {"median_ms": v}, None) for k, v in table.items()])
    return CompiledLut.from_table(table, space)


@pytest.mark.parametrize("family, space_name", CASES)
def test_train_collect_predict_search_extract(family: str, space_name: str, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    names = phase_names(family)
    assert ("kernel-1" in names) == (family == "ofa-proxyless") and ("width-1" in names) == (family == "ofa-resnet50")
    epochs = ",".join(f"{n}={int(n in (names[0], names[-1]))}" for n in names)
    run = tmp_path / "run"
    trained = invoke_json("supernet", "train", "--family", family, "--out", str(run), "--epochs", epochs,
                          "--batch-size", "128", "--no-validate", "--threads", "1")
    assert [p["name"] for p in trained["phases"]] == list(names)
    ckpt = load_checkpoint(run / "supernet.pt")
    assert ckpt.family == family and ckpt.meta["family"] == family

    csv_path = tmp_path / "acc.csv"
    collected = invoke_json("supernet", "collect", "--checkpoint", str(run), "--out", str(csv_path),
                            "--samples", "5", "--calib-images", "64", "--threads", "1")
    assert collected["space"] == space_name and collected["samples"] == 5
    with csv_path.open() as fh:
        rows = list(csv.DictReader(fh))
    space = get_space(space_name)
    for row in rows:
        assert row["space"] == space_name
        space.validate(json.loads(row["arch"]))  # the family's own arch form
    assert 0 < collected["accuracy_min"] <= collected["accuracy_max"] <= 100

    pred = tmp_path / "pred.pt"
    assert invoke_json("predictor", "train", "--data", str(csv_path), "--out", str(pred))["space"] == space_name

    db = tmp_path / "lut.db"
    lut = _lut(db, space_name)
    lo, hi = lut.value_range(RES)
    budget = round(lo + 0.5 * (hi - lo), 4)
    found = invoke_json("search", "--db", str(db), "--device", "board", "--predictor", str(pred), "--space", space_name,
                        "--latency-ms", str(budget), "--generations", "3", "--population", "12")
    (best,) = found["results"]
    arch = best["arch"]
    space.validate(arch)
    assert lut.predict(arch, calibrated=False) <= budget

    onnx_path, pt_path = tmp_path / "sub.onnx", tmp_path / "sub.pt"
    extracted = invoke_json("supernet", "extract", "--checkpoint", str(run), "--arch", json.dumps(arch), "--out",
                            str(onnx_path))
    assert extracted["format"] == "onnx" and extracted["bn_recalibrated"]
    invoke_json("supernet", "extract", "--checkpoint", str(run), "--arch", json.dumps(arch), "--out", str(pt_path))
    subnet = load_subnet(pt_path).eval()
    x = np.random.default_rng(0).standard_normal((1, 3, arch["r"], arch["r"])).astype(np.float32)
    with torch.no_grad():
        want = subnet(torch.from_numpy(x)).numpy()
    got = ort.InferenceSession(onnx_path.read_bytes()).run(None, {"input": x})[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert want.shape == (1, 10)


def test_resume_refuses_another_family(tmp_path: Path) -> None:
    run = tmp_path / "run"
    names = phase_names("ofa-resnet50")
    invoke_json("supernet", "train", "--family", "ofa-resnet50", "--out", str(run), "--epochs",
                ",".join(f"{n}=0" for n in names), "--no-validate", "--threads", "1")
    result = invoke("supernet", "train", "--family", "ofa-proxyless", "--out", run, "--resume")
    assert result.exit_code == 2
    assert "is a run of ofa-resnet50, got ofa-proxyless" in result.output
    result = invoke("supernet", "train", "--family", "ofa-vgg", "--out", tmp_path / "new")
    assert result.exit_code == 2 and "family must be one of ofa-mbv3, ofa-proxyless, ofa-resnet50" in result.output
