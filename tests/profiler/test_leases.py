"""Work leases in the store, on SQLite and PostgreSQL: claims are disjoint, stored blocks are never handed
out, lapsed leases go to the next claimer, and a device's work list drains them batch by batch."""

from __future__ import annotations

import threading
import time

import pytest

from lut import DeviceSetting, LutStore
from profiler.worklist import DeviceWork, Leases
from space import get_space

BLOCKS = get_space("ofa-mbv3-w1.0").unique_blocks(128)[:12]
KEYS = [b.key for b in BLOCKS]
BOARD = DeviceSetting("board", "sleep", "1", 1, "fp32", "json")


@pytest.fixture()
def store(store_url: str):
    with LutStore(store_url) as store:
        yield store


def test_claims_are_disjoint_and_skip_stored_blocks(store: LutStore) -> None:
    sid = store.ensure_setting(BOARD)
    store.put_row(sid, KEYS[0], {"median_ms": 1.0})
    assert store.seed_work(sid, KEYS) == len(KEYS) - 1
    assert store.seed_work(sid, KEYS) == 0  # seeding again changes nothing
    a, others = store.claim_work(sid, "a", KEYS, 4, 60.0)
    assert a == KEYS[1:5] and others == 0
    b, others = store.claim_work(sid, "b", KEYS, 100, 60.0)
    assert b == KEYS[5:] and others == 4
    assert store.claim_work(sid, "c", KEYS, 100, 60.0) == ([], len(KEYS) - 1)
    store.put_row(sid, KEYS[1], {"median_ms": 1.0})  # a row retires its lease
    assert store.claim_work(sid, "c", KEYS, 100, 60.0) == ([], len(KEYS) - 2)
    assert store.release_leases("a") == 3
    assert store.claim_work(sid, "c", KEYS, 100, 60.0)[0] == KEYS[2:5]


def test_lapsed_leases_go_to_the_next_claimer(store: LutStore) -> None:
    sid = store.ensure_setting(BOARD)
    store.seed_work(sid, KEYS)
    assert store.claim_work(sid, "dead", KEYS, 3, 0.2)[0] == KEYS[:3]
    assert store.claim_work(sid, "live", KEYS, 3, 60.0)[0] == KEYS[3:6]
    assert store.renew_leases("live", 60.0) == 3
    deadline = time.monotonic() + 10
    while (claimed := store.claim_work(sid, "next", KEYS, 3, 60.0)[0]) != KEYS[:3]:
        assert time.monotonic() < deadline, claimed
        time.sleep(0.05)
    assert store.lease_holders(sid) == ["live", "next"]


def test_concurrent_claimers_never_share_a_block(store: LutStore) -> None:
    sid = store.ensure_setting(BOARD)
    store.seed_work(sid, KEYS)
    got: dict[str, list[str]] = {}

    def claim(name: str) -> None:
        mine: list[str] = []
        while keys := store.claim_work(sid, name, KEYS, 1, 60.0)[0]:
            mine += keys
        got[name] = mine

    threads = [threading.Thread(target=claim, args=(f"h{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    claimed = [k for keys in got.values() for k in keys]
    assert sorted(claimed) == sorted(KEYS)


def test_device_work_drains_leases_in_batches(store: LutStore) -> None:
    sid = store.ensure_setting(BOARD)
    leases = Leases(store, sid, "host-a", KEYS, batch=5, lease_s=30.0)
    other = Leases(store, sid, "host-b", KEYS, batch=2, lease_s=30.0)
    work = DeviceWork(list(BLOCKS), rounds=2, leases=leases)
    stop = threading.Event()
    held_by_b, _ = other.claim()
    assert held_by_b == KEYS[:2]
    taken = []
    while (task := work.take("agent", stop, wait=False)) is not None:
        taken.append(task)
        if (readings := work.complete("agent", task, 1.0)) is not None:
            store.put_row(sid, task.block.key, {"median_ms": min(readings)})
    # Batches of 5 in round 0 until nothing is left to claim, then round 1 of all of them.
    assert [t.block.key for t in taken] == KEYS[2:] * 2 and [t.round for t in taken] == [0] * 10 + [1] * 10
    assert not work.finished()  # host-b still holds two blocks: host-a waits for them
    other.close()  # host-b gives up: its blocks are host-a's to take
    rest = [work.take("agent", stop, wait=True) for _ in range(4)]
    assert {t.block.key for t in rest} == set(KEYS[:2])
    for task in rest:
        if work.complete("agent", task, 1.0) is not None:
            store.put_row(sid, task.block.key, {"median_ms": 1.0})
    assert work.take("agent", stop, wait=True) is None and work.finished()
    assert len(work.done) == len(KEYS) and store.keys(sid) == set(KEYS)
    leases.close()


def test_own_lapsed_leases_claimed_again_are_not_queued_twice(store: LutStore) -> None:
    """A host that could not renew its leases for a while may claim its own blocks back; each is timed once."""
    sid = store.ensure_setting(BOARD)
    leases = Leases(store, sid, "host-a", KEYS[:4], batch=2, lease_s=0.2)
    leases._stop.set()  # no heartbeat: the leases lapse as if the host had lost the store
    work = DeviceWork(list(BLOCKS[:4]), leases=leases)
    stop = threading.Event()
    first = work.take("agent", stop, wait=False)
    assert first is not None and first.block.key == KEYS[0]
    time.sleep(0.3)  # KEYS[0] (in flight) and KEYS[1] (queued) lapse; the next claim returns them with the rest
    taken = [first]
    while (task := work.take("agent", stop, wait=False)) is not None:
        taken.append(task)
    assert [t.block.key for t in taken] == KEYS[:4]
    for task in taken:
        work.complete("agent", task, 1.0)
        store.put_row(sid, task.block.key, {"median_ms": 1.0})
    assert work.take("agent", stop, wait=False) is None and work.finished()
    leases.close()
