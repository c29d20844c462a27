"""The round spread: how far a block's readings from several profile rounds agree, in a report and a store."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from lut import LutStore
from lut.repeatability import round_spread, stored_round_spread
from lut.schema import DeviceSetting
from lutnas.cli import app
from space import get_space


def test_the_spread_is_the_median_block_s_slowest_over_fastest_round():
    assert round_spread([[1.0, 1.5], [2.0, 2.2, 2.1], [4.0, 4.0]]) == pytest.approx(0.1)  # ratios 1.5, 1.1, 1.0
    assert round_spread([[1.0, 1.2], [3.0]]) == pytest.approx(0.2)  # a block read once says nothing
    assert round_spread([[0.0, 1.0], [5.0]]) is None and round_spread([]) is None


def test_lut_list_shows_the_spread_of_rows_timed_in_rounds(tmp_path):
    db = tmp_path / "lut.db"
    keys = [b.key for b in get_space("ofa-mbv3-w0.25").unique_blocks([16])][:5]
    rounds = [[1.0, 1.3], [2.0, 2.4], [1.0, 1.1], [0.5, 0.6], [3.0, 3.0]]  # spreads 30, 20, 10, 20, 0%: median 20%
    with LutStore(db) as store:
        sid = store.ensure_setting(DeviceSetting("pi", "tflite", runtime_version="2.3.0", threads=1))
        store.put_rows(sid, [(k, {"median_ms": min(m)}, {"extra": {"round_medians_ms": m}})
                             for k, m in zip(keys, rounds)])
        one = store.ensure_setting(DeviceSetting("pi", "tflite", runtime_version="2.3.0", threads=2))
        store.put_rows(one, [(k, {"median_ms": 1.0}, {}) for k in keys])
        assert stored_round_spread(store, sid) == pytest.approx(0.2) and stored_round_spread(store, one) is None
    runner = CliRunner()
    result = runner.invoke(app, ["lut", "list", "--db", str(db), "--json"])
    assert result.exit_code == 0, result.output
    listing = {d["threads"]: d for d in json.loads(result.stdout)["devices"]}
    assert listing[1]["round_spread_pct"] == pytest.approx(20.0) and listing[2]["round_spread_pct"] is None
    human = runner.invoke(app, ["lut", "list", "--db", str(db)], env={"COLUMNS": "200"})
    assert human.exit_code == 0 and "20%" in human.stderr and "round spread" in human.stderr
