"""The LUT store: every device setting's LUT rows and what was learned from them, in SQLite or PostgreSQL.

``LutStore(locator)`` opens a SQLite file (the embedded default) or a shared PostgreSQL
database (``postgresql://user@host:port/db``); both run the same SQL through SQLAlchemy Core,
have the same schema (:mod:`lut.schema`, versioned migrations) and give the same results.
``LutStore`` is the only code in lutnas that writes SQL. Every write is one transaction: a
failed import leaves nothing behind. The store is safe to share between threads (a connection
pool) and processes (SQLite: WAL and a busy timeout; PostgreSQL: row locks).

Shared profiling: the ``work_leases`` table holds the blocks of a setting still to be timed.
A profiling host *claims* a few of them (``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL,
inside ``BEGIN IMMEDIATE`` on SQLite), renews its leases while it works, and writing a block's
row deletes its lease in the same transaction. A host that dies stops renewing; its leases lapse
and another host claims those blocks. A block with a row is never handed out again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from lut._db import BUSY_TIMEOUT_MS, Database, open_database
from lut._rows import check_block_key, normalize_row
from lut.errors import CopyConflictError, UnknownDeviceError
from lut.schema import PREDICTED_SOURCE, ROW_COLUMNS, DeviceSetting
from lut.selectors import select_setting

if TYPE_CHECKING:
    import pandas as pd

    from space import SearchSpace

__all__ = ["LutStore", "StoredSetting", "SettingDump", "RowInput", "BUSY_TIMEOUT_MS", "SPACES_INFO_KEY", "copy_settings"]

logger = logging.getLogger(__name__)

# One row for put_rows: (block_key, stats, provenance).
RowInput = tuple[str, Mapping[str, Any], Mapping[str, Any] | None]

# The key of a setting's info under which record_space notes the spaces its rows were profiled for:
# {space name: the space file's document, or None for a registered space}.
SPACES_INFO_KEY = "spaces"
_SETTING_FIELDS = ("name", "runtime", "runtime_version", "threads", "precision", "model_format", "delegate")
_FLOAT_ROW_COLUMNS = ("median_ms", "mean_ms", "std_ms", "p10_ms", "p90_ms", "temp_before_c", "temp_after_c",
                      "sentinel_drift")
# A block still to be timed: no row, or only a predicted one (lut.transfer's few-shot rows are timed again).
_UNSTORED = ("NOT EXISTS (SELECT 1 FROM lut_rows r WHERE r.setting_id = l.setting_id "
             f"AND r.block_key = l.block_key AND r.source <> '{PREDICTED_SOURCE}')")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _sql(text: str, *expanding: str) -> sa.TextClause:
    """A SQL statement with ``:name`` parameters; ``expanding`` names take a list (``IN :keys``)."""
    clause = sa.text(text)
    if expanding:
        clause = clause.bindparams(*(sa.bindparam(name, expanding=True) for name in expanding))
    return clause


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

    @property
    def recorded_spaces(self) -> dict[str, Any]:
        """Space name -> document (None for a registered space) that :meth:`LutStore.record_space` noted for
        this setting's rows; empty when nothing was recorded (imported or older LUTs)."""
        spaces = self.info.get(SPACES_INFO_KEY)
        return dict(spaces) if isinstance(spaces, dict) else {}


