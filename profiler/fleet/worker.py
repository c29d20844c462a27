"""The worker loop: one thread per agent takes its device's blocks, keeps the agent's pipeline full, stores each
result as it arrives, and waits out an agent that disappears."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from lut.errors import StoreError
from lut.repeatability import ROUND_MEDIANS
from lut.store import LutStore
from profiler.client import AgentClient, AgentError
from profiler.storewait import keep_trying
from profiler.worklist import DeviceWork, Task
from protos import agent_pb2
from space import Block

from .exports import ExportError, Exports
from .sentinel import Sentinel
from .session import AgentStats, Sent, Session
from .settings import AgentRef, ProfileSettings

__all__ = ["AgentWorker"]

log = logging.getLogger(__name__)


class AgentWorker:
    """Runs one agent's share of a device's blocks (one thread).

    Jobs are pipelined: while the agent times one job, the next is already on its way, so
    host-side work (export lookup, upload, storing the row) never leaves the device idle. The
    agent runs jobs strictly one after another, so timing still owns the device.
    """

    def __init__(self, ref: AgentRef, work: DeviceWork, setting_id: int, store: LutStore, exports: Exports,
                 settings: ProfileSettings, client_kw: Mapping[str, Any], stop: threading.Event,
                 on_row: Callable[[], None], agent_version: str, host: str = "") -> None:
        self.ref = ref
        self.host = host  # this profiling run's name (its lease holder), kept in every row it stores
        self.work = work
        self.setting_id = setting_id
        self.store = store
        self.exports = exports
        self.settings = settings
        self.client_kw = client_kw
        self.stop = stop
        self.on_row = on_row
        self.agent_version = agent_version
        self.stats = AgentStats()
        self.sentinel = Sentinel(ref, settings, self.stats, stop)
        self.faults: list[str] = []  # one line per incident, for the final report
        self._unanswered: set[Task] = set()  # sent to this agent on a stream that broke before their results came

    # -- loop ----------------------------------------------------------------------------
    def run(self) -> None:
        start = time.monotonic()
        client = AgentClient(self.ref.address, **self.client_kw)
        try:
            while not self.stop.is_set():
                session = Session(client, self.exports, self.settings, self.stats)
                try:
                    if self._drive(session):
                        return
                except AgentError as err:
                    requeued = [sent.task for sent in session.outstanding if sent.task is not None]
                    for task in requeued:
                        self.work.give_back(self.ref.address, task)
                    self._unanswered.update(requeued)
                    self.faults.append(f"{self.ref.address}: {err.code}: {len(requeued)} job(s) requeued")
                    log.warning("%s: agent %s: %s; its jobs are requeued", self.ref.name, self.ref.address, err)
                    if not self._wait_for_agent(client):
                        return
                finally:
                    session.close()
        except StoreError as err:  # the store stayed away for store_wait_s: the device stops, its rows are kept
            self.faults.append(f"{self.ref.address}: {err}")
            log.error("%s: %s; the profile of this device stops (a rerun resumes it)", self.ref.name, err)
            self.work.abort(f"the LUT store failed: {err}; the rows stored so far are kept, rerun to resume")
        finally:
            client.close()
            self.stats.wall_s = time.monotonic() - start

    def _drive(self, session: Session) -> bool:
        """Keep up to ``pipeline_depth`` jobs on the stream until the device is done (True) or stopped."""
        self.sentinel.ensure_baseline(session)
        while not self.stop.is_set():
            self._fill(session)
            if not session.outstanding:
                return True  # nothing pending for this agent: the device is finished, aborted or stopped
            sent, result = session.receive()  # may raise: the job stays outstanding so run() requeues it
            if sent.task is None:
                self.work.retime(self.sentinel.check(session, result))
            else:
                self._on_result(session, sent, result)
        return False

    def _fill(self, session: Session) -> None:
        """Send jobs until the pipeline is full; a due sentinel is sent last and blocks further sends."""
        while len(session.outstanding) < self.settings.pipeline_depth and not self.stop.is_set():
            if any(s.task is None for s in session.outstanding):
                return  # a sentinel is in flight: its reading must not be followed by unchecked jobs
            if self.sentinel.due():
                self.sentinel.send(session)
                return
            waited_from = time.monotonic()
            task = self.work.take(self.ref.address, self.stop, wait=not session.outstanding)
            if not session.outstanding:
                # Nothing was queued for this agent: time spent waiting here is the device running
                # out of work (or others' jobs that may come back), not scheduling overhead.
                self.stats.idle_s += time.monotonic() - waited_from
            if task is None:
                return
            try:
                session.send(task.block, task, resend=task in self._unanswered)
                self._unanswered.discard(task)
            except ExportError as err:  # deterministic: no retry, the block fails with the reason
                self._job_failed(task, str(err), max_attempts=1)
                continue
            except BaseException:
                self.work.give_back(self.ref.address, task)  # taken but never sent: not lost
                raise
            self.sentinel.jobs_since += 1

    # -- results -------------------------------------------------------------------------
    def _on_result(self, session: Session, sent: Sent, result: agent_pb2.BenchmarkResult) -> None:
        task = sent.task
        if session.blob_lost(sent, result):
            session.send(task.block, task, force_blob=True)
            return
        if result.WhichOneof("outcome") == "error":
            self._job_failed(task, f"{result.error.code}: {result.error.message}")
            return
        if result.replayed:
            self.faults.append(f"{self.ref.address}: {task.block.key} recovered from the agent (it ran there while "
                               "its result could not arrive), not timed again")
        readings = self.work.complete(self.ref.address, task, self._reading(result))
        self.sentinel.since_good.append(task)
        if readings is not None:
            self._store(task.block, readings)
        self.on_row()

    def _reading(self, result: agent_pb2.BenchmarkResult) -> tuple[dict[str, Any], dict[str, Any]]:
        """(statistics, provenance) of one timing job, in the store's row format."""
        st = result.stats
        stats = {"median_ms": st.median_ms, "mean_ms": st.mean_ms, "std_ms": st.std_ms, "p10_ms": st.p10_ms,
                 "p90_ms": st.p90_ms, "n": int(st.n)}
        provenance = {
            "agent_version": result.agent_version or self.agent_version,
            "temp_before_c": _max_temp(result.before),
            "temp_after_c": _max_temp(result.after),
            "sentinel_drift": self.sentinel.last_drift,
            "source": "measured",
            "extra": {"agent": self.ref.address, "host": self.host, "rel_ci_median": st.rel_ci_median, "stop_reason": result.stop_reason,
                      "load_ms": result.load_ms, "model_sha256": result.model_sha256,
                      "options": dict(result.options)},  # runtime options in effect, e.g. the clock
        }
        return stats, provenance

    def _store(self, block: Block, readings: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
        """Write the block's row: the round with the lowest median (host noise only adds), all medians kept."""
        stats, provenance = min(readings, key=lambda r: r[0]["median_ms"])
        if len(readings) > 1:
            medians = [r[0]["median_ms"] for r in readings]
            self.stats.round_medians[block.key] = medians
            provenance = {**provenance, "extra": {**provenance["extra"], ROUND_MEDIANS: medians}}
        # Not cut short by stop: the last rows of a finished profile are stored while the run winds down.
        stored = keep_trying(lambda: self.store.put_claimed_row(self.setting_id, block.key, stats, provenance,
                                                                holder=self.host),
                             f"storing {block.key}", self.settings.store_wait_s)
        if not stored:
            # This host's claim lapsed (it lost the store for longer than the lease) and another host stored the
            # block meanwhile: that row stays.
            self.faults.append(f"{self.ref.address}: {block.key} already stored by another host; this late result "
                               "is dropped")
            log.warning("%s: %s was stored by another host while this one could not reach the store; its late "
                        "result is dropped", self.ref.name, block.key)

    def _job_failed(self, task: Task, reason: str, max_attempts: int | None = None) -> None:
        failure = self.work.job_failed(self.ref.address, task, reason, max_attempts or self.settings.max_attempts)
        if failure is not None:
            keep_trying(lambda: self.store.record_failure(self.setting_id, task.block.key, reason,
                                                          attempts=failure.attempts),
                        f"recording the failure of {task.block.key}", self.settings.store_wait_s)
            log.warning("%s: %s failed %d times: %s", self.ref.name, task.block.key, failure.attempts, reason)

    # -- availability ----------------------------------------------------------------------
    def _wait_for_agent(self, client: AgentClient) -> bool:
        """Poll until the agent answers again (True) or the device no longer needs it (False)."""
        started = time.monotonic()
        try:
            return self._poll_agent(client)
        finally:
            self.stats.idle_s += time.monotonic() - started

    def _poll_agent(self, client: AgentClient) -> bool:
        deadline = time.monotonic() + self.settings.agent_wait_s
        pause = 0.5
        while not self.stop.is_set() and not self.work.finished():
            try:
                client.health(timeout_s=min(5.0, self.settings.agent_wait_s))
                self.sentinel.forget_baseline()  # a restarted agent may be in a different thermal state
                log.info("%s: agent %s is back", self.ref.name, self.ref.address)
                self.faults.append(f"{self.ref.address}: back after {time.monotonic() - deadline + self.settings.agent_wait_s:.1f} s")
                return True
            except AgentError:
                pass
            if time.monotonic() > deadline:
                log.warning("%s: agent %s gone for %.0f s; giving up on it", self.ref.name, self.ref.address,
                            self.settings.agent_wait_s)
                self.faults.append(f"{self.ref.address}: gone for {self.settings.agent_wait_s:.0f} s; given up")
                return False
            self.stop.wait(pause)
            pause = min(pause * 2, 5.0)
        return False


def _max_temp(state: agent_pb2.DeviceState) -> float | None:
    temps = [z.temp_c for z in state.thermal]
    return max(temps) if temps else None
