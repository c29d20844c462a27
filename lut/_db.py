"""Opening the database behind a LUT store: a SQLite file or a PostgreSQL URL, one SQLAlchemy code path.

A store is named by a *locator*: ``postgresql://user@host:port/db`` (``postgres://`` and
``postgresql+psycopg://`` too) for a shared server, anything else is a SQLite file path.

Opening never changes something that is not a lutnas store:

* SQLite: a path that does not exist (or a 0-byte file) becomes a store only when the caller
  writes (``create=True``). Any other file is first opened read-only and checked (a SQLite
  database with a lutnas ``schema_version`` this lutnas can read); only then is it opened for
  writing, switched to WAL and migrated.
* PostgreSQL: an empty database becomes a store only with ``create=True``; a database holding
  other tables is refused.

Transactions: a write is one transaction; on SQLite it starts with ``BEGIN IMMEDIATE`` (the
write lock up front, so two writers never deadlock on a lock upgrade), on PostgreSQL it runs at
READ COMMITTED and the store locks rows where it reads before it writes. Every driver error
leaves as a one-line :class:`~lut.errors.StoreError` that names the store (a corrupted file
says so instead of raising ``sqlite3.DatabaseError``).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from lut.errors import SchemaVersionError, StoreError, StoreUnavailable
from lut.schema import MIGRATIONS, SCHEMA_VERSION

__all__ = ["Database", "open_database", "is_postgres_locator", "BUSY_TIMEOUT_MS"]

logger = logging.getLogger(__name__)

# How long a SQLite writer waits for another process's transaction before giving up.
BUSY_TIMEOUT_MS = 30_000
# Key of the PostgreSQL advisory lock held while a store's schema is created or migrated.
_MIGRATION_LOCK_KEY = 0x6C75746E6173  # "lutnas"
_PG_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")
_WRITE = "lutnas_write"  # execution option: this connection's transaction writes
# A lutnas transaction never waits on its client between statements for long. One that does lost its host
# mid-transaction (a network cut): the server ends that session after this long, so the row locks it holds do
# not stall the other hosts sharing the store until TCP gives up on the connection (hours).
_IDLE_IN_TRANSACTION_MS = 60_000


def is_postgres_locator(locator: str | Path) -> bool:
    """Whether ``locator`` names a PostgreSQL database (else it is a SQLite path)."""
    return isinstance(locator, str) and locator.split("://", 1)[0].lower() in _PG_SCHEMES and "://" in locator


def _transient(err: sa.exc.DBAPIError, postgres: bool) -> bool:
    """Whether ``err`` says the database could not be reached or answered "later" (not a bad statement or file)."""
    if err.connection_invalidated:
        return True
    if postgres:
        return isinstance(err, (sa.exc.OperationalError, sa.exc.InterfaceError))
    return isinstance(err, sa.exc.OperationalError) and "locked" in str(err.orig)


def _first_line(err: BaseException) -> str:
    text = str(getattr(err, "orig", None) or err).strip()
    return text.splitlines()[0] if text else type(err).__name__


@dataclass(frozen=True)
class _State:
    tables: frozenset[str]
    version: int | None  # None: no schema_version row


class Database:
    """An open engine plus the few SQL fragments that differ between SQLite and PostgreSQL."""

    def __init__(self, engine: Engine, label: str) -> None:
        self.engine = engine
        self.label = label  # how messages name the store (a path, or a URL without password)
        self.postgres = engine.dialect.name == "postgresql"
        # Epoch seconds on the database's own clock: lease deadlines never depend on a host's clock.
        self.now_sql = ("EXTRACT(EPOCH FROM clock_timestamp())" if self.postgres
                        else "((julianday('now') - 2440587.5) * 86400.0)")
        # Row locks where PostgreSQL reads before it writes (SQLite's write lock already covers the file).
        self.for_update = " FOR UPDATE" if self.postgres else ""
        self.skip_locked = " FOR UPDATE SKIP LOCKED" if self.postgres else ""

    @contextmanager
    def errors(self) -> Iterator[None]:
        """Turn driver errors into one-line StoreErrors that name the store."""
        try:
            yield
        except sa.exc.DBAPIError as err:
            error = StoreUnavailable if _transient(err, self.postgres) else StoreError
            raise error(f"LUT store {self.label}: {_first_line(err)}") from err

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reads (its transaction is rolled back at the end)."""
        with self.errors(), self.engine.connect() as conn:
            yield conn

    @contextmanager
    def snapshot(self) -> Iterator[Connection]:
        """A read connection whose statements all see one state of the database (PostgreSQL: REPEATABLE READ;
        a SQLite read transaction is one already)."""
        with self.errors(), self.engine.connect() as conn:
            if self.postgres:
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One write transaction: committed when the block ends, rolled back on any error."""
        with self.errors(), self.engine.connect().execution_options(**{_WRITE: True}) as conn, conn.begin():
            yield conn

    def dispose(self) -> None:
        self.engine.dispose()

    # -- schema ------------------------------------------------------------------------------
    def state(self, conn: Connection) -> _State:
        tables = frozenset(sa.inspect(conn).get_table_names())
        version = None
        if "schema_version" in tables:
            version = conn.execute(sa.text("SELECT MAX(version) FROM schema_version")).scalar()
        return _State(tables, None if version is None else int(version))

    def migrate(self, create: bool) -> None:
        """Bring the schema to :data:`SCHEMA_VERSION` (creating it only when ``create``)."""
        with self.read() as conn:
            state = self.state(conn)
        _check(state, self.label, create)
        if state.version == SCHEMA_VERSION:
            return
        with self.write() as conn:
            if self.postgres:
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK_KEY})
            state = self.state(conn)  # another process may have migrated meanwhile
            _check(state, self.label, create)
            start = state.version or 0
            for version in range(start + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[version - 1](conn)
            if state.version is None:
                conn.execute(sa.text("INSERT INTO schema_version (version) VALUES (:v)"), {"v": SCHEMA_VERSION})
            else:
                conn.execute(sa.text("UPDATE schema_version SET version = :v"), {"v": SCHEMA_VERSION})
        if start == 0:
            logger.info("created LUT store %s (schema version %d)", self.label, SCHEMA_VERSION)
        elif start < SCHEMA_VERSION:
            logger.info("migrated LUT store %s from schema version %d to %d", self.label, start, SCHEMA_VERSION)


def _check(state: _State, label: str, create: bool) -> None:
    """Refuse what is not a lutnas store, a newer schema, or an empty one nobody may create."""
    if not state.tables:
        if not create:
            raise StoreError(f"no LUT store at {label} (the database is empty)")
        return
    if "schema_version" not in state.tables:
        raise StoreError(f"{label} is a database but not a lutnas LUT store (no schema_version table)")
    if state.version is None:
        raise StoreError(f"{label} is not a lutnas LUT store (its schema_version table is empty)")
    if state.version > SCHEMA_VERSION or state.version < 1:
        raise SchemaVersionError(
            f"LUT store {label} has schema version {state.version}; this lutnas reads versions 1 to {SCHEMA_VERSION}"
        )


# -- SQLite --------------------------------------------------------------------------------------
def _sqlite_engine(path: Path, *, read_only: bool) -> Engine:
    """An engine over the file; read-only engines open it with ``mode=ro`` (nothing can change it)."""
    if read_only:
        uri = path.absolute().as_uri() + "?mode=ro"
        return sa.create_engine("sqlite://", creator=lambda: sqlite3.connect(uri, uri=True, check_same_thread=False),
                                poolclass=sa.pool.NullPool)

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)

    engine = sa.create_engine("sqlite://", creator=connect, poolclass=sa.pool.QueuePool, pool_size=8,
                              max_overflow=16)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: object) -> None:
        # The driver must not open transactions by itself: the "begin" hook below does, so a
        # write can start with BEGIN IMMEDIATE.
        dbapi_conn.isolation_level = None
        for pragma in (f"busy_timeout = {BUSY_TIMEOUT_MS}", "foreign_keys = ON", "journal_mode = WAL",
                       "synchronous = NORMAL"):
            dbapi_conn.execute(f"PRAGMA {pragma}")

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN")

    return engine


def _fresh(path: Path) -> bool:
    """Whether ``path`` holds nothing yet (absent, or 0 bytes with no write-ahead log)."""
    if not path.exists():
        return True
    wal = path.with_name(path.name + "-wal")
    return path.is_file() and path.stat().st_size == 0 and not (wal.exists() and wal.stat().st_size > 0)


def _open_sqlite(path: Path, create: bool) -> Database:
    label = str(path)
    if path.is_dir():
        raise StoreError(f"LUT store {label} is a directory, not a file")
    if _fresh(path):
        if not create:
            what = "an empty file" if path.exists() else "no such file"
            raise StoreError(f"no LUT store at {label} ({what}; create one with 'lutnas lut import' or 'lutnas profile')")
    else:
        probe = _sqlite_engine(path, read_only=True)
        try:
            with probe.connect() as conn:
                state = Database(probe, label).state(conn)
        except sa.exc.DBAPIError as err:
            raise StoreError(f"{label} is not a lutnas LUT store ({_first_line(err)})") from err
        finally:
            probe.dispose()
        _check(state, label, create=False)
    return Database(_sqlite_engine(path, read_only=False), label)


# -- PostgreSQL ----------------------------------------------------------------------------------
def _open_postgres(locator: str) -> Database:
    try:
        given = sa.engine.make_url(locator)
    except sa.exc.ArgumentError as err:
        raise StoreError(f"bad PostgreSQL URL: {err}") from err
    label = given.render_as_string(hide_password=True)
    url = given.set(drivername="postgresql+psycopg")
    engine = sa.create_engine(url, pool_pre_ping=True, pool_size=8, max_overflow=16,
                              connect_args={"connect_timeout": 10, "application_name": "lutnas"})

    @event.listens_for(engine, "connect")
    def _session_settings(dbapi_conn, _record) -> None:  # noqa: ANN001 - driver objects
        # A SET, not a startup option: connection poolers in transaction mode (PgBouncer) refuse startup options.
        with dbapi_conn.cursor() as cur:
            cur.execute(f"SET idle_in_transaction_session_timeout = {_IDLE_IN_TRANSACTION_MS}")
        dbapi_conn.commit()

    return Database(engine, label)


def open_database(locator: str | Path, *, create: bool) -> Database:
    """Open (and migrate) the store's database; see the module docstring for what ``create`` allows.

    Raises:
        StoreError: not a lutnas store, no store and ``create`` is false, or the database is unreachable.
        SchemaVersionError: the store is newer than this lutnas.
    """
    if isinstance(locator, str) and "://" in locator and not is_postgres_locator(locator):
        scheme = locator.split("://", 1)[0]
        raise StoreError(f"unsupported store URL scheme {scheme!r}; use a SQLite path or postgresql://user@host:port/db")
    db = _open_postgres(locator) if is_postgres_locator(locator) else _open_sqlite(Path(locator), create)
    try:
        db.migrate(create)
    except BaseException:
        db.dispose()
        raise
    return db
