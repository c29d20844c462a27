"""The shared to-do list of one device: timing tasks waiting, in flight, done and failed.

Several agents may serve one device name (identical boards); they all draw from one
``DeviceWork``. A task taken by an agent that disappears goes back to the front of the
queue, so another agent of that device (or the same one, once it returns) times it.

Several profiling hosts may fill one device setting of a shared store. Then the blocks are
not all queued up front: ``DeviceWork`` claims them a batch at a time through :class:`Leases`
(the store's ``work_leases`` table). A host renews its leases while it runs; a host that dies
stops renewing, and once its leases lapse the other hosts claim those blocks. A block with a row
is never claimed, so neither a second host nor a rerun times it again. When nothing is left to
claim but other hosts still hold leases, the agents wait and claim again, so the last host
standing finishes the work of one that died.

With ``rounds > 1`` every block is timed once per round, rounds in sequence (round 1 of every
block, then round 2, ...), so the readings of one block lie far apart in time; a block is done
when all its rounds have a reading.
"""

from __future__ import annotations

import collections
import logging
import os
import socket
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lut.errors import StoreError
from profiler.storewait import keep_trying
from space import Block

if TYPE_CHECKING:
    from lut.store import LutStore

__all__ = ["DeviceWork", "Failure", "Leases", "Task", "host_id"]

log = logging.getLogger(__name__)


def host_id() -> str:
    """A name for this profiling run as a lease holder: ``host:pid:random``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _dead_local_holder(holder: str) -> bool:
    """Whether ``holder`` was a profiling process on this host that no longer runs."""
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class Leases:
    """One host's claims on one device setting's blocks, renewed by a heartbeat thread.

    Making one puts the plan's unstored blocks on the setting's work list (unheld); the first
    claim starts the heartbeat, and :meth:`close` stops it and hands back what is still held.

    Args:
        store: The shared store.
        setting_id: The device setting.
        holder: This host's lease-holder name (one per profile run).
        block_keys: This host's plan: only these blocks are claimed.
        batch: Blocks per claim.
        lease_s: How long a lease lasts without renewal; renewed every third of it.
        wait_s: How long a claim is tried again while the store cannot be reached.
    """

    def __init__(self, store: LutStore, setting_id: int, holder: str, block_keys: Sequence[str], *,
                 batch: int = 16, lease_s: float = 60.0, wait_s: float = 120.0) -> None:
        if batch < 1 or lease_s <= 0:
            raise ValueError(f"Leases need batch >= 1 and lease_s > 0, got batch={batch}, lease_s={lease_s}")
        self.store = store
        self.setting_id = setting_id
        self.holder = holder
        self.block_keys = list(block_keys)
        self.batch = batch
        self.lease_s = lease_s
        self.wait_s = wait_s
        self.poll_s = min(1.0, lease_s / 4)  # how often idle agents look for lapsed leases
        self._stop = threading.Event()
        self._heartbeat = threading.Thread(target=self._renew, name=f"leases-{setting_id}", daemon=True)
        store.seed_work(setting_id, self.block_keys)
        # A run killed on this host (kill -9, a crash) cannot release its leases; a rerun here
        # need not wait for them to lapse.
        for dead in filter(_dead_local_holder, store.lease_holders(setting_id)):
            log.info("taking over the leases of %s (that process is gone)", dead)
            store.release_leases(dead)

    def claim(self, stop: threading.Event | None = None) -> tuple[list[str], int]:
        """(newly leased block keys, blocks of the plan other hosts still hold).

        A store that cannot be reached is tried again for up to ``wait_s``, or until ``stop`` is set (Ctrl-C).

        Raises:
            StoreUnavailable: the store stayed away.
        """
        if not self._heartbeat.is_alive() and not self._stop.is_set():
            self._heartbeat.start()
        return keep_trying(lambda: self.store.claim_work(self.setting_id, self.holder, self.block_keys, self.batch,
                                                         self.lease_s), "claiming blocks", self.wait_s, stop)

    def _renew(self) -> None:
        while not self._stop.wait(self.lease_s / 3):
            try:
                self.store.renew_leases(self.holder, self.lease_s)
            except Exception as err:  # noqa: BLE001 - a missed renewal only risks a lapse; keep trying
                log.warning("could not renew the work leases of %s: %s", self.holder, err)

    def close(self) -> None:
        """Stop renewing and hand back every lease still held (its blocks go to other hosts at once)."""
        self._stop.set()
        if self._heartbeat.ident is not None:
            self._heartbeat.join()
        try:
            released = self.store.release_leases(self.holder)
        except StoreError as err:  # they lapse on their own after lease_s
            log.warning("could not hand back the work leases of %s: %s", self.holder, err)
            return
        if released:
            log.info("released %d unfinished block leases of %s", released, self.holder)


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
        leases: Claim the blocks through these leases, a batch at a time (several hosts share the
            setting), instead of queueing them all. The first round of every block this host can claim
            comes first, then the second round of all of them, and so on.
    """

    blocks: list[Block]
    rounds: int = 1
    leases: Leases | None = None
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
    _drained: bool = field(default=False, repr=False)  # the leases have nothing more for this host

    def __post_init__(self) -> None:
        if self.rounds < 1:
            raise ValueError(f"rounds must be >= 1, got {self.rounds}")
        queued = self.blocks if self.leases is None else []
        self.pending = collections.deque(Task(b, r) for r in range(self.rounds) for b in queued)
        self._drained = self.leases is None
        self._by_key = {b.key: b for b in self.blocks}
        self._rounds_queued: dict[Block, int] = {}  # claimed blocks -> rounds queued so far

    @property
    def total(self) -> int:
        return len(self.blocks)

    def finished(self) -> bool:
        with self._cond:
            return self._finished()

    def _finished(self) -> bool:
        return bool(self.aborted) or (not self.pending and not self.in_flight and self._drained)

    def _refill(self, stop: threading.Event) -> bool:
        """Queue more work: a newly claimed batch (its first round), else the next round of every claimed
        block, so rounds stay in sequence across all this host's blocks. False when there is none right now."""
        assert self.leases is not None
        held_again: set[str] = set()
        while True:
            keys, others = self.leases.claim(stop)
            # A claim may hand back this host's own blocks: their leases lapsed while the host could not renew
            # them (it lost the store for a while) and nobody else took them. They are queued, in flight or done
            # here already; the claim only holds them again, and the next claim goes on to new blocks.
            fresh = [self._by_key[key] for key in keys if self._by_key[key] not in self._rounds_queued]
            if fresh or held_again.issuperset(keys):  # also ends a lease so short it lapses between claims
                break
            held_again.update(keys)
        for block in fresh:
            self._rounds_queued[block] = 1
            self.pending.append(Task(block, 0))
        if fresh:
            return True
        for block, queued in self._rounds_queued.items():
            if queued < self.rounds and block not in self._failed:
                self._rounds_queued[block] = queued + 1
                self.pending.append(Task(block, queued))
        if not self.pending and not others:
            self._drained = True  # nothing left in the store; tasks that come back are requeued locally
        return bool(self.pending)

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
                if not self._drained:
                    if self._refill(stop):
                        continue
                    if not self._drained:  # other hosts hold the rest: wait for their rows or lapsed leases
                        if not wait:
                            return None
                        self._cond.wait(self.leases.poll_s if self.leases else poll_s)
                        continue
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
        """Tasks of this host not yet run (pending or in flight)."""
        with self._cond:
            return len(self.pending) + len(self.in_flight)
