"""The LUT store: one SQLite file holding every device setting's LUT rows and what was learned from them.

``LutStore`` is the only code in lutnas that writes SQL. It opens the file in WAL mode with
foreign keys on and a busy timeout, so a second process can read (and wait to write) while a
profiler writes; within a process one connection is shared behind a lock, so threads may call
it concurrently. Every write is one transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``): a failed
import leaves nothing behind.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from lut._rows import check_block_key, normalize_row
from lut.errors import (
    AmbiguousDeviceError,
    SchemaVersionError,
    StoreError,
    UnknownDeviceError,
)
from lut.schema import DDL, ROW_COLUMNS, SCHEMA_VERSION, DeviceSetting

if TYPE_CHECKING:
    from lut.calibration import Calibration
    from lut.predict import CompiledLut
    from space import SearchSpace

__all__ = ["LutStore", "StoredSetting", "RowInput", "BUSY_TIMEOUT_MS"]

logger = logging.getLogger(__name__)

# How long a writer waits for another process's transaction before giving up.
BUSY_TIMEOUT_MS = 30_000

# One row for put_rows: (block_key, stats, provenance).
RowInput = tuple[str, Mapping[str, Any], Mapping[str, Any] | None]

_SETTING_FIELDS = ("name", "runtime", "runtime_version", "threads", "precision", "model_format", "delegate")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class StoredSetting:
    """A device setting as stored: its id, the identifying fields, and the JSON ``info`` blob."""

    id: int  # primary key in device_settings
    setting: DeviceSetting  # the identifying fields
    info: dict[str, Any] = field(default_factory=dict, compare=False)  # device facts, free-form
    created_at: str = ""  # UTC ISO time the setting was first seen

    @property
    def name(self) -> str:
        return self.setting.name

    def describe(self) -> str:
        """``#3 pi5: onnxruntime 1.17.1, 1 thread, fp32, onnx``."""
        return f"#{self.id} {self.setting.describe()}"


