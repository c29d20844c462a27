"""The drift sentinel: a fixed reference block re-timed every N jobs, and what a drift hands back for re-timing."""

from __future__ import annotations

import logging
import threading

from profiler.worklist import Task
from protos import agent_pb2
from space import Block, ResNetSpace, get_space

from .session import AgentStats, Session
from .settings import AgentRef, ProfileSettings

__all__ = ["Sentinel", "sentinel_block"]

log = logging.getLogger(__name__)


def sentinel_block(space: str, resolution: int) -> Block:
    """The drift sentinel: a mid-network MBConv (stage 3, first slot, k5, e4) at ``resolution``; in ResNet50, the
    middle one of the bottlenecks of stage 3's first slot. A user's space with fewer stages or other choices
    takes its last stage before the fourth, and its kernel and expand ratio nearest 5 and 4."""
    sp = get_space(space)
    stage = min(2, sp.n_stages - 1)
    side = sp.stage_input_sides(resolution)[stage]
    if isinstance(sp, ResNetSpace):
        firsts = [b for b in sp.unique_blocks([resolution]) if b.kind == "bottleneck" and b.in_hw == side
                  and not b.skip]
        return sorted(firsts, key=lambda b: (b.in_chs, b.mid_chs, b.out_chs))[len(firsts) // 2]
    kernel = min(sp.ks_choices, key=lambda k: (abs(k - 5), k))
    expand = min(sp.expand_choices, key=lambda e: (abs(e - 4), e))
    return sp.slot_block(stage, 0, side, kernel, expand)


class Sentinel:
    """The drift sentinel of one agent: a fixed block re-timed every ``sentinel_every`` jobs.

    A reading off the baseline by more than ``sentinel_threshold`` is read again at once; a confirmed drift
    cools the agent down and hands back the tasks timed since the last good reading.
    """

    def __init__(self, ref: AgentRef, settings: ProfileSettings, stats: AgentStats, stop: threading.Event) -> None:
        self.ref = ref
        self.settings = settings
        self.stats = stats
        self.stop = stop
        self.block = sentinel_block(settings.space, settings.resolutions[0])
        self.baseline_ms: float | None = None  # None: not read yet; 0.0: the sentinel cannot run on this agent
        self.last_drift: float | None = None
        self.since_good: list[Task] = []  # tasks read since the last good reading
        self.jobs_since = 0  # jobs sent since the last reading

    @property
    def enabled(self) -> bool:
        return self.settings.sentinel_every > 0

    def forget_baseline(self) -> None:
        """A restarted agent may be in a different thermal state: take a new baseline."""
        self.baseline_ms = None

    def ensure_baseline(self, session: Session) -> None:
        """The faster of two first readings (0.0: sentinel off on this agent).

        A first job can run slow (a cold worker, a clock still ramping, an unlucky memory layout of
        a fresh session); a baseline taken from it would make every later reading look like a drift.
        """
        if self.enabled and self.baseline_ms is None:
            readings = [self._reading(session) for _ in range(2)]
            valid = [r for r in readings if r]
            self.baseline_ms = min(valid) if valid else 0.0

    def due(self) -> bool:
        return bool(self.baseline_ms) and self.jobs_since >= self.settings.sentinel_every

    def send(self, session: Session) -> None:
        session.send(self.block, None)
        self.jobs_since = 0

    def _reading(self, session: Session) -> float | None:
        """Time the sentinel alone; None when it cannot run."""
        result = session.time_alone(self.block)
        if result.WhichOneof("outcome") == "error":
            log.warning("%s: sentinel cannot run on %s (%s: %s); drift checks are off", self.ref.name,
                        self.ref.address, result.error.code, result.error.message)
            return None
        return result.stats.median_ms

    def _within(self, reading_ms: float) -> bool:
        return abs(reading_ms / self.baseline_ms - 1.0) <= self.settings.sentinel_threshold

    def check(self, session: Session, result: agent_pb2.BenchmarkResult) -> list[Task]:
        """Judge a sentinel reading; returns the tasks to time again (empty unless a drift is confirmed)."""
        if result.WhichOneof("outcome") == "error" or not self.baseline_ms:
            return []
        reading = result.stats.median_ms
        self.last_drift = reading / self.baseline_ms - 1.0
        if self._within(reading):
            self.since_good = []
            return []
        # A burst of contention from another tenant moves one reading; thermal or clock drift
        # persists. Read again at once and act only when the drift is confirmed.
        confirm = self._reading(session)
        if confirm is not None and self._within(confirm):
            self._transient(reading, confirm)
            return []
        self.stats.drifts += 1
        suspect, self.since_good = self.since_good, []
        log.warning("%s: sentinel drifted %+.1f%% on %s; cooling down and re-timing %d blocks", self.ref.name,
                    100 * self.last_drift, self.ref.address, len(suspect))
        return self._cool_down(session, confirm or reading, suspect)

    def _transient(self, reading: float, confirm: float) -> None:
        """One reading off, the next at once within: contention, not drift."""
        self.stats.transients += 1
        self.last_drift = confirm / self.baseline_ms - 1.0
        self.since_good = []
        log.info("%s: sentinel off by %+.1f%% once on %s, back within %.0f%% at once; no re-timing",
                 self.ref.name, 100 * (reading / self.baseline_ms - 1.0), self.ref.address,
                 100 * self.settings.sentinel_threshold)

    def _cool_down(self, session: Session, latest: float, suspect: list[Task]) -> list[Task]:
        """Cool down and read again until the sentinel is back, else re-base on the last reading; ``suspect``
        is timed again either way (nothing when stopping)."""
        baseline = self.baseline_ms
        for _ in range(self.settings.sentinel_retries):
            self.stats.idle_s += self.settings.sentinel_cooldown_s
            if self.stop.wait(self.settings.sentinel_cooldown_s):
                return []  # stopping: the rows stay as they are and a rerun resumes
            again = self._reading(session)
            if again is None:
                continue
            latest = again
            self.last_drift = again / baseline - 1.0
            if self._within(again):
                return suspect
        # The device settled somewhere new: measure against that from now on.
        log.warning("%s: sentinel stays %+.1f%% off on %s; re-basing", self.ref.name, 100 * self.last_drift,
                    self.ref.address)
        self.baseline_ms = latest
        self.last_drift = 0.0
        return suspect
