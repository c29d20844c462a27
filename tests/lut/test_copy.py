"""``lut copy``: settings move between SQLite and PostgreSQL stores unchanged, all or nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from lut import Calibration, CompiledLut, CopyConflictError, LutStore, copy_settings
from lutnas.cli import app
from space import get_space


def _enrich(store: LutStore) -> None:
    """Give note10 a failure, a calibration and a validation run besides its rows."""
    sid = store.setting("note10").id
    key = next(iter(store.keys(sid)))
    store.record_failure(sid, key, "timeout", attempts=2)
    store.save_calibration(sid, Calibration(kind="affine", features=("raw_ms",), coef=(1.1,), intercept_ms=0.5))
    store.save_validation_run(sid, [{"arch": {"r": 224}, "predicted_ms": 10.0, "measured_ms": 11.0, "rank": 3}],
                              meta={"protocol": "interleaved"})


def _everything(store: LutStore, device: str) -> tuple:
    stored = store.setting(device)
    runs = store.validation_runs(stored.id)
    return (stored.setting, stored.info, stored.created_at, store.rows(stored.id), store.failures(stored.id),
            store.calibrations(stored.id).drop(columns="id"), runs.drop(columns=["id", "setting_id"]),
            store.validation_samples(runs.id.tolist()).drop(columns="run_id"))


def _assert_same(a: tuple, b: tuple) -> None:
    for x, y in zip(a, b):
        if isinstance(x, pd.DataFrame):
            pd.testing.assert_frame_equal(x.reset_index(drop=True), y.reset_index(drop=True))
        else:
            assert x == y


def test_sqlite_to_postgres_and_back_is_lossless(ref_db: Path, tmp_path: Path, pg_databases) -> None:
    src_path = tmp_path / "src.db"
    shutil.copy(ref_db, src_path)
    pg_url, back = pg_databases.new(), tmp_path / "back.db"
    with LutStore(src_path) as src:
        _enrich(src)
        with LutStore(pg_url) as pg:
            assert [s.name for s, _ in copy_settings(src, pg)] == ["note10", "i7"]
            with LutStore(back) as again:
                copy_settings(pg, again, ["note10"])
                for other in (pg, again):
                    _assert_same(_everything(src, "note10"), _everything(other, "note10"))
                space = get_space("ofa-mbv3-w1.2")
                batch = space.sample(200, np.random.default_rng(0), resolutions=(224,))
                want = CompiledLut.from_store(src, "note10", space).predict_batch(batch)
                assert np.array_equal(CompiledLut.from_store(pg, "note10", space).predict_batch(batch), want)  # bit for bit
                assert again.settings()[0].name == "note10" and len(again.settings()) == 1


def test_copy_is_all_or_nothing(ref_db: Path, store_url: str) -> None:
    with LutStore(ref_db, create=False) as src, LutStore(store_url) as dst:
        copy_settings(src, dst, ["i7"])
        before = dst.count_rows()
        with pytest.raises(CopyConflictError, match="already has i7"):
            copy_settings(src, dst)  # note10 would be new, i7 clashes: neither is written
        assert dst.count_rows() == before and [s.name for s in dst.settings()] == ["i7"]
        dst.put_row(dst.setting("i7").id, next(iter(dst.keys("i7"))), {"median_ms": 99.0})
        copied = copy_settings(src, dst, ["i7", "note10"], replace=True)
        assert [s.name for s, _ in copied] == ["i7", "note10"]
        assert dst.table("i7") == src.table("i7")


def test_cli_copy(ref_db: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    dst = tmp_path / "dst.db"
    args = ["lut", "copy", "--from", str(ref_db), "--to", str(dst), "--device", "note10", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["copied"] == [{"device": "note10", "from_id": 1, "to_id": 1, "rows": 480}]
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "already has note10" in again.stderr
    missing = runner.invoke(app, ["lut", "copy", "--from", str(tmp_path / "nope.db"), "--to", str(dst)])
    assert missing.exit_code == 2 and "no LUT store at" in missing.stderr