class LutStore:
    """A LUT store: a SQLite file path or a ``postgresql://user@host:port/db`` URL.

    Use as a context manager or call :meth:`close`.

    Args:
        locator: where the store lives.
        create: make a new store when there is none (an absent path or 0-byte file, an empty
            database). Commands that only read pass False, so a typo never leaves a new file behind.

    Raises:
        StoreError: not a lutnas store (the file is then left exactly as it was), no store and
            ``create`` is false, a corrupted file, or an unreachable server.
        SchemaVersionError: the store has a schema version this lutnas cannot read.
    """

    def __init__(self, locator: str | Path, *, create: bool = True) -> None:
        self._db: Database = open_database(locator, create=create)
        self.path = self._db.label  # kept for messages: a path, or the URL without its password

    # -- connection plumbing -------------------------------------------------------------
    @property
    def engine_name(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._db.engine.dialect.name

    def _write(self):  # noqa: ANN202 - a context manager yielding a Connection
        return self._db.write()

    def _query(self, sql: str, params: Mapping[str, Any] | None = None, *expanding: str) -> list[tuple[Any, ...]]:
        with self._db.read() as conn:
            return [tuple(r) for r in conn.execute(_sql(sql, *expanding), dict(params or {}))]

    def close(self) -> None:
        """Close every pooled connection (idempotent)."""
        self._db.dispose()

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
        with self._write() as conn:
            return self._ensure(conn, setting, info)

    def _ensure(self, conn: Connection, setting: DeviceSetting, info: Mapping[str, Any] | None,
                created_at: str | None = None) -> int:
        values = {f: getattr(setting, f) for f in _SETTING_FIELDS}
        where = " AND ".join(f"{f} = :{f}" for f in _SETTING_FIELDS)
        select = _sql(f"SELECT id, info FROM device_settings WHERE {where}{self._db.for_update}")
        row = conn.execute(select, values).first()
        if row is None:
            # Several hosts may add the same setting at once: the loser of the race reads the winner's row.
            new_id = conn.execute(_sql(
                f"INSERT INTO device_settings ({', '.join(_SETTING_FIELDS)}, info, created_at) "
                f"VALUES ({', '.join(':' + f for f in _SETTING_FIELDS)}, :info, :created_at) "
                "ON CONFLICT DO NOTHING RETURNING id"),
                {**values, "info": json.dumps(dict(info or {})), "created_at": created_at or _now()},
            ).scalar()
            if new_id is not None:
                logger.info("new device setting #%d %s", new_id, setting.describe())
                return int(new_id)
            row = conn.execute(select, values).one()
        if info:
            merged = {**json.loads(row[1]), **dict(info)}
            conn.execute(_sql("UPDATE device_settings SET info = :info WHERE id = :id"),
                         {"info": json.dumps(merged), "id": row[0]})
        return int(row[0])

    def record_space(self, setting_id: int, name: str, doc: Mapping[str, Any] | None = None) -> None:
        """Note in the setting's ``info`` that rows were profiled for the space ``name``, beside those noted before.

        Args:
            setting_id: from :meth:`ensure_setting`.
            name: the space's name.
            doc: the space file's document (``space.spec.space_to_dict``) for a space no registry knows, so
                readers find the space again without its file; None for a registered space.
        """
        with self._write() as conn:
            self._check_setting_id(conn, setting_id)
            row = conn.execute(_sql(f"SELECT info FROM device_settings WHERE id = :id{self._db.for_update}"),
                               {"id": setting_id}).one()
            info = json.loads(row[0])
            spaces = info.get(SPACES_INFO_KEY)
            info[SPACES_INFO_KEY] = {**(spaces if isinstance(spaces, dict) else {}), name: _plain(doc)}
            conn.execute(_sql("UPDATE device_settings SET info = :info WHERE id = :id"),
                         {"info": json.dumps(info), "id": setting_id})

    def settings(self, name: str | None = None) -> list[StoredSetting]:
        """Every stored setting (those called ``name`` when given), ordered by id."""
        sql = f"SELECT id, {', '.join(_SETTING_FIELDS)}, info, created_at FROM device_settings"
        params: dict[str, Any] = {}
        if name is not None:
            sql += " WHERE name = :name"
            params = {"name": name}
        out = []
        for row in self._query(sql + " ORDER BY id", params):
            setting = DeviceSetting(**dict(zip(_SETTING_FIELDS, row[1:8])))
            out.append(StoredSetting(id=int(row[0]), setting=setting, info=json.loads(row[8]), created_at=row[9]))
        return out

    def setting(self, ref: str | int | StoredSetting) -> StoredSetting:
        """The setting named ``ref``: a device name, an id (or digit string), or a selector like ``cpu:int8``.

        See :mod:`lut.selectors` for the selector grammar.

        Raises:
            UnknownDeviceError: nothing matches; the message lists the known devices.
            AmbiguousDeviceError: several settings match; the message lists a selector for each.
        """
        if isinstance(ref, StoredSetting):
            return ref
        if isinstance(ref, bool) or not isinstance(ref, (str, int)):
            raise TypeError(f"device must be a name or an id, got {ref!r}")
        return select_setting(self.settings(), ref)

    def remove_setting(self, ref: str | int | StoredSetting) -> int:
        """Delete a setting and everything filed under it (rows, failures, validation runs, calibrations).

        Returns:
            The number of LUT rows deleted.
        """
        stored = self.setting(ref)
        with self._write() as conn:
            n_rows = self._delete_setting(conn, stored.id)
        logger.info("removed device setting %s (%d rows)", stored.describe(), n_rows)
        return n_rows

    @staticmethod
    def _delete_setting(conn: Connection, setting_id: int) -> int:
        n_rows = conn.execute(_sql("SELECT COUNT(*) FROM lut_rows WHERE setting_id = :sid"), {"sid": setting_id})
        count = int(n_rows.scalar() or 0)
        conn.execute(_sql("DELETE FROM device_settings WHERE id = :sid"), {"sid": setting_id})
        return count

    def _id(self, ref: str | int | StoredSetting) -> int:
        if isinstance(ref, int) and not isinstance(ref, bool):
            return ref
        return self.setting(ref).id

    # -- LUT rows ------------------------------------------------------------------------
    _UPSERT = _sql(
        f"INSERT INTO lut_rows (setting_id, {', '.join(ROW_COLUMNS)}) "
        f"VALUES (:setting_id, {', '.join(':' + c for c in ROW_COLUMNS)}) "
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

        A successful row also clears any recorded failure of that block and its work lease.

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

    _INSERT_NEW = _sql(
        f"INSERT INTO lut_rows (setting_id, {', '.join(ROW_COLUMNS)}) "
        f"VALUES (:setting_id, {', '.join(':' + c for c in ROW_COLUMNS)}) "
        "ON CONFLICT (setting_id, block_key) DO NOTHING"
    )

    def put_claimed_row(self, setting_id: int, block_key: str, stats: Mapping[str, Any],
                        provenance: Mapping[str, Any] | None, holder: str) -> bool:
        """Write a row a profiling host timed under its work lease, unless another host's row got there first.

        Hosts sharing a setting can time one block twice: a host cut off from the store for longer than
        its lease comes back with results for blocks another host has taken over since. The row already
        stored stays; the late one is not written. The row names its host in ``extra["host"]``, which
        must be ``holder``; a row of ``holder``'s own (a re-timing after a sentinel drift) and a predicted
        row are replaced, as :meth:`put_row` would.

        Returns:
            Whether the row was written (False: another host's measured row is there).

        Raises:
            ValueError: a bad key or value, or ``extra["host"]`` is not ``holder``.
        """
        row = normalize_row(block_key, stats, provenance)
        params = {"setting_id": setting_id, **dict(zip(ROW_COLUMNS, row))}
        host = json.loads(params["extra"] or "{}").get("host")
        if host != holder:
            raise ValueError(f"extra['host'] must be the holder {holder!r}, got {host!r}")
        with self._write() as conn:
            self._check_setting_id(conn, setting_id)
            there = conn.execute(_sql("SELECT source, extra FROM lut_rows WHERE setting_id = :sid AND block_key = :key"
                                      + self._db.for_update), {"sid": setting_id, "key": row[0]}).first()
            if there is None:
                # Two hosts may both find no row: the second insert does nothing, and that host's row is the late one.
                if conn.execute(self._INSERT_NEW, params).rowcount == 0:
                    return False
            elif there[0] != PREDICTED_SOURCE and json.loads(there[1] or "{}").get("host") != holder:
                return False
            else:
                conn.execute(self._UPSERT, params)
            done = {"sid": setting_id, "key": row[0]}
            conn.execute(_sql("DELETE FROM failed_blocks WHERE setting_id = :sid AND block_key = :key"), done)
            conn.execute(_sql("DELETE FROM work_leases WHERE setting_id = :sid AND block_key = :key"), done)
        return True

    def put_rows(self, setting_id: int, rows: Iterable[RowInput], *, default_source: str = "measured") -> int:
        """Write many rows in one transaction: all of them or, on any bad row, none.

        Returns:
            The number of rows written.
        """
        normalized = [normalize_row(key, stats, prov, default_source=default_source) for key, stats, prov in rows]
        with self._write() as conn:
            self._check_setting_id(conn, setting_id)
            self._write_rows(conn, setting_id, normalized)
        logger.debug("wrote %d rows for setting #%d", len(normalized), setting_id)
        return len(normalized)

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
        with self._write() as conn:
            if existing is None:
                setting_id = self._ensure(conn, setting, info)  # type: ignore[arg-type]
            else:
                setting_id = existing.id
                self._check_setting_id(conn, setting_id)
            self._write_rows(conn, setting_id, normalized)
        return setting_id, len(normalized)

    def _write_rows(self, conn: Connection, setting_id: int, normalized: Sequence[tuple[Any, ...]]) -> None:
        if not normalized:
            return
        conn.execute(self._UPSERT, [{"setting_id": setting_id, **dict(zip(ROW_COLUMNS, row))} for row in normalized])
        done = [{"sid": setting_id, "key": row[0]} for row in normalized]
        conn.execute(_sql("DELETE FROM failed_blocks WHERE setting_id = :sid AND block_key = :key"), done)
        conn.execute(_sql("DELETE FROM work_leases WHERE setting_id = :sid AND block_key = :key"), done)

    @staticmethod
    def _check_setting_id(conn: Connection, setting_id: int) -> None:
        found = conn.execute(_sql("SELECT 1 FROM device_settings WHERE id = :sid"), {"sid": setting_id}).first()
        if found is None:
            raise UnknownDeviceError(f"no device setting with id {setting_id!r}")

    def keys(self, setting_id: int | str | StoredSetting) -> set[str]:
        """The block keys the setting has rows for."""
        sid = self._id(setting_id)
        return {r[0] for r in self._query("SELECT block_key FROM lut_rows WHERE setting_id = :sid", {"sid": sid})}

    def rows(self, setting_id: int | str | StoredSetting) -> pd.DataFrame:
        """The setting's rows as a DataFrame with ``ROW_COLUMNS`` (``extra`` as a JSON string), sorted by key."""
        import pandas as pd  # here, not at import: a search never builds a frame

        sid = self._id(setting_id)
        rows = self._query(
            f"SELECT {', '.join(ROW_COLUMNS)} FROM lut_rows WHERE setting_id = :sid ORDER BY block_key", {"sid": sid}
        )
        frame = pd.DataFrame(rows, columns=list(ROW_COLUMNS))
        for col in _FLOAT_ROW_COLUMNS:
            frame[col] = frame[col].astype(float)
        frame["n"] = frame["n"].astype("Int64")
        return frame

    def table(self, setting_id: int | str | StoredSetting, stat: str = "median_ms") -> dict[str, float]:
        """``{block_key: stat}`` for the setting (the dict predictions are compiled from)."""
        if stat not in ("median_ms", "mean_ms", "p10_ms", "p90_ms"):
            raise ValueError(f"stat must be one of median_ms, mean_ms, p10_ms, p90_ms; got {stat!r}")
        sid = self._id(setting_id)
        rows = self._query(f"SELECT block_key, {stat} FROM lut_rows WHERE setting_id = :sid", {"sid": sid})
        return {k: v for k, v in rows if v is not None}

    def count_rows(self, source: str | None = None) -> dict[int, int]:
        """``{setting_id: number of LUT rows}`` for every setting (only rows of ``source``, when given)."""
        if source is None:
            rows = self._query("SELECT setting_id, COUNT(*) FROM lut_rows GROUP BY setting_id")
        else:
            rows = self._query("SELECT setting_id, COUNT(*) FROM lut_rows WHERE source = :source GROUP BY setting_id",
                               {"source": source})
        counts = dict(rows)
        return {s.id: int(counts.get(s.id, 0)) for s in self.settings()}

    # -- failures ------------------------------------------------------------------------
    def record_failure(self, setting_id: int, block_key: str, reason: str, attempts: int | None = None) -> None:
        """Note that a block could not be timed (``attempts`` given, or one more than before).

        The block's work lease goes too: no other host of this profile retries it (a rerun does).
        """
        check_block_key(block_key)
        reason = " ".join(str(reason).split())  # one line
        with self._write() as conn:
            self._check_setting_id(conn, setting_id)
            conn.execute(_sql(
                "INSERT INTO failed_blocks (setting_id, block_key, reason, attempts, at) "
                "VALUES (:sid, :key, :reason, :first, :at) "
                "ON CONFLICT (setting_id, block_key) DO UPDATE SET reason = excluded.reason, at = excluded.at, "
                "attempts = COALESCE(CAST(:attempts AS INTEGER), failed_blocks.attempts + 1)"),
                {"sid": setting_id, "key": block_key, "reason": reason, "first": attempts if attempts is not None else 1,
                 "at": _now(), "attempts": attempts},
            )
            conn.execute(_sql("DELETE FROM work_leases WHERE setting_id = :sid AND block_key = :key"),
                         {"sid": setting_id, "key": block_key})

    def failures(self, setting_id: int | str | StoredSetting) -> pd.DataFrame:
        """Blocks that failed for the setting: columns block_key, reason, attempts, at."""
        import pandas as pd  # here, not at import: a search never builds a frame

        sid = self._id(setting_id)
        rows = self._query(
            "SELECT block_key, reason, attempts, at FROM failed_blocks WHERE setting_id = :sid ORDER BY block_key",
            {"sid": sid},
        )
        return pd.DataFrame(rows, columns=["block_key", "reason", "attempts", "at"])

    # -- work leases (several profiling hosts on one setting) ----------------------------
    def seed_work(self, setting_id: int, block_keys: Sequence[str]) -> int:
        """Put the blocks of ``block_keys`` without a measured row on the setting's work list (kept in order).

        Blocks already listed keep their lease. Returns how many blocks were added.
        """
        with self._write() as conn:
            self._check_setting_id(conn, setting_id)
            params = {"sid": setting_id}
            stored = {r[0] for r in conn.execute(_sql("SELECT block_key FROM lut_rows WHERE setting_id = :sid "
                                                      "AND source <> :predicted"), {**params, "predicted": PREDICTED_SOURCE})}
            listed = {r[0] for r in conn.execute(_sql("SELECT block_key FROM work_leases WHERE setting_id = :sid"),
                                                 params)}
            new = [{"sid": setting_id, "key": k, "pos": i} for i, k in enumerate(block_keys)
                   if k not in stored and k not in listed]
            if new:
                conn.execute(_sql("INSERT INTO work_leases (setting_id, block_key, position) VALUES (:sid, :key, :pos) "
                                  "ON CONFLICT DO NOTHING"), new)
        return len(new)

    def claim_work(self, setting_id: int, holder: str, block_keys: Sequence[str], n: int,
                   lease_s: float) -> tuple[list[str], int]:
        """Lease up to ``n`` unstored, unheld (or lapsed) blocks of ``block_keys`` to ``holder``.

        Returns:
            (the claimed keys in plan order, how many of ``block_keys`` other holders still lease).
        """
        if n < 1 or lease_s <= 0:
            raise ValueError(f"claim_work needs n >= 1 and lease_s > 0, got n={n}, lease_s={lease_s}")
        now = self._db.now_sql
        params = {"sid": setting_id, "holder": holder, "keys": list(block_keys), "n": n, "ttl": float(lease_s)}
        with self._write() as conn:
            claimed = [r[0] for r in conn.execute(_sql(
                "SELECT l.block_key FROM work_leases l WHERE l.setting_id = :sid AND l.block_key IN :keys "
                f"AND (l.holder IS NULL OR l.expires_at < {now}) AND {_UNSTORED} "
                f"ORDER BY l.position LIMIT :n{self._db.skip_locked}", "keys"), params)]
            if claimed:
                conn.execute(_sql(
                    f"UPDATE work_leases SET holder = :holder, expires_at = {now} + :ttl "
                    "WHERE setting_id = :sid AND block_key IN :claimed", "claimed"), {**params, "claimed": claimed})
            others = conn.execute(_sql(
                "SELECT COUNT(*) FROM work_leases l WHERE l.setting_id = :sid AND l.block_key IN :keys "
                f"AND l.holder IS NOT NULL AND l.holder <> :holder AND l.expires_at >= {now} AND {_UNSTORED}",
                "keys"), params).scalar()
        return claimed, int(others or 0)

    def renew_leases(self, holder: str, lease_s: float) -> int:
        """Push back the deadline of every lease ``holder`` has; returns how many it has."""
        with self._write() as conn:
            result = conn.execute(_sql(f"UPDATE work_leases SET expires_at = {self._db.now_sql} + :ttl "
                                       "WHERE holder = :holder"), {"holder": holder, "ttl": float(lease_s)})
        return int(result.rowcount or 0)

    def lease_holders(self, setting_id: int) -> list[str]:
        """The holders of the setting's leases (lapsed ones included)."""
        rows = self._query("SELECT DISTINCT holder FROM work_leases WHERE setting_id = :sid AND holder IS NOT NULL "
                           "ORDER BY holder", {"sid": setting_id})
        return [r[0] for r in rows]

    def release_leases(self, holder: str) -> int:
        """Give up every lease ``holder`` has (its blocks go back to the list at once); returns how many."""
        with self._write() as conn:
            result = conn.execute(_sql("UPDATE work_leases SET holder = NULL, expires_at = NULL "
                                       "WHERE holder = :holder"), {"holder": holder})
        return int(result.rowcount or 0)

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
        # A DataFrame gives its rows as records (duck-typed: pandas is not loaded for this).
        records = samples.to_dict("records") if hasattr(samples, "to_dict") else [dict(s) for s in samples]
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
        with self._write() as conn:
            self._check_setting_id(conn, setting_id)
            return self._insert_run(conn, setting_id, _now(), json.dumps(_plain(dict(meta or {}))), prepared)

    @staticmethod
    def _insert_run(conn: Connection, setting_id: int, created_at: str, meta_json: str,
                    samples: Sequence[tuple[Any, ...]]) -> int:
        run_id = int(conn.execute(_sql(
            "INSERT INTO validation_runs (setting_id, created_at, meta) VALUES (:sid, :at, :meta) RETURNING id"),
            {"sid": setting_id, "at": created_at, "meta": meta_json}).scalar_one())
        names = ("idx", "arch", "predicted_ms", "measured_ms", "repeat_ms", "extra")
        if samples:
            conn.execute(_sql(
                f"INSERT INTO validation_samples (run_id, {', '.join(names)}) "
                f"VALUES (:run_id, {', '.join(':' + n for n in names)})"),
                [{"run_id": run_id, **dict(zip(names, s))} for s in samples])
        return run_id

    def validation_runs(self, setting_id: int | str | StoredSetting | None = None) -> pd.DataFrame:
        """Validation runs (all, or the setting's): columns id, setting_id, created_at, n_samples, meta (dict)."""
        import pandas as pd  # here, not at import: a search never builds a frame

        sql = ("SELECT r.id, r.setting_id, r.created_at, COUNT(s.idx), r.meta FROM validation_runs r "
               "LEFT JOIN validation_samples s ON s.run_id = r.id")
        params: dict[str, Any] = {}
        if setting_id is not None:
            sql += " WHERE r.setting_id = :sid"
            params = {"sid": self._id(setting_id)}
        rows = self._query(sql + " GROUP BY r.id ORDER BY r.id", params)
        frame = pd.DataFrame(rows, columns=["id", "setting_id", "created_at", "n_samples", "meta"])
        frame["meta"] = [json.loads(m) for m in frame["meta"]]
        return frame

    def validation_samples(self, run_ids: int | Sequence[int]) -> pd.DataFrame:
        """Samples of one or more runs: run_id, idx, arch (dict), predicted_ms, measured_ms, repeat_ms, extra (dict)."""
        import pandas as pd  # here, not at import: a search never builds a frame

        ids = [run_ids] if isinstance(run_ids, int) else list(run_ids)
        if not ids:
            raise ValueError("validation_samples needs at least one run id")
        rows = self._query(
            "SELECT run_id, idx, arch, predicted_ms, measured_ms, repeat_ms, extra FROM validation_samples "
            "WHERE run_id IN :ids ORDER BY run_id, idx", {"ids": [int(i) for i in ids]}, "ids",
        )
        frame = pd.DataFrame(rows, columns=["run_id", "idx", "arch", "predicted_ms", "measured_ms", "repeat_ms", "extra"])
        frame["arch"] = [json.loads(a) for a in frame["arch"]]
        frame["extra"] = [json.loads(e) for e in frame["extra"]]
        for col in ("predicted_ms", "measured_ms", "repeat_ms"):
            frame[col] = frame[col].astype(float)
        return frame

    # -- calibrations --------------------------------------------------------------------
    # The store keeps each calibration as the JSON document the calibration wrote; building a model from it
    # is lut.calibration's job (Calibration.from_store).
    def save_calibration(self, setting_id: int, calibration: Mapping[str, Any] | str | Any,
                         cv_metrics: Mapping[str, Any] | None = None) -> int:
        """Store a fitted calibration's JSON document for the setting; the newest one is the one used.

        Args:
            setting_id: the setting's id.
            calibration: the document (a mapping or its JSON text), or anything with ``to_json()``.
            cv_metrics: its cross-validated metrics (default: the document's ``cv_metrics``).

        Returns:
            The calibration's id.
        """
        if isinstance(calibration, str):
            model_json = calibration
        elif isinstance(calibration, Mapping):
            model_json = json.dumps(_plain(dict(calibration)))
        else:
            model_json = calibration.to_json()
        if cv_metrics is None:
            cv_metrics = json.loads(model_json).get("cv_metrics") or {}
        with self._write() as conn:
            self._check_setting_id(conn, setting_id)
            return self._insert_calibration(conn, setting_id, model_json, _now(), json.dumps(_plain(dict(cv_metrics))))

    @staticmethod
    def _insert_calibration(conn: Connection, setting_id: int, model_json: str, created_at: str,
                            metrics_json: str) -> int:
        return int(conn.execute(_sql(
            "INSERT INTO calibrations (setting_id, model, created_at, cv_metrics) "
            "VALUES (:sid, :model, :at, :metrics) RETURNING id"),
            {"sid": setting_id, "model": model_json, "at": created_at, "metrics": metrics_json}).scalar_one())

    def calibration_docs(self, setting_id: int | str | StoredSetting, space: str | None = None) -> list[dict[str, Any]]:
        """The setting's calibration documents, newest first (those fitted for ``space`` or any, when given)."""
        sid = self._id(setting_id)
        docs = [json.loads(model) for (model,) in self._query(
            "SELECT model FROM calibrations WHERE setting_id = :sid ORDER BY id DESC", {"sid": sid})]
        return [d for d in docs if space is None or d.get("space") is None or d.get("space") == space]

    def calibrations(self, setting_id: int | str | StoredSetting) -> pd.DataFrame:
        """Every calibration of the setting: id, created_at, kind, cv_metrics (dict), newest last."""
        import pandas as pd  # here, not at import: a search never builds a frame

        sid = self._id(setting_id)
        rows = self._query(
            "SELECT id, created_at, model, cv_metrics FROM calibrations WHERE setting_id = :sid ORDER BY id",
            {"sid": sid},
        )
        return pd.DataFrame(
            [(i, t, json.loads(m).get("kind"), json.loads(c)) for i, t, m, c in rows],
            columns=["id", "created_at", "kind", "cv_metrics"],
        )


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


@dataclass(frozen=True)
class SettingDump:
    """Everything a store files under one device setting, as plain values (what ``lut copy`` moves)."""

    stored: StoredSetting
    rows: list[tuple[Any, ...]]  # ROW_COLUMNS order
    failures: list[tuple[Any, ...]]  # block_key, reason, attempts, at
    calibrations: list[tuple[Any, ...]]  # model, created_at, cv_metrics
    runs: list[tuple[str, str, list[tuple[Any, ...]]]]  # created_at, meta, samples (idx, arch, 3 floats, extra)


def _dump(store: LutStore, conn: Connection, stored: StoredSetting) -> SettingDump:
    def fetch(sql: str, **params: Any) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in conn.execute(_sql(sql), {"sid": stored.id, **params})]

    runs = []
    for run_id, created_at, meta in fetch("SELECT id, created_at, meta FROM validation_runs WHERE setting_id = :sid "
                                          "ORDER BY id"):
        samples = fetch("SELECT idx, arch, predicted_ms, measured_ms, repeat_ms, extra FROM validation_samples "
                        "WHERE run_id = :run ORDER BY idx", run=run_id)
        runs.append((created_at, meta, samples))
    return SettingDump(
        stored=stored,
        rows=fetch(f"SELECT {', '.join(ROW_COLUMNS)} FROM lut_rows WHERE setting_id = :sid ORDER BY block_key"),
        failures=fetch("SELECT block_key, reason, attempts, at FROM failed_blocks WHERE setting_id = :sid "
                       "ORDER BY block_key"),
        calibrations=fetch("SELECT model, created_at, cv_metrics FROM calibrations WHERE setting_id = :sid ORDER BY id"),
        runs=runs,
    )


def copy_settings(src: LutStore, dst: LutStore, devices: Sequence[str | int] | None = None, *,
                  replace: bool = False) -> list[tuple[StoredSetting, int]]:
    """Copy device settings with their rows, failures, calibrations and validation runs from ``src`` to ``dst``.

    All or nothing: every setting is written in one transaction of ``dst``, and a setting that
    ``dst`` already has stops the copy before anything is written (unless ``replace``, which
    swaps the destination's setting for the source's in that same transaction).

    Args:
        src: the store to read.
        dst: the store to write (may be on the other engine).
        devices: names or ids in ``src`` (default: every setting).
        replace: overwrite settings ``dst`` already has.

    Returns:
        (source setting, its id in ``dst``) per copied setting.

    Raises:
        CopyConflictError: ``dst`` already has one of the settings and ``replace`` is false.
        UnknownDeviceError, AmbiguousDeviceError: a device of ``devices`` does not name one setting of ``src``.
    """
    if src.path == dst.path:
        raise CopyConflictError(f"source and destination are the same store ({src.path})")
    chosen = src.settings() if devices is None else [src.setting(d) for d in dict.fromkeys(devices)]
    with src._db.snapshot() as conn:
        dumps = [_dump(src, conn, s) for s in chosen]
    out = []
    with dst._write() as conn:
        for dump in dumps:
            out.append((dump.stored, _load(dst, conn, dump, replace)))
    for stored, new_id in out:
        logger.info("copied %s from %s to %s as #%d", stored.describe(), src.path, dst.path, new_id)
    return out


def _load(dst: LutStore, conn: Connection, dump: SettingDump, replace: bool) -> int:
    fields = {f: getattr(dump.stored.setting, f) for f in _SETTING_FIELDS}
    where = " AND ".join(f"{f} = :{f}" for f in _SETTING_FIELDS)
    existing = conn.execute(_sql(f"SELECT id FROM device_settings WHERE {where}{dst._db.for_update}"), fields).scalar()
    if existing is not None:
        if not replace:
            raise CopyConflictError(f"{dst.path} already has {dump.stored.setting.describe()} (#{existing}); "
                                    "nothing was copied (remove it first, or replace it)")
        LutStore._delete_setting(conn, int(existing))
    sid = dst._ensure(conn, dump.stored.setting, dump.stored.info, created_at=dump.stored.created_at)
    if dump.rows:
        conn.execute(LutStore._UPSERT, [{"setting_id": sid, **dict(zip(ROW_COLUMNS, r))} for r in dump.rows])
    if dump.failures:
        conn.execute(_sql("INSERT INTO failed_blocks (setting_id, block_key, reason, attempts, at) "
                          "VALUES (:sid, :key, :reason, :attempts, :at)"),
                     [{"sid": sid, "key": k, "reason": r, "attempts": a, "at": t} for k, r, a, t in dump.failures])
    for model, created_at, metrics in dump.calibrations:
        LutStore._insert_calibration(conn, sid, model, created_at, metrics)
    for created_at, meta, samples in dump.runs:
        LutStore._insert_run(conn, sid, created_at, meta, samples)
    return sid
