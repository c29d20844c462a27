"""The store's schema, its versioned migrations, and the device setting a LUT is keyed by.

Tables (both engines, same columns):

* ``schema_version``: one row, the number of migrations applied to this store.
* ``device_settings``: what makes two measurements comparable (name, runtime and its
  version, threads, precision, model format, delegate) plus a JSON ``info`` blob.
* ``lut_rows``: one row per (setting, block key): statistics in ms and provenance.
* ``failed_blocks``: blocks a profiler could not time, with the reason and attempt count.
* ``validation_runs`` / ``validation_samples``: end-to-end checks of LUT predictions.
* ``calibrations``: fitted corrections per setting, as JSON coefficients (never pickle).
* ``work_leases``: blocks of a setting still to be timed, and which profiling host holds each
  one until when (several hosts split one setting's work through it).

Migrations: the schema is built by an ordered list of steps, and a store's ``schema_version``
says how many have run. Opening a store runs the missing steps in one transaction (under a lock
on PostgreSQL, inside ``BEGIN IMMEDIATE`` on SQLite), so every store of one lutnas version has
the same schema. To change the schema, add one function after the last step below::

    @migration(3)
    def _lut_rows_predicted(conn: Connection) -> None:
        add_column(conn, "lut_rows", sa.Column("predicted", sa.Integer, nullable=False, server_default="0"))

Steps receive a SQLAlchemy connection inside the transaction; they must work on SQLite and
PostgreSQL (use SQLAlchemy types and :func:`add_column`/``MetaData.create_all``, not
engine-specific SQL), and never edit an earlier step: stores in the field already ran it.
A store whose version is newer than this lutnas knows is refused, not guessed at.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.schema import CreateColumn

__all__ = [
    "SCHEMA_VERSION",
    "MIGRATIONS",
    "DeviceSetting",
    "STAT_COLUMNS",
    "PROVENANCE_COLUMNS",
    "ROW_COLUMNS",
    "SOURCES",
    "PREDICTED_SOURCE",
    "add_column",
    "migration",
]

# Statistics of one block's latency, in ms (n: number of timed runs).
STAT_COLUMNS: tuple[str, ...] = ("median_ms", "mean_ms", "std_ms", "p10_ms", "p90_ms", "n")
# Where a row came from.
PROVENANCE_COLUMNS: tuple[str, ...] = (
    "agent_version", "measured_at", "temp_before_c", "temp_after_c", "sentinel_drift", "source", "extra",
)
# The columns of a LUT row as exported (CSV/Parquet) and returned by ``LutStore.rows``.
ROW_COLUMNS: tuple[str, ...] = ("block_key", *STAT_COLUMNS, *PROVENANCE_COLUMNS)
# ``lut_rows.source`` of a row a few-shot transfer filled (lut.transfer): predicted, not timed.
PREDICTED_SOURCE = "predicted"
# Known values of ``lut_rows.source`` (others are accepted and kept as given).
SOURCES: tuple[str, ...] = ("measured", PREDICTED_SOURCE, "ofa-yaml", "nsganetv2-yaml", "csv", "parquet")

@dataclass(frozen=True)
class DeviceSetting:
    """What makes two latency measurements comparable; a LUT is keyed by one of these.

    Two settings are the same setting exactly when every field is equal.
    """

    name: str  # the device's name, as the CLI refers to it (e.g. "note10", "pi5")
    runtime: str  # "onnxruntime", "tflite", "torch", ... ("unknown" for imported tables)
    runtime_version: str = ""  # the runtime's version string ("" when unknown)
    threads: int = 0  # intra-op threads (0 when unknown)
    precision: str = "fp32"  # "fp32", "fp16", "int8", ...
    model_format: str = ""  # "onnx", "tflite", "torchscript", ... ("" when unknown)
    delegate: str = ""  # delegate or execution provider ("" for the runtime's default CPU path)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"DeviceSetting name must be a non-empty string, got {self.name!r}")
        if self.name.strip().isdigit():
            raise ValueError(f"DeviceSetting name must not be all digits (digits refer to setting ids), got {self.name!r}")
        if not isinstance(self.runtime, str) or not self.runtime:
            raise ValueError(f"DeviceSetting runtime must be a non-empty string, got {self.runtime!r}")
        if not isinstance(self.threads, int) or isinstance(self.threads, bool) or self.threads < 0:
            raise ValueError(f"DeviceSetting threads must be an int >= 0, got {self.threads!r}")
        for name in ("runtime_version", "precision", "model_format", "delegate"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"DeviceSetting {name} must be a string, got {getattr(self, name)!r}")

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict."""
        return asdict(self)

    def describe(self) -> str:
        """One line for humans: ``pi5: onnxruntime 1.17.1, 1 thread, fp32, onnx``."""
        parts = [f"{self.runtime} {self.runtime_version}".strip()]
        parts.append(f"{self.threads} thread{'s' if self.threads != 1 else ''}" if self.threads else "threads unknown")
        parts.append(self.precision)
        if self.model_format:
            parts.append(self.model_format)
        if self.delegate:
            parts.append(f"delegate {self.delegate}")
        return f"{self.name}: {', '.join(parts)}"


# -- migrations ------------------------------------------------------------------------------

