"""A store whose server goes away says so (StoreUnavailable, a StoreError), and a profiling host's writes ride a
restart out; a host cut off mid-transaction cannot hold row locks for long.

A PostgreSQL server of this test's own (it is stopped and restarted), real connections throughout.
"""

from __future__ import annotations

import threading
import time

import pytest

from lut import DeviceSetting, LutStore, StoreError, StoreUnavailable
from lut.testing import PostgresUnavailable, TemporaryPostgres
from profiler.storewait import keep_trying
from space import get_space

BOARD = DeviceSetting("board", "sleep", "1", 1, "fp32", "json")
KEY = get_space("ofa-mbv3-w1.0").unique_blocks(128)[0].key


@pytest.fixture()
def server():
    try:
        pg = TemporaryPostgres(fast=False)  # fsync on: rows committed before a restart are there after it
        pg.start()
    except PostgresUnavailable as err:
        pytest.skip(f"needs PostgreSQL: {err}")
    yield pg
    pg.stop()


def test_a_stopped_server_is_unavailable_and_a_bad_statement_is_not(server: TemporaryPostgres) -> None:
    url = server.create_database("lut")
    with LutStore(url) as store:
        sid = store.ensure_setting(BOARD)
        with pytest.raises(StoreError) as bad:
            store._query("SELECT no_such_column FROM lut_rows")
        assert not isinstance(bad.value, StoreUnavailable)
        server.restart()  # every pooled connection is now dead; the pool's ping finds a new one
        assert store.keys(sid) == set()
        server.pause()
        with pytest.raises(StoreUnavailable, match=r"^LUT store postgresql://postgres@"):
            store.keys(sid)
        server.resume()
        assert store.keys(sid) == set()


def test_keep_trying_rides_out_a_restart_and_gives_up_after_wait_s(server: TemporaryPostgres) -> None:
    url = server.create_database("lut")
    with LutStore(url) as store:
        sid = store.ensure_setting(BOARD)
        server.pause()
        back = threading.Timer(2.0, server.resume)
        back.start()
        tries = []

        def put() -> None:
            tries.append(1)
            store.put_row(sid, KEY, {"median_ms": 1.0})

        keep_trying(put, "storing a row", wait_s=60.0)
        back.join()
        assert store.keys(sid) == {KEY} and len(tries) > 1
        calls = []

        def bad() -> None:
            calls.append(1)
            store._query("SELECT no_such_column FROM lut_rows")

        with pytest.raises(StoreError):
            keep_trying(bad, "a bad statement", wait_s=60.0)
        assert len(calls) == 1  # not a passing outage: no second try
        server.pause()
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            keep_trying(lambda: store.keys(sid), "reading keys", wait_s=2.0)
        assert time.monotonic() - started < 15.0
        stop = threading.Event()  # Ctrl-C: no waiting out the rest of wait_s
        threading.Timer(1.0, stop.set).start()
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            keep_trying(lambda: store.keys(sid), "reading keys", wait_s=600.0, stop=stop)
        assert time.monotonic() - started < 15.0


def test_sessions_end_a_transaction_their_host_left_open(server: TemporaryPostgres) -> None:
    url = server.create_database("lut")
    with LutStore(url) as store:
        (timeout,) = store._query("SHOW idle_in_transaction_session_timeout")[0]
    assert timeout == "1min"
