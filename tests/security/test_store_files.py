"""Hostile or wrong store files: one line and exit 2, and a file that is not a lutnas store stays as it was.

Each test builds its bad file itself: a store corrupted in the middle, a SQLite database of another
application, a file that is not SQLite at all, a 0-byte file, a path that does not exist.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lut import DeviceSetting, LutStore, StoreError, import_files
from lutnas.cli import app
from tests.conftest import SHARED_DATA

DATA = SHARED_DATA if SHARED_DATA is not None else Path("/nonexistent")
NOTE10_FILES = sorted((DATA / "ofa" / "note10").glob("*_lookup_table.yaml"))
NOTE10_NET = DATA / "ofa" / "specialized" / "note10_lat-30ms_top1-78.4_finetune-75" / "net.config"
PAGE = 4096  # SQLite's default page size


def _commands(db: Path) -> dict[str, list[str]]:
    """The commands that open a store, each reading (or for import, writing) ``db``."""
    return {
        "list": ["lut", "list", "--db", str(db)],
        "predict": ["lut", "predict", "--db", str(db), "--device", "note10", "--net-config", str(NOTE10_NET),
                    "--resolution", "224"],
        "search": ["search", "--db", str(db), "--device", "note10", "--latency-ms", "30", "--predictor",
                   str(DATA / "ofa" / "acc_predictor.pth"), "--generations", "1"],
        "import": ["lut", "import", "--db", str(db), "--device", "note10", *map(str, NOTE10_FILES[:1])],
    }


def _assert_one_line_exit_2(result, *needles: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert isinstance(result.exception, SystemExit), result.exception  # a clean exit, not an escaped error
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    for needle in needles:
        assert needle in lines[0], lines[0]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def corrupted(tmp_path: Path) -> Path:
    """A real store whose pages after the first third are overwritten with junk (as a bad disk or copy does)."""
    if not NOTE10_FILES:
        pytest.skip(f"reference data not found under {DATA}")
    path = tmp_path / "lut.db"
    with LutStore(path) as store:
        import_files(store, DeviceSetting("note10", "unknown"), NOTE10_FILES)
    data = bytearray(path.read_bytes())  # closed: the write-ahead log is checkpointed into the file
    n_pages = len(data) // PAGE
    assert n_pages > 10
    for page in range(n_pages // 3, n_pages - 1):
        data[page * PAGE:(page + 1) * PAGE] = b"\x5a" * PAGE
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("command", ["list", "predict", "search", "import"])
def test_corrupted_store_is_one_line_and_exit_2(corrupted: Path, command: str) -> None:
    result = CliRunner().invoke(app, _commands(corrupted)[command])
    _assert_one_line_exit_2(result, str(corrupted), "malformed")


def _foreign_sqlite(path: Path) -> Path:
    """Another application's SQLite database, in the default rollback-journal mode."""
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        conn.executemany("INSERT INTO notes (body) VALUES (?)", [("x" * 300,)] * 50)
    conn.close()
    return path


@pytest.mark.parametrize("command", ["list", "predict", "search", "import"])
def test_foreign_sqlite_file_is_refused_and_unchanged(tmp_path: Path, command: str) -> None:
    path = _foreign_sqlite(tmp_path / "other.db")
    before = _digest(path)
    result = CliRunner().invoke(app, _commands(path)[command])
    _assert_one_line_exit_2(result, "not a lutnas LUT store")
    assert _digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.db"]  # no -wal/-shm left beside it
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # never switched to WAL
    conn.close()


def test_file_that_is_not_sqlite_is_refused_and_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"plain text, not a database\n" * 200)
    before = _digest(path)
    for command in ("list", "import"):
        _assert_one_line_exit_2(CliRunner().invoke(app, _commands(path)[command]), "not a lutnas LUT store")
    assert _digest(path) == before


@pytest.mark.parametrize("command", ["list", "predict", "search"])
def test_reading_commands_never_create_a_store(tmp_path: Path, command: str) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    _assert_one_line_exit_2(CliRunner().invoke(app, _commands(empty)[command]), "no LUT store at")
    assert empty.stat().st_size == 0
    missing = tmp_path / "missing.db"
    _assert_one_line_exit_2(CliRunner().invoke(app, _commands(missing)[command]), "no LUT store at")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.db"]


def test_writing_command_makes_a_store_of_an_empty_file(tmp_path: Path) -> None:
    if not NOTE10_FILES:
        pytest.skip(f"reference data not found under {DATA}")
    empty = tmp_path / "empty.db"
    empty.touch()
    result = CliRunner().invoke(app, _commands(empty)["import"])
    assert result.exit_code == 0, result.output
    with LutStore(empty, create=False) as store:
        assert store.settings()[0].name == "note10" and store.count_rows() == {1: 96}


def test_library_refuses_the_same_files(tmp_path: Path) -> None:
    foreign = _foreign_sqlite(tmp_path / "other.db")
    before = _digest(foreign)
    for create in (False, True):
        with pytest.raises(StoreError, match="no schema_version table"):
            LutStore(foreign, create=create)
    assert _digest(foreign) == before
    with pytest.raises(StoreError, match="is a directory"):
        LutStore(tmp_path, create=True)