Migration = Callable[[Connection], None]
_STEPS: list[Migration] = []  # filled by @migration below, in version order, at import only


def migration(version: int) -> Callable[[Migration], Migration]:
    """Register the step that takes a store from ``version - 1`` to ``version`` (versions are consecutive)."""

    def register(step: Migration) -> Migration:
        if version != len(_STEPS) + 1:
            raise RuntimeError(f"migration {step.__name__} is numbered {version}; the next one must be {len(_STEPS) + 1}")
        _STEPS.append(step)
        return step

    return register


def add_column(conn: Connection, table: str, column: sa.Column) -> None:
    """``ALTER TABLE table ADD COLUMN column``, the column's DDL rendered for the connection's engine."""
    ddl = CreateColumn(column).compile(dialect=conn.dialect)
    conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN {ddl}"))


def _real(name: str, **kw: Any) -> sa.Column:
    """A double-precision column (SQLite REAL, PostgreSQL DOUBLE PRECISION)."""
    return sa.Column(name, sa.Double(), **kw)


def _json_text(name: str) -> sa.Column:
    return sa.Column(name, sa.Text, nullable=False, server_default="{}")


@migration(1)
def _base_tables(conn: Connection) -> None:
    """Settings, LUT rows, failures, validation runs and calibrations (the first lutnas schema)."""
    md = sa.MetaData()
    sa.Table("schema_version", md, sa.Column("version", sa.Integer, nullable=False))
    sa.Table(
        "device_settings", md,
        sa.Column("id", sa.Integer, primary_key=True),
        *(sa.Column(c, sa.Text, nullable=False) for c in ("name", "runtime", "runtime_version")),
        sa.Column("threads", sa.Integer, nullable=False),
        *(sa.Column(c, sa.Text, nullable=False) for c in ("precision", "model_format", "delegate")),
        _json_text("info"),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.UniqueConstraint("name", "runtime", "runtime_version", "threads", "precision", "model_format", "delegate"),
    )

    def setting_fk() -> sa.ForeignKey:
        return sa.ForeignKey("device_settings.id", ondelete="CASCADE")

    sa.Table(
        "lut_rows", md,
        sa.Column("setting_id", sa.Integer, setting_fk(), nullable=False),
        sa.Column("block_key", sa.Text, nullable=False),
        _real("median_ms", nullable=False),
        *(_real(c) for c in ("mean_ms", "std_ms", "p10_ms", "p90_ms")),
        sa.Column("n", sa.Integer),
        sa.Column("agent_version", sa.Text),
        sa.Column("measured_at", sa.Text),
        *(_real(c) for c in ("temp_before_c", "temp_after_c", "sentinel_drift")),
        sa.Column("source", sa.Text, nullable=False),
        _json_text("extra"),
        sa.UniqueConstraint("setting_id", "block_key"),
        *(sa.CheckConstraint(f"{c} >= 0") for c in ("median_ms", "mean_ms", "std_ms", "p10_ms", "p90_ms", "n")),
    )
    sa.Table(
        "failed_blocks", md,
        sa.Column("setting_id", sa.Integer, setting_fk(), nullable=False, index=True),
        sa.Column("block_key", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="1"),
        sa.Column("at", sa.Text, nullable=False),
        sa.UniqueConstraint("setting_id", "block_key"),
    )
    sa.Table(
        "validation_runs", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("setting_id", sa.Integer, setting_fk(), nullable=False, index=True),
        sa.Column("created_at", sa.Text, nullable=False),
        _json_text("meta"),
    )
    sa.Table(
        "validation_samples", md,
        sa.Column("run_id", sa.Integer, sa.ForeignKey("validation_runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("idx", sa.Integer, nullable=False),
        sa.Column("arch", sa.Text, nullable=False),
        *(_real(c) for c in ("predicted_ms", "measured_ms", "repeat_ms")),
        _json_text("extra"),
        sa.UniqueConstraint("run_id", "idx"),
    )
    sa.Table(
        "calibrations", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("setting_id", sa.Integer, setting_fk(), nullable=False, index=True),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("created_at", sa.Text, nullable=False),
        _json_text("cv_metrics"),
    )
    md.create_all(conn)


@migration(2)
def _work_leases(conn: Connection) -> None:
    """Blocks still to be timed per setting and the host holding each (shared profiling)."""
    md = sa.MetaData()
    sa.Table("device_settings", md, sa.Column("id", sa.Integer, primary_key=True))  # for the foreign key only
    sa.Table(
        "work_leases", md,
        sa.Column("setting_id", sa.Integer, sa.ForeignKey("device_settings.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("block_key", sa.Text, primary_key=True),
        sa.Column("position", sa.Integer, nullable=False),  # the block's place in the profile plan
        sa.Column("holder", sa.Text),  # the profiling host timing it; NULL while nobody holds it
        sa.Column("expires_at", sa.Double()),  # database-clock epoch seconds the lease lapses at
    )
    md.tables["work_leases"].create(conn)


# New steps go above this line.
MIGRATIONS: tuple[Migration, ...] = tuple(_STEPS)
# The version a store has after every migration ran: what this lutnas writes.
SCHEMA_VERSION = len(MIGRATIONS)
