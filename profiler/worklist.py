"""The shared to-do list of one device: timing tasks waiting, in flight, done and failed.

Several agents may serve one device name (identical boards); they all draw from one
``DeviceWork``. A task taken by an agent that disappears goes back to the front of the
queue, so another agent of that device (or the same one, once it returns) times it.

With ``rounds > 1`` every block is timed once per round, rounds in sequence (round 1 of every
block, then round 2, ...), so the readings of one block lie far apart in time; a block is done
when all its rounds have a reading.
"""

from __future__ import annotations

import collections
import threading
from dataclasses import dataclass, field
from typing import Any

from space import Block

__all__ = ["DeviceWork", "Failure", "Task"]


@dataclass(frozen=True)
class Failure:
    """A block that failed on every attempt."""

    block_key: str
    reason: str
    attempts: int


@dataclass(frozen=True)
class Task:
    """One timing of one block: its ``round`` (0-based) of the profile's rounds."""

    block: Block
    round: int = 0


@dataclass
class DeviceWork:
    """Tasks one device still has to run, guarded by one lock.

    Args:
        blocks: The blocks to time, in the order to time them.
        rounds: Readings per block.
    """

    blocks: list[Block]
    rounds: int = 1
    pending: collections.deque[Task] = field(init=False)
    in_flight: list[tuple[str, Task]] = field(default_factory=list)  # (agent address, task) sent, no result yet
    attempts: dict[Task, int] = field(default_factory=dict)
    readings: dict[Block, dict[int, Any]] = field(default_factory=dict)  # block -> round -> reading
    done: set[Block] = field(default_factory=set)
    failures: list[Failure] = field(default_factory=list)
    retimed: int = 0
    tasks_done: int = 0  # readings recorded (for progress when rounds > 1)
    aborted: str = ""  # why the device gave up (every agent gone), "" while healthy
    _failed: set[Block] = field(default_factory=set, repr=False)
    _cond: threading.Condition = field(default_factory=threading.Condition, repr=False)

    def __post_init__(self) -> None:
        if self.rounds < 1:
            raise ValueError(f"rounds must be >= 1, got {self.rounds}")
        self.pending = collections.deque(Task(b, r) for r in range(self.rounds) for b in self.blocks)

    @property
    def total(self) -> int:
        return len(self.blocks)

    def finished(self) -> bool:
        with self._cond:
            return self._finished()

    def _finished(self) -> bool:
        return bool(self.aborted) or (not self.pending and not self.in_flight)

    def take(self, agent: str, stop: threading.Event, wait: bool = True, poll_s: float = 0.2) -> Task | None:
        """The next task for ``agent``; None once the device is finished or ``stop`` is set.

        With ``wait``, waits while the queue is empty but tasks in flight (anyone's) may come back;
        without it, returns None at once when nothing is pending.
        """
        with self._cond:
            while not stop.is_set():
                if self.aborted:
                    return None
                if self.pending:
                    task = self.pending.popleft()
                    self.in_flight.append((agent, task))
                    return task
                if not wait or not self.in_flight:
                    return None
                self._cond.wait(poll_s)
            return None

    def _release(self, agent: str, task: Task) -> None:
        try:
            self.in_flight.remove((agent, task))
        except ValueError:
            pass

    def complete(self, agent: str, task: Task, reading: Any) -> list[Any] | None:
        """Record ``task``'s reading; the block's readings (by round) once every round has one, else None."""
        with self._cond:
            self._release(agent, task)
            self._cond.notify_all()
            if task.block in self._failed:
                return None
            per_round = self.readings.setdefault(task.block, {})
            per_round[task.round] = reading
            self.tasks_done += 1
            if len(per_round) < self.rounds:
                return None
            self.done.add(task.block)
            return [per_round[r] for r in range(self.rounds)]

    def give_back(self, agent: str, task: Task) -> None:
        """``agent`` could not run ``task`` (it went away): put it first in line for any agent."""
        with self._cond:
            self._release(agent, task)
            self.pending.appendleft(task)
            self._cond.notify_all()

    def job_failed(self, agent: str, task: Task, reason: str, max_attempts: int) -> Failure | None:
        """Count a failed attempt; requeue at the back, or fail the block and return the Failure."""
        with self._cond:
            self._release(agent, task)
            n = self.attempts.get(task, 0) + 1
            self.attempts[task] = n
            self._cond.notify_all()
            if n < max_attempts:
                self.pending.append(task)
                return None
            # The block cannot get all its readings: drop its other rounds too.
            self._failed.add(task.block)
            self.pending = collections.deque(t for t in self.pending if t.block != task.block)
            failure = Failure(task.block.key, reason, n)
            self.failures.append(failure)
            return failure

    def retime(self, tasks: list[Task]) -> None:
        """Run ``tasks`` again (their readings were taken while the device drifted)."""
        with self._cond:
            for task in tasks:
                self.readings.get(task.block, {}).pop(task.round, None)
                self.done.discard(task.block)
                self.pending.appendleft(task)
            self.retimed += len(tasks)
            self._cond.notify_all()

    def abort(self, reason: str) -> None:
        """Stop handing out work for this device (its agents are gone)."""
        with self._cond:
            self.aborted = reason
            self._cond.notify_all()

    def counts(self) -> tuple[int, int]:
        """(blocks done for progress, blocks failed); with rounds, readings count as a share of a block."""
        with self._cond:
            if self.rounds == 1:
                return len(self.done), len(self.failures)
            return min(len(self.blocks), self.tasks_done // self.rounds), len(self.failures)

    def left(self) -> int:
        """Tasks not yet run (pending or in flight)."""
        with self._cond:
            return len(self.pending) + len(self.in_flight)
