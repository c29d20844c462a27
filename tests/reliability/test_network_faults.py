"""An agent that stops answering (SIGSTOP, a frozen board or a dead link) in the middle of a profile.

Two agents serve one device. One is frozen after ten rows: its job hits the deadline, is requeued to
the other agent, the frozen one is given up after ``agent_wait_s``, and the report says so. The
healthy agent is held back (its last export waits) until the frozen one has been given up, so the
report's content does not depend on timing. The frozen agent is resumed (SIGCONT) and stopped at the end.
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

from lut import LutStore
from profiler.fleet import AgentRef, profile
from space import Block

from ._harness import (
    TOKEN,
    SleepExporter,
    block_keys,
    job_log_entries,
    kill_pid,
    profile_settings,
    start_sleep_agent,
    store_figures,
    timed_keys,
    worker_pid,
)

FREEZE_AFTER_ROWS = 10


class _GiveUpWatch(logging.Handler):
    """Sets ``event`` when the fleet logs that it gave up on ``address``."""

    def __init__(self, address: str) -> None:
        super().__init__(logging.WARNING)
        self.address = address
        self.event = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if self.address in message and "giving up" in message:
            self.event.set()


class _HoldLast(SleepExporter):
    """The sleep exporter, but the export of ``last`` waits for ``release`` (at most ``limit_s``)."""

    def __init__(self, last: str, release: threading.Event, limit_s: float) -> None:
        super().__init__(scale=2.0)
        self.last, self.release, self.limit_s = last, release, limit_s

    def __call__(self, block: Block, fmt: str, seed: int) -> bytes:
        if block.key == self.last:
            self.release.wait(self.limit_s)
        return super().__call__(block, fmt, seed)


def test_frozen_agent_deadline_requeue_and_clear_report(tmp_path: Path, tally) -> None:
    keys = block_keys()
    logs = [tmp_path / "jobs-a.jsonl", tmp_path / "jobs-b.jsonl"]
    frozen, healthy = start_sleep_agent(logs[0]), start_sleep_agent(logs[1])
    frozen_pids = [frozen.proc.pid, worker_pid(frozen)]
    watch = _GiveUpWatch(frozen.address)
    fleet_log = logging.getLogger("profiler.fleet")
    fleet_log.addHandler(watch)
    stopped = threading.Event()

    def on_progress(p) -> None:
        if p.done >= FREEZE_AFTER_ROWS and not stopped.is_set():
            stopped.set()
            for pid in frozen_pids:
                kill_pid(pid, signal.SIGSTOP)

    try:
        settings = profile_settings(job_timeout_s=3.0, rpc_timeout_s=2.0, agent_wait_s=2.0)
        agents = [AgentRef("board", frozen.address), AgentRef("board", healthy.address)]
        with LutStore(tmp_path / "lut.db") as store:
            report = profile(store, agents, settings, token=TOKEN, on_progress=on_progress,
                             export_fn=_HoldLast(keys[-1], watch.event, limit_s=90.0))
        tally.add(faults_injected=1)
        (dev,) = report.devices
        assert stopped.is_set() and watch.event.is_set()
        assert not dev.aborted and not dev.failed and dev.timed == len(keys), dev.to_dict()
        faults = [f for f in dev.agent_faults if frozen.address in f]
        assert any("requeued" in f for f in faults), dev.agent_faults  # its job went back to the device's queue
        assert any("given up" in f for f in faults), dev.agent_faults  # ... and the agent was dropped
        assert not any(healthy.address in f for f in dev.agent_faults), dev.agent_faults
        tally.note(f"frozen agent report: {'; '.join(dev.agent_faults)}")
    finally:
        fleet_log.removeHandler(watch)
        for pid in frozen_pids:
            kill_pid(pid, signal.SIGCONT)
        frozen.stop()
        healthy.stop()
    final = store_figures(tmp_path / "lut.db")
    tally.add(rows_lost=final.lost(keys), rows_duplicated=final.duplicated)
    assert final.integrity == "ok"
    assert final.keys == set(keys) and final.rows == final.distinct == len(keys)
    timed_a, timed_b = timed_keys(logs[0]), timed_keys(logs[1])
    assert set(timed_a) | set(timed_b) == set(keys)
    assert set(timed_a.values()) == {1} and set(timed_b.values()) == {1}
    # Once resumed, the frozen agent may finish the jobs it held when it froze: the one it was running and
    # the one buffered behind it (pipeline depth 2), both already requeued to the healthy agent. It runs
    # them before gRPC hands it the host's cancellation. No block it had timed before the freeze is timed again.
    twice = set(timed_a) & set(timed_b)
    assert len(twice) <= settings.pipeline_depth, twice
    frozen_order = [e["job_id"] for e in job_log_entries(logs[0])]
    assert twice <= set(frozen_order[len(frozen_order) - len(twice):]), (twice, frozen_order)
