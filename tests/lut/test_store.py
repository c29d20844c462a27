"""The LUT store on SQLite and PostgreSQL: schema, migrations, settings, rows, failures, transactions,
threads and processes."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from lut import (
    AmbiguousDeviceError,
    DeviceSetting,
    LutStore,
    SCHEMA_VERSION,
    SchemaVersionError,
    StoreError,
    UnknownDeviceError,
)
from lut.schema import MIGRATIONS
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
    assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
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
    with pytest.raises(SchemaVersionError, match=f"schema version 99; this lutnas reads versions 1 to {SCHEMA_VERSION}"):
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


def _engine(store_url: str) -> sa.Engine:
    if store_url.startswith("postgresql://"):
        return sa.create_engine(store_url.replace("postgresql://", "postgresql+psycopg://", 1))
    return sa.create_engine(f"sqlite:///{store_url}")


def test_older_store_is_migrated_and_keeps_its_data(store_url: str) -> None:
    engine = _engine(store_url)
    with engine.begin() as conn:  # a store as the first schema version wrote it
        MIGRATIONS[0](conn)
        conn.execute(sa.text("INSERT INTO schema_version (version) VALUES (1)"))
        conn.execute(sa.text("INSERT INTO device_settings (name, runtime, runtime_version, threads, precision, "
                             "model_format, delegate, created_at) VALUES ('pi5', 'onnxruntime', '1.17.1', 1, 'fp32', "
                             "'onnx', '', 'then')"))
    engine.dispose()
    with LutStore(store_url, create=False) as store:
        assert store._query("SELECT version FROM schema_version") == [(SCHEMA_VERSION,)]
        assert [s.setting for s in store.settings()] == [PI]
        sid = store.settings()[0].id
        store.put_row(sid, KEY, {"median_ms": 1.0})
        assert store.seed_work(sid, [KEY, KEY2]) == 1  # the leases table came with the migration


def test_postgres_database_that_is_not_a_store(pg_databases) -> None:
    url = pg_databases.new()
    with pytest.raises(StoreError, match="no LUT store at .*the database is empty"):
        LutStore(url, create=False)
    engine = _engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE notes (id INTEGER)"))
    engine.dispose()
    with pytest.raises(StoreError, match="not a lutnas LUT store"):
        LutStore(url)
    with pytest.raises(StoreError, match="LUT store postgresql://postgres@127.0.0.1:1/x: .*"):
        LutStore("postgresql://postgres@127.0.0.1:1/x")


def test_settings_by_name_and_id(store_url: str) -> None:
    with LutStore(store_url) as store:
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


def test_put_row_upserts_and_rows_frame(store_url: str) -> None:
    with LutStore(store_url) as store:
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
def test_put_rows_is_all_or_nothing(store_url: str, stats: dict, message: str) -> None:
    with LutStore(store_url) as store:
        sid = store.ensure_setting(PI)
        with pytest.raises(ValueError, match=message):
            store.put_rows(sid, [(KEY, {"median_ms": 1.0}, None), (KEY2, stats, None)])
        assert store.keys(sid) == set()


def test_bad_key_and_unknown_setting(store_url: str) -> None:
    with LutStore(store_url) as store:
        sid = store.ensure_setting(PI)
        with pytest.raises(ValueError, match="not an OFA block key: 'Conv-bogus'"):
            store.put_row(sid, "Conv-bogus", {"median_ms": 1.0})
        with pytest.raises(UnknownDeviceError, match="no device setting with id 99"):
            store.put_row(99, KEY, {"median_ms": 1.0})


def test_failures_count_attempts_and_clear_on_success(store_url: str) -> None:
    with LutStore(store_url) as store:
        sid = store.ensure_setting(PI)
        store.record_failure(sid, KEY, "export failed:\nunsupported op")
        store.record_failure(sid, KEY, "timeout")
        failures = store.failures(sid)
        assert failures.attempts.tolist() == [2] and failures.reason.tolist() == ["timeout"]
        store.record_failure(sid, KEY, "again", attempts=7)
        assert store.failures(sid).attempts.tolist() == [7]
        store.put_row(sid, KEY, {"median_ms": 1.0})
        assert store.failures(sid).empty


def test_remove_setting_cascades(store_url: str) -> None:
    from lut import Calibration

    with LutStore(store_url) as store:
        sid = store.ensure_setting(PI)
        store.put_rows(sid, [(KEY, {"median_ms": 1.0}, None), (KEY2, {"median_ms": 2.0}, None)])
        store.record_failure(sid, KEY, "x")
        store.save_validation_run(sid, [{"arch": {"r": 224}, "predicted_ms": 1, "measured_ms": 1.1}])
        store.save_calibration(sid, Calibration(kind="affine", features=("raw_ms",), coef=(1.0,), intercept_ms=0.5))
        assert store.remove_setting("pi5") == 2
        assert store.settings() == []
        for table in ("lut_rows", "failed_blocks", "validation_runs", "validation_samples", "calibrations"):
            assert store._query(f"SELECT COUNT(*) FROM {table}") == [(0,)]


def test_validation_runs_round_trip(store_url: str) -> None:
    with LutStore(store_url) as store:
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


def test_threads_write_concurrently(store_url: str) -> None:
    space = get_space("ofa-mbv3-w1.2")
    keys = [b.key for b in space.unique_blocks(224)]
    with LutStore(store_url) as store:
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


def test_second_process_writes_while_open(store_url: str) -> None:
    path = store_url
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
