"""Two profiling hosts on their own network stacks share a PostgreSQL server on a third; one loses the database.

Host A and host B are
``python -m tests.reliability._profile_host`` processes, each in a namespace with its own agent in
another, all filing rows under one device name, so they split the blocks through work leases. Once A
has stored some rows, A's link to the database is cut for several lease lengths (its link to its agent
stays up). B takes A's lapsed claims over and finishes them; when A's link heals, its late results
must neither replace B's rows nor add rows: every block has one row, and every row B stored during the
outage is still B's, unchanged.
"""

from __future__ import annotations

import json
import signal
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from lut import LutStore
from lut.testing import PostgresUnavailable, TemporaryPostgres

from ._harness import block_keys, kill_pid, start_profile_host, timed_keys, wait_for
from ._netagents import NetAgent
from ._netlab import NetLab

LEASE_S = 3.0  # short leases: B takes A's claims over soon after A loses the database
CUT_AFTER_ROWS = 8
SCALE = 4.0  # block latencies x4: the profile lasts long enough to cut A mid-run
HOST_FLAGS = {"scale": SCALE, "lease_s": LEASE_S, "claim_batch": 4}


def _rows(url: str) -> dict[str, list[tuple]]:
    """block key -> its rows as (host, agent, median_ms)."""
    with LutStore(url, create=False) as store:
        found: dict[str, list[tuple]] = {}
        for key, extra, median in store._query("SELECT block_key, extra, median_ms FROM lut_rows"):
            e = json.loads(extra)
            found.setdefault(key, []).append((e.get("host"), e["agent"], median))
        return found


def _log_tails(tmp_path: Path) -> str:
    """The hosts' warnings and errors, for a failure's message."""
    lines = [f"{log.name}: {line}" for log in sorted(tmp_path.glob("host-*.log"))
             for line in log.read_text().splitlines() if " INFO " not in line]
    return "\n".join(lines[-60:])


def test_host_cut_from_database_longer_than_the_lease(lab: NetLab, tmp_path: Path, tally) -> None:
    keys = block_keys()
    db_node, host_a, host_b = lab.node("db"), lab.node("hosta"), lab.node("hostb")
    try:
        pg = TemporaryPostgres(fast=True, listen=db_node.ip, netns=db_node.ns)
        pg.start()
    except PostgresUnavailable as err:
        pytest.skip(f"needs PostgreSQL: {err}")
    agents = [NetAgent(lab.node("deva"), tmp_path / "a").start(), NetAgent(lab.node("devb"), tmp_path / "b").start()]
    hosts: list[subprocess.Popen] = []
    try:
        url = pg.create_database("lut")
        LutStore(url).close()
        proc_a, report_a = start_profile_host(tmp_path, url, agents[0].address, "a", host_a.python(), **HOST_FLAGS)
        proc_b, report_b = start_profile_host(tmp_path, url, agents[1].address, "b", host_b.python(), **HOST_FLAGS)
        hosts += [proc_a, proc_b]
        wait_for(lambda: sum(r[0][1] == agents[0].address for r in _rows(url).values()) >= CUT_AFTER_ROWS, 120.0,
                 f"host A to store {CUT_AFTER_ROWS} rows", poll_s=0.05)
        host_a.partition(db_node)
        tally.add(faults_injected=1)
        # B takes over: rows keep coming while A cannot write, well past A's leases.
        wait_for(lambda: proc_b.poll() is not None, 120.0, "host B to finish", poll_s=0.2)
        during = _rows(url)
        host_a.heal()
        assert proc_b.returncode == 0, (tmp_path / "host-b.log").read_text()[-2000:]
        assert proc_a.wait(120.0) == 0, (tmp_path / "host-a.log").read_text()[-3000:]
    finally:
        for proc in hosts:
            if proc.poll() is None:
                kill_pid(proc.pid, signal.SIGKILL)
                proc.wait(10.0)
        for agent in agents:
            agent.stop()
        pg_rows = None
        try:
            pg_rows = _rows(url) if "url" in locals() else None
        finally:
            pg.stop()
    assert pg_rows is not None
    final = pg_rows
    count = Counter({k: len(v) for k, v in final.items()})
    tally.add(rows_lost=len(set(keys) - set(final)), rows_duplicated=sum(n - 1 for n in count.values()))
    assert set(final) == set(keys) and set(count.values()) == {1}
    # Every row says which agent timed it and which host stored it.
    assert all(host and agent in {a.address for a in agents} for (host, agent, _), in final.values())
    # What B stored while A was cut off is still there, untouched by A's late results.
    by_b = {k: v for k, v in during.items() if v[0][1] == agents[1].address}
    assert all(final[k] == v for k, v in by_b.items())
    (dev_a,) = json.loads(report_a.read_text())["devices"]
    (dev_b,) = json.loads(report_b.read_text())["devices"]
    late = [f for d in (dev_a, dev_b) for f in d["agent_faults"] if "stored by another host" in f]
    per_agent = [timed_keys(a.job_log) for a in agents]
    twice = set(per_agent[0]) & set(per_agent[1])
    logs = _log_tails(tmp_path)
    # No agent times a block twice; a block is timed by both hosts only when one of them came too late to
    # store it, and the report says so.
    assert set(per_agent[0]) | set(per_agent[1]) == set(keys)
    assert all(n == 1 for counts in per_agent for n in counts.values()), (per_agent, logs)
    assert twice == {f.split(": ")[1].split(" ")[0] for f in late}, (sorted(twice), late, logs)
    tally.add(in_flight_retimed=len(twice))
    tally.note(f"host cut from PostgreSQL until B finished (leases {LEASE_S:g} s): A stored "
               f"{sum(r[0][1] == agents[0].address for r in final.values())} rows, B {dev_b['timed']}; "
               f"{len(late)} late result(s) of A dropped, {len(twice)} block(s) timed by both hosts")
