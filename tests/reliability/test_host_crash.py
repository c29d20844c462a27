"""The profiler host process SIGKILLed mid-run, twice, then rerun: nothing lost or duplicated, no needless re-timing.

The host is a real process (``python -m tests.reliability._profile_host``: the fleet profiler with the
sleep exporter) killed with SIGKILL at two proven moments:

1. while it prepares its next job (the export of one block hangs);
2. while the agent is inside a job for it (a trapped job, released only after the kill).

A job the host had already sent when it died still completes on the agent, and its result is lost
with the host, so the rerun times that block again. The test accounts for this exactly: after each
crash it lets the agent finish, and the blocks the agent timed without a stored row are that crash's
"in-flight" set (at most the pipeline depth, and at crash 2 it holds the trapped block). In the end,
every block must have been timed exactly once plus once per crash at which it was in flight.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

from profiler.fleet import ProfileSettings

from ._harness import (
    Trap,
    block_keys,
    job_log_entries,
    kill_pid,
    settle,
    start_profile_host,
    start_sleep_agent,
    store_figures,
    timed_keys,
    wait_for,
    worker_pid,
)

HOLD_INDEX = 25  # the host hangs exporting this block at its first crash
TRAP_INDEX = 60  # the agent is timing this block at the second crash
# Jobs a host keeps on their way to one agent; 1 for a scheduler without a pipeline.
_DEPTH = int(getattr(ProfileSettings(), "pipeline_depth", 1))


def _sigkill(proc: subprocess.Popen) -> None:
    kill_pid(proc.pid, signal.SIGKILL)
    assert proc.wait(10.0) == -signal.SIGKILL


def _block_timings(log: Path, keys: list[str]) -> Counter[str]:
    wanted = set(keys)
    return Counter({k: n for k, n in timed_keys(log).items() if k in wanted})


def test_host_killed_mid_run_twice_then_rerun(tmp_path: Path, tally) -> None:
    keys = block_keys()
    hold_key, trap_key = keys[HOLD_INDEX], keys[TRAP_INDEX]
    db, log = tmp_path / "lut.db", tmp_path / "jobs.jsonl"
    trap = Trap(tmp_path / "trap")
    agent = start_sleep_agent(log)
    hosts: list[subprocess.Popen] = []
    in_flight: list[set[str]] = []  # per crash: blocks the agent timed for the dead host, never stored
    try:
        worker = worker_pid(agent)
        trap_flags = {"trap_key": trap_key, "trap_path": str(trap.path)}

        # Crash 1: the host hangs before sending its next job.
        marker = tmp_path / "holding"
        host, _ = start_profile_host(tmp_path, db, agent.address, 1, hold_key=hold_key, hold_marker=marker,
                                     **trap_flags)
        hosts.append(host)
        wait_for(marker.exists, 120.0, "the host to reach the held block")
        _sigkill(host)
        tally.add(faults_injected=1)
        settle(agent)
        crash1 = store_figures(db)
        assert crash1.integrity == "ok" and crash1.duplicated == 0
        assert len(crash1.keys) >= HOLD_INDEX - _DEPTH and hold_key not in crash1.keys
        in_flight.append(set(_block_timings(log, keys)) - crash1.keys)
        assert len(in_flight[0]) <= _DEPTH - 1  # the held block itself was never sent

        # Crash 2: the agent is inside a job for the host.
        host, _ = start_profile_host(tmp_path, db, agent.address, 2, **trap_flags)
        hosts.append(host)
        wait_for(lambda: trap.entered(worker), 120.0, "the trapped job to start on the agent")
        _sigkill(host)
        killed_at = time.time()
        tally.add(faults_injected=1)
        crash2 = store_figures(db)
        assert crash2.integrity == "ok" and crash2.duplicated == 0
        assert trap_key not in crash2.keys and len(crash2.keys) >= TRAP_INDEX - _DEPTH
        trap.release()  # the orphaned job now completes on the agent, after its host died
        settle(agent)
        orphan = [e for e in job_log_entries(log) if e["job_id"] == trap_key]
        assert len(orphan) == 1 and orphan[0]["unix_time_s"] > killed_at  # in flight at the kill, done after it
        in_flight.append(set(_block_timings(log, keys)) - crash2.keys - in_flight[0])
        assert trap_key in in_flight[1] and len(in_flight[1]) <= _DEPTH

        # The rerun resumes where the store says and finishes.
        host, report_path = start_profile_host(tmp_path, db, agent.address, 3, **trap_flags)
        hosts.append(host)
        assert host.wait(120.0) == 0, (tmp_path / "host-3.log").read_text()[-2000:]
        (dev,) = json.loads(report_path.read_text())["devices"]
        assert dev["failed"] == 0 and not dev["aborted"]
        assert dev["skipped"] == len(crash2.keys) and dev["timed"] == len(keys) - len(crash2.keys)
    finally:
        trap.release()
        for host in hosts:
            if host.poll() is None:
                kill_pid(host.pid, signal.SIGKILL)
                host.wait(10.0)
        agent.stop()
    final = store_figures(db)
    timed = _block_timings(log, keys)
    expected = Counter({k: 1 + sum(k in crash for crash in in_flight) for k in keys})
    needless = sum(max(0, timed[k] - expected[k]) for k in keys)
    tally.add(rows_lost=final.lost(keys), rows_duplicated=final.duplicated, blocks_timed_twice=needless,
              in_flight_retimed=sum(len(crash) for crash in in_flight))
    tally.note(f"host crash: in flight at crash 1: {len(in_flight[0])} job(s), at crash 2: {len(in_flight[1])} "
               f"(pipeline depth {_DEPTH}); each re-timed once on rerun")
    assert final.integrity == "ok"
    assert final.keys == set(keys) and final.rows == final.distinct == len(keys)  # 0 lost, 0 duplicated
    assert timed == expected  # once each, plus once per crash for a job that was in flight at that crash
    assert timed[hold_key] == 1  # the block the host was preparing at crash 1 was timed once
