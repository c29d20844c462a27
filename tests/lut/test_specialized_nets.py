"""Every one of OFA's 50 published specialized nets (34 MobileNetV3, 16 ProxylessNAS) parses into blocks and is
priced from a real store by ``lut predict --net-config`` (each in the space it fits, at its run.config resolution)."""

from __future__ import annotations

import json
import zlib

import pytest
from typer.testing import CliRunner

from lut import DeviceSetting, LutStore
from lut.latency import predict_latency
from lutnas.cli import app
from space import read_net_config

from tests.conftest import SHARED_DATA

SPECIALIZED = SHARED_DATA / "ofa" / "specialized"


def _nets() -> list[tuple[str, int, list]]:
    out = []
    for folder in sorted(SPECIALIZED.iterdir()):
        r = json.loads((folder / "run.config").read_text())["image_size"]
        out.append((folder.name, r, read_net_config(folder, r)))
    return out


def _price(key: str) -> float:
    """A made-up latency per block, fixed by its key (what is checked is which rows a net's price reads)."""
    return 0.01 + (zlib.crc32(key.encode()) % 1000) / 1000


def test_every_published_net_is_priced_from_a_store_in_the_space_it_fits(tmp_path):
    nets = _nets()
    assert len(nets) == 50
    keys = sorted({b.key for _, _, blocks in nets for b in blocks})
    db = tmp_path / "lut.db"
    with LutStore(db) as store:
        store.import_rows(DeviceSetting("cpu", "onnxruntime"), [(k, {"median_ms": _price(k)}, None) for k in keys])
    spaces = {}
    for name, r, blocks in nets:
        report = predict_latency(db, "cpu", net_config=SPECIALIZED / name)
        assert report.latency_ms == pytest.approx(sum(_price(b.key) for b in blocks)), name
        assert not report.calibrated
        spaces[report.space] = spaces.get(report.space, 0) + 1
    assert spaces == {"ofa-mbv3-w1.0": 24, "ofa-mbv3-w1.2": 10, "ofa-proxyless-w1.3": 16}
    # the command line reads the same (one net per family)
    for name in ("cpu_lat-10ms_top1-71.1_finetune-25", "pixel1_lat-132ms_top1-79.8_finetune-75"):
        result = CliRunner().invoke(app, ["lut", "predict", "--db", str(db), "--device", "cpu",
                                          "--net-config", str(SPECIALIZED / name), "--json"])
        assert result.exit_code == 0, result.output
        r, blocks = next((r, b) for n, r, b in nets if n == name)
        assert json.loads(result.stdout)["latency_ms"] == pytest.approx(sum(_price(b.key) for b in blocks), abs=1e-3)
