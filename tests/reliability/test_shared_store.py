"""Two profiling hosts fill one device setting of a PostgreSQL store; one is SIGKILLed mid-run, then a rerun.

Each host is a real process (``python -m tests.reliability._profile_host``) with its own sleep agent
under one device name, so both file rows under one setting and split its blocks through work leases.
Host A is killed once it has stored some rows. Its leases lapse, host B claims those blocks and
finishes the setting; a rerun then finds nothing to time.

Counting is exact: a block timed on A's agent without a row from A (the row's ``extra.agent`` says
which agent measured it) was in flight at the kill; every such block is timed once more (by B), every
other block exactly once, and the store holds every block exactly once.
"""

from __future__ import annotations

import json
import signal
import subprocess
from collections import Counter
from pathlib import Path

from lut import LutStore

from ._harness import (
    block_keys,
    kill_pid,
    settle,
    start_profile_host,
    start_sleep_agent,
    timed_keys,
    wait_for,
)

KILL_AFTER_ROWS = 12  # host A dies once it has stored this many rows
LEASE_S = 5.0  # short leases: B takes A's blocks over soon after the kill
SCALE = 8.0  # block latencies x8 (8..48 ms per run): the profile lasts long enough to kill A mid-run
HOST_FLAGS = {"scale": SCALE, "lease_s": LEASE_S, "claim_batch": 4}


def _rows_by_agent(url: str) -> tuple[Counter, int, int]:
    """(rows per measuring agent address, rows, distinct (setting, block) pairs)."""
    with LutStore(url, create=False) as store:
        extras = store._query("SELECT extra FROM lut_rows")
        rows, distinct = store._query(
            "SELECT COUNT(*), COUNT(DISTINCT CAST(setting_id AS TEXT) || '|' || block_key) FROM lut_rows")[0]
        by_agent = Counter(json.loads(e)["agent"] for (e,) in extras)
        return by_agent, rows, distinct


def _keys_from(url: str, address: str) -> set[str]:
    with LutStore(url, create=False) as store:
        return {k for k, e in store._query("SELECT block_key, extra FROM lut_rows") if json.loads(e)["agent"] == address}


def test_two_hosts_one_killed_then_rerun(tmp_path: Path, pg_databases, tally) -> None:
    keys = block_keys()
    url = pg_databases.new()
    LutStore(url).close()  # create the store once, before the hosts race to open it
    log_a, log_b = tmp_path / "jobs-a.jsonl", tmp_path / "jobs-b.jsonl"
    agent_a, agent_b = start_sleep_agent(log_a), start_sleep_agent(log_b)
    hosts: list[subprocess.Popen] = []
    try:
        host_a, _ = start_profile_host(tmp_path, url, agent_a.address, "a", **HOST_FLAGS)
        host_b, report_b = start_profile_host(tmp_path, url, agent_b.address, "b", **HOST_FLAGS)
        hosts += [host_a, host_b]
        wait_for(lambda: _rows_by_agent(url)[0][agent_a.address] >= KILL_AFTER_ROWS, 180.0,
                 f"host A to store {KILL_AFTER_ROWS} rows", poll_s=0.05)
        kill_pid(host_a.pid, signal.SIGKILL)
        assert host_a.wait(10.0) == -signal.SIGKILL
        tally.add(faults_injected=1)
        settle(agent_a)  # whatever A had sent finishes on its agent, its result lost with A
        stored_by_a = _keys_from(url, agent_a.address)
        timed_by_a = set(timed_keys(log_a)) & set(keys)
        in_flight = timed_by_a - stored_by_a
        assert len(stored_by_a) >= KILL_AFTER_ROWS and len(in_flight) <= 2  # at most the pipeline depth
        assert host_b.wait(180.0) == 0, (tmp_path / "host-b.log").read_text()[-2000:]
        (dev_b,) = json.loads(report_b.read_text())["devices"]
        assert dev_b["timed"] == len(keys) - len(stored_by_a) and dev_b["failed"] == 0 and not dev_b["aborted"]

        rerun, report_c = start_profile_host(tmp_path, url, agent_b.address, "c", **HOST_FLAGS)
        hosts.append(rerun)
        assert rerun.wait(120.0) == 0, (tmp_path / "host-c.log").read_text()[-2000:]
        (dev_c,) = json.loads(report_c.read_text())["devices"]
        assert dev_c["timed"] == 0 and dev_c["skipped"] == len(keys)
    finally:
        for host in hosts:
            if host.poll() is None:
                kill_pid(host.pid, signal.SIGKILL)
                host.wait(10.0)
        agent_a.stop()
        agent_b.stop()
    by_agent, rows, distinct = _rows_by_agent(url)
    timings = timed_keys(log_a, log_b)
    expected = Counter({k: 1 + (k in in_flight) for k in keys})
    needless = sum(max(0, timings[k] - expected[k]) for k in keys)
    stored = _keys_from(url, agent_a.address) | _keys_from(url, agent_b.address)
    tally.add(rows_lost=len(set(keys) - stored), rows_duplicated=rows - distinct, blocks_timed_twice=needless,
              in_flight_retimed=len(in_flight))
    tally.note(f"shared PostgreSQL store: host A stored {by_agent[agent_a.address]} rows before SIGKILL, "
               f"{len(in_flight)} job(s) in flight; host B stored {by_agent[agent_b.address]}")
    assert stored == set(keys) and rows == distinct == len(keys)  # every block stored exactly once
    assert by_agent[agent_b.address] > 0 and by_agent[agent_a.address] >= KILL_AFTER_ROWS  # both hosts took part
    assert {k: timings[k] for k in keys} == dict(expected)  # once each, twice only if in flight at the kill
