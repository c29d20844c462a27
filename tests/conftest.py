"""Shared test fixtures: where the reference data lives."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def _find_shared_data() -> Path | None:
    env = os.environ.get("LUTNAS_SHARED_DATA")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    fallback = Path("/work/shared/data")
    return fallback if fallback.is_dir() else None


SHARED_DATA = _find_shared_data()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The reference data folder (OFA LUTs, predictor, DyNAS-T, ...); skips when absent."""
    if SHARED_DATA is None:
        pytest.skip("reference data folder (shared/data) not found; set LUTNAS_SHARED_DATA")
    return SHARED_DATA


@pytest.fixture()
def one_torch_thread():
    """torch limited to one thread for the test: several test processes share the host, and one
    thread each avoids OpenMP oversubscription."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# -- the LUT store on both engines -------------------------------------------------------------
ENGINES = ("sqlite", "postgresql")


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server started for this test session (see ``lut.testing``).

    Skips, saying why, only where no PostgreSQL binaries exist; under CI (``CI`` set) that is an error.
    """
    from lut.testing import PostgresUnavailable, TemporaryPostgres

    try:
        server = TemporaryPostgres(fast=True)
        server.start()
    except PostgresUnavailable as err:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the PostgreSQL store tests: {err}")
        pytest.skip(f"PostgreSQL store tests skipped: {err}")
    yield server
    server.stop()


class _Databases:
    """Fresh, uniquely named databases on the session's server."""

    def __init__(self, server) -> None:
        self.server = server
        self.count = 0

    def new(self, template: str | None = None) -> str:
        self.count += 1
        return self.server.create_database(f"t{self.count}", template=template)


@pytest.fixture(scope="session")
def pg_databases(postgres) -> _Databases:
    return _Databases(postgres)


@pytest.fixture(params=ENGINES)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a new, empty LUT store goes: a SQLite path, or a fresh PostgreSQL database's URL."""
    if request.param == "sqlite":
        return str(tmp_path / "lut.db")
    return request.getfixturevalue("pg_databases").new()