class LutStore:
    """A SQLite LUT store at ``path`` (created when absent).

    Use as a context manager or call :meth:`close`.

    Raises:
        StoreError: the file is not a SQLite database or not a lutnas store.
        SchemaVersionError: the store has a schema version this lutnas cannot read.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._lock = threading.RLock()
        try:
            self._conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as err:
            raise StoreError(f"cannot open LUT store {self.path}: {err}") from err
        try:
            self._setup()
        except sqlite3.DatabaseError as err:
            self._conn.close()
            raise StoreError(f"{self.path} is not a lutnas LUT store ({err})") from err
        except StoreError:
            self._conn.close()
            raise

    # -- connection plumbing -------------------------------------------------------------
    def _setup(self) -> None:
        conn = self._conn
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA foreign_keys = ON")
        if self.path != ":memory:":
            conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        with self._transaction():
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not tables:
                for statement in DDL.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
                logger.info("created LUT store %s (schema version %d)", self.path, SCHEMA_VERSION)
                return
            if "schema_version" not in tables:
                raise StoreError(f"{self.path} is a SQLite file but not a lutnas LUT store (no schema_version table)")
            row = conn.execute("SELECT version FROM schema_version").fetchone()
            version = row[0] if row else None
            if version != SCHEMA_VERSION:
                raise SchemaVersionError(
                    f"LUT store {self.path} has schema version {version!r}; this lutnas reads version {SCHEMA_VERSION}"
                )

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction under the lock: commit on success, roll back on any error."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> LutStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LutStore({self.path!r})"

    # -- device settings -----------------------------------------------------------------
    def ensure_setting(self, setting: DeviceSetting, info: Mapping[str, Any] | None = None) -> int:
        """The id of ``setting``, inserting it when new.

        Args:
            setting: the identifying fields.
            info: device facts to store with a new setting (merged into an existing one's info).

        Returns:
            The setting's id.
        """
        if not isinstance(setting, DeviceSetting):
            raise TypeError(f"ensure_setting expects a DeviceSetting, got {type(setting).__name__}")
        with self._transaction() as conn:
            return self._ensure(conn, setting, info)

    @staticmethod
    def _ensure(conn: sqlite3.Connection, setting: DeviceSetting, info: Mapping[str, Any] | None) -> int:
        values = tuple(getattr(setting, f) for f in _SETTING_FIELDS)
        where = " AND ".join(f"{f} = ?" for f in _SETTING_FIELDS)
        row = conn.execute(f"SELECT id, info FROM device_settings WHERE {where}", values).fetchone()
        if row is not None:
            if info:
                merged = {**json.loads(row[1]), **dict(info)}
                conn.execute("UPDATE device_settings SET info = ? WHERE id = ?", (json.dumps(merged), row[0]))
            return int(row[0])
        cur = conn.execute(
            f"INSERT INTO device_settings ({', '.join(_SETTING_FIELDS)}, info, created_at) "
            f"VALUES ({', '.join('?' * len(_SETTING_FIELDS))}, ?, ?)",
            (*values, json.dumps(dict(info or {})), _now()),
        )
        logger.info("new device setting #%d %s", cur.lastrowid, setting.describe())
        return int(cur.lastrowid)

    def settings(self, name: str | None = None) -> list[StoredSetting]:
        """Every stored setting (those called ``name`` when given), ordered by id."""
        sql = f"SELECT id, {', '.join(_SETTING_FIELDS)}, info, created_at FROM device_settings"
        params: tuple[Any, ...] = ()
        if name is not None:
            sql += " WHERE name = ?"
            params = (name,)
        out = []
        for row in self._query(sql + " ORDER BY id", params):
            setting = DeviceSetting(**dict(zip(_SETTING_FIELDS, row[1:8])))
            out.append(StoredSetting(id=int(row[0]), setting=setting, info=json.loads(row[8]), created_at=row[9]))
        return out

    def setting(self, ref: str | int | StoredSetting) -> StoredSetting:
        """The setting named ``ref`` (a device name, an id, or a digit string holding an id).

        Raises:
            UnknownDeviceError: nothing matches; the message lists the known devices.
            AmbiguousDeviceError: the name has several settings; the message lists them with their ids.
        """
        if isinstance(ref, StoredSetting):
            return ref
        if isinstance(ref, bool) or not isinstance(ref, (str, int)):
            raise TypeError(f"device must be a name or an id, got {ref!r}")
        if isinstance(ref, int) or ref.strip().isdigit():
            setting_id = int(ref)
            match = [s for s in self.settings() if s.id == setting_id]
            if not match:
                raise UnknownDeviceError(f"no device setting with id {setting_id}; {self._known()}")
            return match[0]
        match = self.settings(ref)
        if not match:
            raise UnknownDeviceError(f"unknown device {ref!r}; {self._known()}")
        if len(match) > 1:
            listing = "; ".join(s.describe() for s in match)
            raise AmbiguousDeviceError(f"device {ref!r} has {len(match)} settings, pick one by id: {listing}")
        return match[0]

    def _known(self) -> str:
        names = sorted({s.name for s in self.settings()})
        return f"known devices: {', '.join(names)}" if names else "the store has no devices yet"

    def remove_setting(self, ref: str | int | StoredSetting) -> int:
        """Delete a setting and everything filed under it (rows, failures, validation runs, calibrations).

        Returns:
            The number of LUT rows deleted.
        """
        stored = self.setting(ref)
        with self._transaction() as conn:
            n_rows = conn.execute("SELECT COUNT(*) FROM lut_rows WHERE setting_id = ?", (stored.id,)).fetchone()[0]
            conn.execute("DELETE FROM device_settings WHERE id = ?", (stored.id,))
        logger.info("removed device setting %s (%d rows)", stored.describe(), n_rows)
        return int(n_rows)

    def _id(self, ref: str | int | StoredSetting) -> int:
        if isinstance(ref, int) and not isinstance(ref, bool):
            return ref
        return self.setting(ref).id

    # -- LUT rows ------------------------------------------------------------------------
    _UPSERT = (
        f"INSERT INTO lut_rows (setting_id, {', '.join(ROW_COLUMNS)}) VALUES ({', '.join('?' * (len(ROW_COLUMNS) + 1))}) "
        "ON CONFLICT (setting_id, block_key) DO UPDATE SET "
        + ", ".join(f"{c} = excluded.{c}" for c in ROW_COLUMNS[1:])
    )

    def put_row(
        self,
        setting_id: int,
        block_key: str,
        stats: Mapping[str, Any],
        provenance: Mapping[str, Any] | None = None,
    ) -> None:
        """Write one block's statistics (a re-timing replaces the old row) in its own transaction.

        A successful row also clears any recorded failure of that block.

        Args:
            setting_id: from :meth:`ensure_setting`.
            block_key: the OFA block key.
            stats: ``median_ms`` (required), ``mean_ms``, ``std_ms``, ``p10_ms``, ``p90_ms``, ``n``.
            provenance: ``agent_version``, ``measured_at``, ``temp_before_c``, ``temp_after_c``,
                ``sentinel_drift``, ``source`` (default "measured"), ``extra`` (a dict).

        Raises:
            ValueError: a bad key or value (negative, NaN, unknown field); the message names the key.
        """
        self.put_rows(setting_id, [(block_key, stats, provenance)])

    def put_rows(self, setting_id: int, rows: Iterable[RowInput], *, default_source: str = "measured") -> int:
        """Write many rows in one transaction: all of them or, on any bad row, none.

        Returns:
            The number of rows written.
        """
        normalized = [normalize_row(key, stats, prov, default_source=default_source) for key, stats, prov in rows]
        return self._put_normalized(setting_id, normalized)

    def import_rows(self, setting: DeviceSetting | int | str | StoredSetting, rows: Iterable[RowInput],
                    info: Mapping[str, Any] | None = None) -> tuple[int, int]:
        """Create the setting if new (a DeviceSetting) and write ``rows``, all in one transaction.

        Args:
            setting: a DeviceSetting, or an existing setting's name or id.
            rows: (block_key, stats, provenance) triples.
            info: device facts for a new setting.

        Returns:
            (setting id, number of rows written).
        """
        normalized = [normalize_row(key, stats, prov) for key, stats, prov in rows]
        existing = None if isinstance(setting, DeviceSetting) else self.setting(setting)
        with self._transaction() as conn:
            if existing is None:
                setting_id = self._ensure(conn, setting, info)  # type: ignore[arg-type]
            else:
                setting_id = existing.id
                self._check_setting_id(conn, setting_id)
            self._write_rows(conn, setting_id, normalized)
        return setting_id, len(normalized)

    def _put_normalized(self, setting_id: int, normalized: Sequence[tuple[Any, ...]]) -> int:
        with self._transaction() as conn:
            self._check_setting_id(conn, setting_id)
            self._write_rows(conn, setting_id, normalized)
        logger.debug("wrote %d rows for setting #%d", len(normalized), setting_id)
        return len(normalized)

    def _write_rows(self, conn: sqlite3.Connection, setting_id: int, normalized: Sequence[tuple[Any, ...]]) -> None:
        conn.executemany(self._UPSERT, [(setting_id, *row) for row in normalized])
        conn.executemany(
            "DELETE FROM failed_blocks WHERE setting_id = ? AND block_key = ?",
            [(setting_id, row[0]) for row in normalized],
        )

    @staticmethod
    def _check_setting_id(conn: sqlite3.Connection, setting_id: int) -> None:
        if conn.execute("SELECT 1 FROM device_settings WHERE id = ?", (setting_id,)).fetchone() is None:
            raise UnknownDeviceError(f"no device setting with id {setting_id!r}")

    def keys(self, setting_id: int | str | StoredSetting) -> set[str]:
        """The block keys the setting has rows for."""
        sid = self._id(setting_id)
        return {r[0] for r in self._query("SELECT block_key FROM lut_rows WHERE setting_id = ?", (sid,))}

    def rows(self, setting_id: int | str | StoredSetting) -> pd.DataFrame:
        """The setting's rows as a DataFrame with ``ROW_COLUMNS`` (``extra`` as a JSON string), sorted by key."""
        sid = self._id(setting_id)
        with self._lock:
            frame = pd.read_sql_query(
                f"SELECT {', '.join(ROW_COLUMNS)} FROM lut_rows WHERE setting_id = ? ORDER BY block_key",
                self._conn, params=(sid,),
            )
        frame["n"] = frame["n"].astype("Int64")
        return frame

    def table(self, setting_id: int | str | StoredSetting, stat: str = "median_ms") -> dict[str, float]:
        """``{block_key: stat}`` for the setting (the dict predictions are compiled from)."""
        if stat not in ("median_ms", "mean_ms", "p10_ms", "p90_ms"):
            raise ValueError(f"stat must be one of median_ms, mean_ms, p10_ms, p90_ms; got {stat!r}")
        sid = self._id(setting_id)
        return {k: v for k, v in self._query(f"SELECT block_key, {stat} FROM lut_rows WHERE setting_id = ?", (sid,))
                if v is not None}

    def count_rows(self) -> dict[int, int]:
        """``{setting_id: number of LUT rows}`` for every setting."""
        counts = dict(self._query("SELECT setting_id, COUNT(*) FROM lut_rows GROUP BY setting_id"))
        return {s.id: int(counts.get(s.id, 0)) for s in self.settings()}

    # -- failures ------------------------------------------------------------------------
    def record_failure(self, setting_id: int, block_key: str, reason: str, attempts: int | None = None) -> None:
        """Note that a block could not be timed (``attempts`` given, or one more than before)."""
        check_block_key(block_key)
        reason = " ".join(str(reason).split())  # one line
        with self._transaction() as conn:
            self._check_setting_id(conn, setting_id)
            conn.execute(
                "INSERT INTO failed_blocks (setting_id, block_key, reason, attempts, at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (setting_id, block_key) DO UPDATE SET reason = excluded.reason, at = excluded.at, "
                "attempts = COALESCE(?, failed_blocks.attempts + 1)",
                (setting_id, block_key, reason, attempts if attempts is not None else 1, _now(), attempts),
            )

    def failures(self, setting_id: int | str | StoredSetting) -> pd.DataFrame:
        """Blocks that failed for the setting: columns block_key, reason, attempts, at."""
        sid = self._id(setting_id)
        rows = self._query(
            "SELECT block_key, reason, attempts, at FROM failed_blocks WHERE setting_id = ? ORDER BY block_key", (sid,)
        )
        return pd.DataFrame(rows, columns=["block_key", "reason", "attempts", "at"])

    # -- validation runs -----------------------------------------------------------------
    def save_validation_run(
        self,
        setting_id: int,
        samples: pd.DataFrame | Iterable[Mapping[str, Any]],
        meta: Mapping[str, Any] | None = None,
    ) -> int:
        """Store one end-to-end validation run in one transaction.

        Args:
            setting_id: the setting the subnets were measured on.
            samples: rows with ``arch`` (a subnet dict), ``predicted_ms``, ``measured_ms`` and optionally
                ``repeat_ms`` (a second measurement); any other fields go to the sample's ``extra`` JSON.
            meta: free-form run facts (protocol, space, agent version, ...).

        Returns:
            The run id.
        """
        records = samples.to_dict("records") if isinstance(samples, pd.DataFrame) else [dict(s) for s in samples]
        if not records:
            raise ValueError("a validation run needs at least one sample")
        prepared = []
        for i, rec in enumerate(records):
            if "arch" not in rec:
                raise ValueError(f"validation sample {i} has no 'arch'")
            arch = rec.pop("arch")
            arch_json = arch if isinstance(arch, str) else json.dumps(_plain(arch))
            nums = [_opt_float(rec.pop(name, None)) for name in ("predicted_ms", "measured_ms", "repeat_ms")]
            prepared.append((i, arch_json, *nums, json.dumps(_plain(rec))))
        with self._transaction() as conn:
            self._check_setting_id(conn, setting_id)
            cur = conn.execute(
                "INSERT INTO validation_runs (setting_id, created_at, meta) VALUES (?, ?, ?)",
                (setting_id, _now(), json.dumps(_plain(dict(meta or {})))),
            )
            run_id = int(cur.lastrowid)
            conn.executemany(
                "INSERT INTO validation_samples (run_id, idx, arch, predicted_ms, measured_ms, repeat_ms, extra) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(run_id, *p) for p in prepared],
            )
        return run_id

    def validation_runs(self, setting_id: int | str | StoredSetting | None = None) -> pd.DataFrame:
        """Validation runs (all, or the setting's): columns id, setting_id, created_at, n_samples, meta (dict)."""
        sql = ("SELECT r.id, r.setting_id, r.created_at, COUNT(s.idx), r.meta FROM validation_runs r "
               "LEFT JOIN validation_samples s ON s.run_id = r.id")
        params: tuple[Any, ...] = ()
        if setting_id is not None:
            sql += " WHERE r.setting_id = ?"
            params = (self._id(setting_id),)
        rows = self._query(sql + " GROUP BY r.id ORDER BY r.id", params)
        frame = pd.DataFrame(rows, columns=["id", "setting_id", "created_at", "n_samples", "meta"])
        frame["meta"] = [json.loads(m) for m in frame["meta"]]
        return frame

    def validation_samples(self, run_ids: int | Sequence[int]) -> pd.DataFrame:
        """Samples of one or more runs: run_id, idx, arch (dict), predicted_ms, measured_ms, repeat_ms, extra (dict)."""
        ids = [run_ids] if isinstance(run_ids, int) else list(run_ids)
        if not ids:
            raise ValueError("validation_samples needs at least one run id")
        rows = self._query(
            "SELECT run_id, idx, arch, predicted_ms, measured_ms, repeat_ms, extra FROM validation_samples "
            f"WHERE run_id IN ({', '.join('?' * len(ids))}) ORDER BY run_id, idx", ids,
        )
        frame = pd.DataFrame(rows, columns=["run_id", "idx", "arch", "predicted_ms", "measured_ms", "repeat_ms", "extra"])
        frame["arch"] = [json.loads(a) for a in frame["arch"]]
        frame["extra"] = [json.loads(e) for e in frame["extra"]]
        for col in ("predicted_ms", "measured_ms", "repeat_ms"):
            frame[col] = frame[col].astype(float)
        return frame

    # -- calibrations --------------------------------------------------------------------
    def save_calibration(self, setting_id: int, calibration: Calibration,
                         cv_metrics: Mapping[str, Any] | None = None) -> int:
        """Store a fitted calibration (as JSON) for the setting; the newest one is the one used.

        Returns:
            The calibration's id.
        """
        metrics = dict(cv_metrics) if cv_metrics is not None else dict(calibration.cv_metrics)
        with self._transaction() as conn:
            self._check_setting_id(conn, setting_id)
            cur = conn.execute(
                "INSERT INTO calibrations (setting_id, model, created_at, cv_metrics) VALUES (?, ?, ?, ?)",
                (setting_id, calibration.to_json(), _now(), json.dumps(_plain(metrics))),
            )
        return int(cur.lastrowid)

    def calibration(self, setting_id: int | str | StoredSetting, space: str | None = None) -> Calibration | None:
        """The newest calibration of the setting (fitted for ``space`` when given), or None."""
        from lut.calibration import Calibration

        sid = self._id(setting_id)
        for (model,) in self._query(
            "SELECT model FROM calibrations WHERE setting_id = ? ORDER BY id DESC", (sid,)
        ):
            cal = Calibration.from_json(model)
            if space is None or cal.space is None or cal.space == space:
                return cal
        return None

    def calibrations(self, setting_id: int | str | StoredSetting) -> pd.DataFrame:
        """Every calibration of the setting: id, created_at, kind, cv_metrics (dict), newest last."""
        sid = self._id(setting_id)
        rows = self._query(
            "SELECT id, created_at, model, cv_metrics FROM calibrations WHERE setting_id = ? ORDER BY id", (sid,)
        )
        return pd.DataFrame(
            [(i, t, json.loads(m).get("kind"), json.loads(c)) for i, t, m, c in rows],
            columns=["id", "created_at", "kind", "cv_metrics"],
        )

    # -- predictions ---------------------------------------------------------------------
    def compiled(self, device: str | int | StoredSetting, space: str | SearchSpace, *,
                 calibrated: bool = True, stat: str = "median_ms") -> CompiledLut:
        """The device's LUT compiled for fast subnet prediction in ``space``.

        Args:
            device: a device name (must have one setting), an id, or a StoredSetting.
            space: a space name or SearchSpace.
            calibrated: attach the newest calibration fitted for this space, when one exists.
            stat: which statistic a block costs (default the median).
        """
        from lut.predict import CompiledLut
        from space import get_space

        stored = self.setting(device)
        space_obj = get_space(space)
        calibration = self.calibration(stored.id, space_obj.name) if calibrated else None
        return CompiledLut.from_table(self.table(stored.id, stat), space_obj, calibration=calibration,
                                      device=stored.name)


def _opt_float(value: Any) -> float | None:
    if value is None:
        return None
    out = float(value)
    return None if out != out else out  # NaN -> NULL


def _plain(value: Any) -> Any:
    """Turn numpy scalars/arrays and tuples into JSON-friendly values."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "to_arch"):
        return value.to_arch()
    return value
