"""The SQLite store: schema, settings, rows, failures, transactions, threads and processes."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest

from lut import (
    AmbiguousDeviceError,
    DeviceSetting,
    LutStore,
    SchemaVersionError,
    StoreError,
    UnknownDeviceError,
)
from space import get_space

KEY = get_space("ofa-mbv3-w1.2").stem_blocks(224)[0][0].key
KEY2 = get_space("ofa-mbv3-w1.2").stem_blocks(224)[0][1].key
PI = DeviceSetting("pi5", "onnxruntime", "1.17.1", 1, "fp32", "onnx")


def test_new_store_has_schema_wal_and_foreign_keys(tmp_path: Path) -> None:
    path = tmp_path / "lut.db"
    with LutStore(path):
        pass
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT version FROM schema_version").fetchall() == [(1,)]
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"device_settings", "lut_rows", "failed_blocks", "validation_runs", "validation_samples",
            "calibrations"} <= tables
    with LutStore(path) as store:
        assert store._query("PRAGMA foreign_keys") == [(1,)]


def test_unknown_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "lut.db"
    with LutStore(path):
        pass
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE schema_version SET version = 99")
    conn.close()
    with pytest.raises(SchemaVersionError, match="schema version 99; this lutnas reads version 1"):
        LutStore(path)


def test_not_a_store(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(StoreError, match="not a lutnas LUT store"):
        LutStore(junk)
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE t (x)")
    conn.close()
    with pytest.raises(StoreError, match="no schema_version table"):
        LutStore(other)


def test_settings_by_name_and_id(tmp_path: Path) -> None:
    with LutStore(tmp_path / "lut.db") as store:
        sid = store.ensure_setting(PI, info={"soc": "BCM2712"})
        assert store.ensure_setting(PI) == sid
        assert store.setting("pi5").id == sid
        assert store.setting(sid).setting == PI
        assert store.setting(str(sid)).info == {"soc": "BCM2712"}
        with pytest.raises(UnknownDeviceError, match="unknown device 'pi4'; known devices: pi5"):
            store.setting("pi4")
        sid2 = store.ensure_setting(DeviceSetting("pi5", "onnxruntime", "1.17.1", 4, "fp32", "onnx"))
        with pytest.raises(AmbiguousDeviceError, match=rf"device 'pi5' has 2 settings.*#{sid}.*#{sid2}"):
            store.setting("pi5")
        assert [s.id for s in store.settings("pi5")] == [sid, sid2]


def test_device_setting_validation() -> None:
    with pytest.raises(ValueError, match="threads must be an int >= 0, got -1"):
        DeviceSetting("x", "onnxruntime", threads=-1)
    with pytest.raises(ValueError, match="name must not be all digits"):
        DeviceSetting("123", "onnxruntime")


def test_put_row_upserts_and_rows_frame(tmp_path: Path) -> None:
    with LutStore(tmp_path / "lut.db") as store:
        sid = store.ensure_setting(PI)
        store.put_row(sid, KEY, {"median_ms": 1.0, "mean_ms": 1.1, "n": 50},
                      {"agent_version": "0.1", "temp_before_c": 40.5, "extra": {"round": 1}})
        store.put_row(sid, KEY, {"median_ms": 2.0, "p10_ms": 1.9, "p90_ms": 2.2, "n": 60}, {"extra": {"round": 2}})
        frame = store.rows(sid)
        assert list(frame.block_key) == [KEY]
        row = frame.iloc[0]
        assert row.median_ms == 2.0 and row.n == 60 and pd.isna(row.mean_ms) and row.source == "measured"
        assert json.loads(row.extra) == {"round": 2}
        assert store.keys(sid) == {KEY}
        assert store.table("pi5") == {KEY: 2.0}


@pytest.mark.parametrize("stats, message", [
    ({"median_ms": -1.0}, "median_ms must be >= 0"),
    ({"median_ms": float("nan")}, "median_ms must be finite"),
    ({"mean_ms": 1.0}, "median_ms is required"),
    ({"median_ms": 1.0, "bogus": 2}, "unknown field"),
])
def test_put_rows_is_all_or_nothing(tmp_path: Path, stats: dict, message: str) -> None:
    with LutStore(tmp_path / "lut.db") as store:
        sid = store.ensure_setting(PI)
        with pytest.raises(ValueError, match=message):
            store.put_rows(sid, [(KEY, {"median_ms": 1.0}, None), (KEY2, stats, None)])
        assert store.keys(sid) == set()


def test_bad_key_and_unknown_setting(tmp_path: Path) -> None:
    with LutStore(tmp_path / "lut.db") as store:
        sid = store.ensure_setting(PI)
        with pytest.raises(ValueError, match="not an OFA block key: 'Conv-bogus'"):
            store.put_row(sid, "Conv-bogus", {"median_ms": 1.0})
        with pytest.raises(UnknownDeviceError, match="no device setting with id 99"):
            store.put_row(99, KEY, {"median_ms": 1.0})


def test_failures_count_attempts_and_clear_on_success(tmp_path: Path) -> None:
    with LutStore(tmp_path / "lut.db") as store:
        sid = store.ensure_setting(PI)
        store.record_failure(sid, KEY, "export failed:\nunsupported op")
        store.record_failure(sid, KEY, "timeout")
        failures = store.failures(sid)
        assert failures.attempts.tolist() == [2] and failures.reason.tolist() == ["timeout"]
        store.record_failure(sid, KEY, "again", attempts=7)
        assert store.failures(sid).attempts.tolist() == [7]
        store.put_row(sid, KEY, {"median_ms": 1.0})
        assert store.failures(sid).empty


def test_remove_setting_cascades(tmp_path: Path) -> None:
    from lut import Calibration

    with LutStore(tmp_path / "lut.db") as store:
        sid = store.ensure_setting(PI)
        store.put_rows(sid, [(KEY, {"median_ms": 1.0}, None), (KEY2, {"median_ms": 2.0}, None)])
        store.record_failure(sid, KEY, "x")
        store.save_validation_run(sid, [{"arch": {"r": 224}, "predicted_ms": 1, "measured_ms": 1.1}])
        store.save_calibration(sid, Calibration(kind="affine", features=("raw_ms",), coef=(1.0,), intercept_ms=0.5))
        assert store.remove_setting("pi5") == 2
        assert store.settings() == []
        for table in ("lut_rows", "failed_blocks", "validation_runs", "validation_samples", "calibrations"):
            assert store._query(f"SELECT COUNT(*) FROM {table}") == [(0,)]


def test_validation_runs_round_trip(tmp_path: Path) -> None:
    with LutStore(tmp_path / "lut.db") as store:
        sid = store.ensure_setting(PI)
        arch = {"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 224}
        samples = pd.DataFrame({"arch": [arch, arch], "predicted_ms": [10.0, 11.0], "measured_ms": [10.5, 11.5],
                                "repeat_ms": [10.4, None], "rank": [0, 1]})
        run_id = store.save_validation_run(sid, samples, meta={"protocol": "interleaved", "rounds": 5})
        runs = store.validation_runs("pi5")
        assert runs.id.tolist() == [run_id] and runs.n_samples.tolist() == [2]
        assert runs.meta[0] == {"protocol": "interleaved", "rounds": 5}
        got = store.validation_samples(run_id)
        assert got.arch.tolist() == [arch, arch]
        assert got.measured_ms.tolist() == [10.5, 11.5]
        assert got.repeat_ms.isna().tolist() == [False, True]
        assert got.extra.tolist() == [{"rank": 0}, {"rank": 1}]


def test_threads_write_concurrently(tmp_path: Path) -> None:
    space = get_space("ofa-mbv3-w1.2")
    keys = [b.key for b in space.unique_blocks(224)]
    with LutStore(tmp_path / "lut.db") as store:
        errors: list[BaseException] = []

        def worker(i: int) -> None:
            try:
                sid = store.ensure_setting(PI)
                for key in keys[i::8]:
                    store.put_row(sid, key, {"median_ms": 1.0 + i})
                    store.keys(sid)
                store.record_failure(sid, keys[i], "x")
            except BaseException as err:  # noqa: BLE001 - surfaced below
                errors.append(err)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert store.keys("pi5") == set(keys)
        assert len(store.settings()) == 1


def test_second_process_writes_while_open(tmp_path: Path) -> None:
    path = tmp_path / "lut.db"
    with LutStore(path) as store:
        sid = store.ensure_setting(PI)
        store.put_row(sid, KEY, {"median_ms": 1.0})
        code = (
            "from lut import LutStore\n"
            f"with LutStore({str(path)!r}) as s:\n"
            f"    s.put_row({sid}, {KEY2!r}, {{'median_ms': 3.0}})\n"
        )
        subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
        assert store.table(sid) == {KEY: 1.0, KEY2: 3.0}


def test_lut_imports_only_what_it_may() -> None:
    code = (
        "import sys, lut, lut.compare\n"
        "banned = {'torch', 'search', 'profiler', 'supernet', 'agent', 'lutnas', 'grpc', 'matplotlib'}\n"
        "bad = sorted({m.split('.')[0] for m in sys.modules} & banned)\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
