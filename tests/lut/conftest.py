"""Shared fixtures: the reference LUTs imported once per session (into SQLite and into PostgreSQL),
copied for tests that write; ``ref_store`` runs each test on both engines. ``random_table`` makes a synthetic LUT."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from lut import DeviceSetting, LutStore, import_files
from tests.conftest import ENGINES, SHARED_DATA

DATA = SHARED_DATA if SHARED_DATA is not None else Path("/nonexistent")
NOTE10_FILES = sorted((DATA / "ofa" / "note10").glob("*_lookup_table.yaml"))
NSGA_FILE = DATA / "nsganetv2" / "i7-8700K_lut.yaml"
NOTE10_NET = DATA / "ofa" / "specialized" / "note10_lat-30ms_top1-78.4_finetune-75"


def _need_data() -> None:
    if not NOTE10_FILES or not NSGA_FILE.is_file():
        pytest.skip(f"reference data not found under {DATA}")


def _import_reference(locator: str | Path) -> None:
    with LutStore(locator) as store:
        import_files(store, DeviceSetting("note10", "unknown"), NOTE10_FILES)
        import_files(store, DeviceSetting("i7", "unknown"), [NSGA_FILE])


@pytest.fixture(scope="session")
def ref_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite store with note10 (OFA yaml) and i7 (nsganetv2 yaml) imported; never written to by tests."""
    _need_data()
    path = tmp_path_factory.mktemp("ref") / "ref.db"
    _import_reference(path)
    return path


@pytest.fixture(scope="session")
def ref_pg_template(pg_databases) -> str:
    """The same reference store in a PostgreSQL database, used as a template for per-test copies."""
    _need_data()
    _import_reference(pg_databases.server.create_database("ref"))
    return "ref"


@pytest.fixture(params=ENGINES)
def ref_store(request: pytest.FixtureRequest, ref_db: Path, tmp_path: Path):
    """A writable copy of the reference store, on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        locator: str | Path = tmp_path / "lut.db"
        shutil.copy(ref_db, locator)
    else:
        locator = request.getfixturevalue("pg_databases").new(template=request.getfixturevalue("ref_pg_template"))
    with LutStore(locator) as store:
        yield store


@pytest.fixture(scope="session")
def note10_table(ref_db: Path) -> dict[str, float]:
    with LutStore(ref_db) as store:
        return store.table("note10")


@pytest.fixture(scope="session")
def i7_table(ref_db: Path) -> dict[str, float]:
    with LutStore(ref_db) as store:
        return store.table("i7")


def random_table(space, resolutions, seed: int = 0) -> dict[str, float]:
    """A synthetic LUT: every unique block of ``space`` at ``resolutions`` priced at a random 0.05-3 ms."""
    rng = np.random.default_rng(seed)
    return {b.key: float(rng.uniform(0.05, 3.0)) for b in space.unique_blocks(list(resolutions))}
