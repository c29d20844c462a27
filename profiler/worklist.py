"""The shared to-do list of one device: blocks waiting, in flight, done and failed.

Several agents may serve one device name (identical boards); they all draw from one
``DeviceWork``. A job taken by an agent that disappears goes back to the front of the
queue, so another agent of that device (or the same one, once it returns) times it.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field

from space import Block

__all__ = ["DeviceWork", "Failure"]


@dataclass(frozen=True)
class Failure:
    """A block that failed on every attempt."""

    block_key: str
    reason: str
    attempts: int


@dataclass
class DeviceWork:
    """Blocks one device still has to time, guarded by one lock.

    Args:
        blocks: The blocks to time, in the order to time them.
    """

    blocks: list[Block]
    pending: collections.deque[Block] = field(init=False)
    in_flight: list[tuple[str, Block]] = field(default_factory=list)  # (agent address, block) sent, no result yet
    attempts: dict[Block, int] = field(default_factory=dict)
    done: set[Block] = field(default_factory=set)
    failures: list[Failure] = field(default_factory=list)
    retimed: int = 0
    aborted: str = ""  # why the device gave up (every agent gone), "" while healthy
    _cond: threading.Condition = field(default_factory=threading.Condition, repr=False)

    def __post_init__(self) -> None:
        self.pending = collections.deque(self.blocks)

    @property
    def total(self) -> int:
        return len(self.blocks)

    def finished(self) -> bool:
        with self._cond:
            return self._finished()

    def _finished(self) -> bool:
        return bool(self.aborted) or (not self.pending and not self.in_flight)

    def take(self, agent: str, stop: threading.Event, wait: bool = True, poll_s: float = 0.2) -> Block | None:
        """The next block for ``agent``; None once the device is finished or ``stop`` is set.

        With ``wait``, waits while the queue is empty but jobs in flight (anyone's) may come back;
        without it, returns None at once when nothing is pending.
        """
        with self._cond:
            while not stop.is_set():
                if self.aborted:
                    return None
                if self.pending:
                    block = self.pending.popleft()
                    self.in_flight.append((agent, block))
                    return block
                if not wait or not self.in_flight:
                    return None
                self._cond.wait(poll_s)
            return None

    def _release(self, agent: str, block: Block) -> None:
        try:
            self.in_flight.remove((agent, block))
        except ValueError:
            pass

    def complete(self, agent: str, block: Block) -> None:
        """``block`` has a row in the store."""
        with self._cond:
            self._release(agent, block)
            self.done.add(block)
            self._cond.notify_all()

    def give_back(self, agent: str, block: Block) -> None:
        """``agent`` could not run ``block`` (it went away): put it first in line for any agent."""
        with self._cond:
            self._release(agent, block)
            self.pending.appendleft(block)
            self._cond.notify_all()

    def job_failed(self, agent: str, block: Block, reason: str, max_attempts: int) -> Failure | None:
        """Count a failed attempt; requeue at the back, or return the final Failure."""
        with self._cond:
            self._release(agent, block)
            n = self.attempts.get(block, 0) + 1
            self.attempts[block] = n
            self._cond.notify_all()
            if n < max_attempts:
                self.pending.append(block)
                return None
            failure = Failure(block.key, reason, n)
            self.failures.append(failure)
            return failure

    def retime(self, blocks: list[Block]) -> None:
        """Time ``blocks`` again (their rows were measured while the device drifted)."""
        with self._cond:
            for block in blocks:
                self.done.discard(block)
                self.pending.appendleft(block)
            self.retimed += len(blocks)
            self._cond.notify_all()

    def abort(self, reason: str) -> None:
        """Stop handing out work for this device (its agents are gone)."""
        with self._cond:
            self.aborted = reason
            self._cond.notify_all()

    def counts(self) -> tuple[int, int]:
        """(blocks with rows, blocks failed)."""
        with self._cond:
            return len(self.done), len(self.failures)

    def wait_finished(self, timeout_s: float) -> bool:
        """Block until finished or ``timeout_s`` passed; True when finished."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not self._finished():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True
