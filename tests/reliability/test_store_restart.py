"""The PostgreSQL server behind a profile restarts mid-run: the profile rides it out and loses nothing.

One profiling host (``python -m tests.reliability._profile_host``) with a sleep agent fills a store on its own
PostgreSQL server. Once some rows are stored, the server shuts down, stays down for a few seconds and starts
again on the same port. The host's pooled connections all break; its writes are tried again until the server
is back, so the profile ends normally, every block has one row and no block was timed twice.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from lut import LutStore
from lut.testing import PostgresUnavailable, TemporaryPostgres

from ._harness import block_keys, kill_pid, start_profile_host, start_sleep_agent, timed_keys, wait_for

RESTART_AFTER_ROWS = 12
DOWN_S = 3.0
SCALE = 4.0  # block latencies x4: the profile is still running when the server goes down


def _row_count(url: str) -> int:
    try:
        with LutStore(url, create=False) as store:
            return int(store._query("SELECT COUNT(*) FROM lut_rows")[0][0])
    except Exception:  # noqa: BLE001 - the server may be down between polls
        return 0


def test_profile_rides_out_a_database_restart(tmp_path: Path, tally) -> None:
    try:
        pg = TemporaryPostgres(fast=True)
        pg.start()
    except PostgresUnavailable as err:
        pytest.skip(f"needs PostgreSQL: {err}")
    agent = start_sleep_agent(tmp_path / "jobs.jsonl")
    host = None
    try:
        url = pg.create_database("lut")
        host, report = start_profile_host(tmp_path, url, agent.address, "a", scale=SCALE)
        wait_for(lambda: _row_count(url) >= RESTART_AFTER_ROWS, 120.0, f"{RESTART_AFTER_ROWS} rows", poll_s=0.05)
        pg.restart(down_s=DOWN_S)
        tally.add(faults_injected=1)
        assert host.wait(180.0) == 0, (tmp_path / "host-a.log").read_text()[-3000:]
        with LutStore(url, create=False) as store:
            rows = store._query("SELECT block_key FROM lut_rows")
    finally:
        if host is not None and host.poll() is None:
            kill_pid(host.pid, signal.SIGKILL)
            host.wait(10.0)
        agent.stop()
        pg.stop()
    keys = block_keys()
    stored = [k for (k,) in rows]
    timed = timed_keys(tmp_path / "jobs.jsonl")
    log_text = (tmp_path / "host-a.log").read_text()
    (device,) = json.loads(report.read_text())["devices"]
    tally.add(rows_lost=len(set(keys) - set(stored)), rows_duplicated=len(stored) - len(set(stored)),
              blocks_timed_twice=sum(n - 1 for n in timed.values()))
    retries = log_text.count("trying again in")
    assert sorted(stored) == sorted(keys)  # every block, once
    assert set(timed) == set(keys) and max(timed.values()) == 1, timed.most_common(3)
    assert device["timed"] == len(keys) and not device["aborted"] and device["failed"] == 0
    assert retries >= 1  # the host did notice the server going away
    tally.note(f"PostgreSQL restarted mid-profile (down {DOWN_S:g} s): {retries} store call(s) tried again, "
               f"{len(stored)} rows, none timed twice")
