"""An agent SIGKILLed in the middle of a job, restarted, and the profile resumed: nothing lost, nothing timed twice.

The kill lands while a trapped job is provably in flight (its worker is blocked inside it), so the
count is exact: every block has exactly one row, and each block was timed exactly once across the
job logs of the dead agent and its replacement, the in-flight block only by the replacement.
"""

from __future__ import annotations

import signal
from pathlib import Path

from lut import LutStore
from profiler.client import AgentClient
from profiler.fleet import AgentRef, ProfileReport, profile

from ._harness import (
    TOKEN,
    SleepExporter,
    Trap,
    block_keys,
    in_thread,
    joined,
    kill_pid,
    profile_settings,
    start_sleep_agent,
    store_figures,
    timed_keys,
    wait_for,
    worker_pid,
)

TRAP_INDEX = 40  # the block in flight when the agent dies (mid-profile: 40 rows before it, 55 after)


def _profile_in_thread(db: Path, address: str, exporter: SleepExporter, **settings: object):
    """Start a profile on a thread; returns (thread, box) for :func:`joined`."""

    def run() -> ProfileReport:
        with LutStore(db) as store:
            return profile(store, [AgentRef("board", address)], profile_settings(**settings), token=TOKEN,
                           export_fn=exporter)

    return in_thread(run)


def _kill_agent_in_trap(agent, worker: int, trap: Trap) -> None:
    """SIGKILL the agent (then its orphaned worker) once the worker is inside the trapped job."""
    wait_for(lambda: trap.entered(worker), 90.0, "the trapped job to start on the agent")
    kill_pid(agent.proc.pid, signal.SIGKILL)
    agent.proc.wait(10.0)
    kill_pid(worker, signal.SIGKILL)  # a power cut takes the worker too; nothing may finish the job


def _assert_each_block_once(db: Path, keys: list[str], logs: list[Path], tally) -> None:
    """The store holds one row per block (0 lost, 0 duplicated) and the agents' job logs time
    each block exactly once; the counts go to the run's tally."""
    final = store_figures(db)
    timed = timed_keys(*logs)
    tally.add(rows_lost=final.lost(keys), rows_duplicated=final.duplicated,
              blocks_timed_twice=sum(1 for n in timed.values() if n > 1))
    assert final.integrity == "ok"
    assert final.keys == set(keys) and final.rows == final.distinct == len(keys)
    assert set(timed) == set(keys) and set(timed.values()) == {1}


def test_agent_killed_mid_job_then_restarted_and_rerun(tmp_path: Path, tally) -> None:
    """Kill, profile aborts resumably, restart on the same port with the same cache, rerun: exact counts."""
    keys = block_keys()
    trap_key = keys[TRAP_INDEX]
    db, cache = tmp_path / "lut.db", tmp_path / "agent-cache"
    logs = [tmp_path / "jobs-1.jsonl", tmp_path / "jobs-2.jsonl"]
    trap = Trap(tmp_path / "trap")
    exporter = SleepExporter(trap_key=trap_key, trap_path=str(trap.path))
    first = start_sleep_agent(logs[0], cache_dir=cache)
    second = None
    try:
        thread, box = _profile_in_thread(db, first.address, exporter, agent_wait_s=1.0)
        _kill_agent_in_trap(first, worker_pid(first), trap)
        tally.add(faults_injected=1)
        report1 = joined(thread, box)
        (dev1,) = report1.devices
        assert "rerun to resume" in dev1.aborted, dev1.to_dict()
        # The report says what happened to the agent: its jobs requeued, then given up on.
        assert any("requeued" in f and first.address in f for f in dev1.agent_faults), dev1.agent_faults
        assert any("given up" in f for f in dev1.agent_faults), dev1.agent_faults
        after_kill = store_figures(db)
        assert after_kill.integrity == "ok"
        assert dev1.timed == len(after_kill.keys) == TRAP_INDEX  # every row timed before the kill is stored
        assert set(timed_keys(logs[0])) == after_kill.keys  # ... and every completed job has its row

        trap.release()
        second = start_sleep_agent(logs[1], port=first.port, cache_dir=cache)
        with AgentClient(second.address, token=TOKEN) as client:
            # The cache survived the SIGKILL: every blob uploaded before it, the trapped one included.
            assert client.device_info().cache_entries >= TRAP_INDEX + 1
        report2 = joined(*_profile_in_thread(db, second.address, exporter))
        (dev2,) = report2.devices
        assert not dev2.aborted and not dev2.failed, dev2.to_dict()
        assert dev2.skipped == TRAP_INDEX and dev2.timed == len(keys) - TRAP_INDEX
    finally:
        trap.release()
        first.stop()
        if second is not None:
            second.stop()
    _assert_each_block_once(db, keys, logs, tally)
    assert trap_key not in timed_keys(logs[0])  # the in-flight job died with the agent


def test_agent_killed_and_back_within_agent_wait_the_same_profile_finishes(tmp_path: Path, tally) -> None:
    """Kill, restart on the same port with a fresh cache while the profile waits: it requeues and finishes."""
    keys = block_keys()
    trap_key = keys[TRAP_INDEX]
    db = tmp_path / "lut.db"
    logs = [tmp_path / "jobs-1.jsonl", tmp_path / "jobs-2.jsonl"]
    trap = Trap(tmp_path / "trap")
    exporter = SleepExporter(trap_key=trap_key, trap_path=str(trap.path))
    first = start_sleep_agent(logs[0])
    second = None
    try:
        thread, box = _profile_in_thread(db, first.address, exporter, agent_wait_s=90.0)
        _kill_agent_in_trap(first, worker_pid(first), trap)
        tally.add(faults_injected=1)
        trap.release()
        second = start_sleep_agent(logs[1], port=first.port)  # fresh cache: blobs must be sent again
        report = joined(thread, box)
        (dev,) = report.devices
        assert not dev.aborted and not dev.failed, dev.to_dict()
        assert dev.timed == len(keys)
        assert any("requeued" in f and first.address in f for f in dev.agent_faults), dev.agent_faults
        assert any("back" in f or "answered again" in f for f in dev.agent_faults), dev.agent_faults
    finally:
        trap.release()
        first.stop()
        if second is not None:
            second.stop()
    _assert_each_block_once(db, keys, logs, tally)
    assert trap_key in timed_keys(logs[1]) and trap_key not in timed_keys(logs[0])
