"""Faults on real network stacks: every agent in its own network namespace, its link shaped, lossy or cut.

The profiling host is this test process (joined to the lab's hub); each device is a sleep-runtime agent in
a namespace of its own (see :mod:`._netlab`). Every scenario checks what the loopback suite checks (rows =
blocks, no key twice, each row says which agent timed it and which host stored it, the agents' job logs
time each block once) and notes what the fault cost against the same profile over a clean link: wall
time and the device-busy fraction. The partition scenarios trap one block's job on the device (see
:class:`._harness.Trap`) so that jobs provably finish on the device while the link is down.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from pathlib import Path

import pytest

from lut import LutStore
from profiler.client import AgentClient
from profiler.fleet import AgentRef, ProfileReport, profile
from space import Block

from ._harness import (
    TOKEN,
    SleepExporter,
    Trap,
    block_keys,
    in_thread,
    joined,
    profile_settings,
    requeued_jobs,
    timed_keys,
    wait_for,
)
from ._netagents import NetAgent
from ._netlab import NetLab

KEYS = block_keys()[::12]  # 8 blocks spread over the space: a few of each kind
PHONE = {"rtt_ms": 150.0, "loss_pct": 2, "rate_mbit": 5.0}
PAD_BYTES = 150_000  # every phone block's model carries this much: 1.2 MB over 5 Mbit/s


@pytest.fixture
def agents():
    """Agents to stop at the end (before the lab's namespaces go)."""
    started: list[NetAgent] = []
    yield started
    for agent in started:
        agent.stop()


def _settings(**overrides: object):
    base = {"only_keys": tuple(KEYS), "job_timeout_s": 5.0, "rpc_timeout_s": 5.0, "connect_timeout_s": 20.0}
    return profile_settings(**{**base, **overrides})


def _profile(db: Path, agents: list[NetAgent], exporter: SleepExporter, on_progress=None, **settings) -> ProfileReport:
    with LutStore(db) as store:
        return profile(store, [AgentRef("board", a.address) for a in agents], _settings(**settings), token=TOKEN,
                       export_fn=exporter, on_progress=on_progress)


def _rows(db: Path) -> list[tuple[str, dict]]:
    with LutStore(db, create=False) as store:
        return [(key, json.loads(extra)) for key, extra in store._query("SELECT block_key, extra FROM lut_rows")]


def check_rows(db: Path, keys: list[str], addresses: set[str], tally) -> list[tuple[str, dict]]:
    """Every block has exactly one row, timed by one of ``addresses`` and stored by a named host."""
    rows = _rows(db)
    stored = Counter(k for k, _ in rows)
    tally.add(rows_lost=len(set(keys) - set(stored)), rows_duplicated=sum(n - 1 for n in stored.values()))
    assert set(stored) == set(keys) and set(stored.values()) == {1}, stored
    assert {extra["agent"] for _, extra in rows} <= addresses, rows
    assert all(extra.get("host") for _, extra in rows), rows
    return rows


def check_timed_once(logs: list[Path], keys: list[str], tally) -> Counter:
    timed = timed_keys(*logs)
    twice = {k: n for k, n in timed.items() if n > 1}
    tally.add(blocks_timed_twice=len(twice))
    assert set(timed) == set(keys) and not twice, f"timed more than once on the devices: {twice}"
    return timed


def _cost(label: str, report: ProfileReport, clean: ProfileReport | None, tally) -> str:
    (dev,) = report.devices
    line = f"{label}: wall {report.wall_s:.1f} s, busy {dev.busy_fraction:.0%}"
    if clean is not None:
        (base,) = clean.devices
        line += f" (clean link: {clean.wall_s:.1f} s, busy {base.busy_fraction:.0%})"
    tally.note(line)
    return line


class _LogWatch(logging.Handler):
    """Sets ``event`` when a ``profiler.fleet`` record mentions ``address`` and ``words``."""

    def __init__(self, address: str, words: str) -> None:
        super().__init__(logging.INFO)
        self.address, self.words = address, words
        self.event = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if self.address in message and self.words in message:
            self.event.set()

    def __enter__(self) -> _LogWatch:
        logger = logging.getLogger("profiler.fleet")
        self._level = logger.level
        logger.setLevel(logging.INFO)
        logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logger = logging.getLogger("profiler.fleet")
        logger.removeHandler(self)
        logger.setLevel(self._level)


# -- a phone on Wi-Fi -------------------------------------------------------------------------------------------
def test_phone_link_large_uploads_each_sent_once(lab: NetLab, agents: list[NetAgent], tmp_path: Path, tally) -> None:
    """150 ms RTT, 2% loss each way, 5 Mbit/s: every block stored once, every model uploaded once, a rerun none."""
    clean = NetAgent(lab.node("clean"), tmp_path / "clean").start()
    agents.append(clean)
    phone_node = lab.node("phone")
    phone_node.shape(PHONE["rate_mbit"])
    phone_node.loss(PHONE["loss_pct"])
    phone = NetAgent(phone_node, tmp_path / "phone", rtt_ms=PHONE["rtt_ms"]).start()
    agents.append(phone)
    exporter = SleepExporter(pad_bytes=PAD_BYTES)
    sizes = {k: len(exporter(Block.from_key(k), "json", 0)) for k in KEYS}

    base = _profile(tmp_path / "clean.db", [clean], exporter)
    report = _profile(tmp_path / "phone.db", [phone], exporter)
    again = _profile(tmp_path / "again.db", [phone], exporter)  # a second LUT of the same phone
    tally.add(faults_injected=1)
    for r in (base, report, again):
        (dev,) = r.devices
        assert r.ok and dev.timed == len(KEYS), dev.to_dict()
    (dev,), (dev2,) = report.devices, again.devices
    assert dev.uploaded_bytes == sum(sizes.values())  # each model crossed the slow link once
    assert dev2.uploaded_bytes == 0 and dev2.saved_bytes == sum(sizes.values())  # ... and never again
    check_rows(tmp_path / "phone.db", KEYS, {phone.address}, tally)
    check_rows(tmp_path / "again.db", KEYS, {phone.address}, tally)
    check_timed_once([clean.job_log], KEYS, tally)
    assert timed_keys(phone.job_log) == Counter({k: 2 for k in KEYS})  # once per profile, two profiles
    _cost(f"phone link ({PHONE['rtt_ms']:g} ms RTT, {PHONE['loss_pct']}% loss, {PHONE['rate_mbit']:g} Mbit/s, "
          f"{sum(sizes.values()) / 1e6:.1f} MB of models)", report, base, tally)
    _cost("phone link, models cached on the phone", again, base, tally)


# -- a partition between host and agent ---------------------------------------------------------------------------
def _partition_mid_job(lab: NetLab, agent: NetAgent, trap: Trap, trap_index: int) -> None:
    """Once the trapped job runs on the device, cut the link; let that job (and the next, already sent) finish
    on the device while the host cannot hear it."""
    worker = agent.worker_pid()
    wait_for(lambda: trap.entered(worker), 60.0, "the trapped job to start on the device")
    agent.node.partition(lab.root_ip)
    trap.release()
    wait_for(lambda: KEYS[trap_index] in timed_keys(agent.job_log), 30.0, "the trapped job to finish on the device")


def test_partition_healed_within_agent_wait_resumes_without_timing_twice(
        lab: NetLab, agents: list[NetAgent], tmp_path: Path, tally) -> None:
    """The link goes down mid-job and comes back before the host gives up: the host resumes the agent and the
    results of the jobs that ran during the outage are taken from the agent, not timed again."""
    node = lab.node("dev")
    agent = NetAgent(node, tmp_path / "dev").start()
    agents.append(agent)
    base = _profile(tmp_path / "clean.db", [agent], SleepExporter())  # the clean run, into its own store
    trap_index = 3
    trap = Trap(tmp_path / "trap")
    exporter = SleepExporter(trap_key=KEYS[trap_index], trap_path=str(trap.path))
    before = timed_keys(agent.job_log)
    with _LogWatch(agent.address, "requeued") as lost:
        # A job deadline far beyond the test's patience: only keepalive can notice the dead link in time.
        thread, box = in_thread(lambda: _profile(tmp_path / "lut.db", [agent], exporter, agent_wait_s=60.0,
                                                 job_timeout_s=120.0))
        try:
            _partition_mid_job(lab, agent, trap, trap_index)
            tally.add(faults_injected=1)
            assert lost.event.wait(60.0), "the host never noticed the dead link"
        finally:
            trap.release()
            node.heal()
        report = joined(thread, box)
    (dev,) = report.devices
    assert report.ok and dev.timed == len(KEYS), dev.to_dict()
    assert any("UNAVAILABLE" in f and "requeued" in f for f in dev.agent_faults), dev.agent_faults  # keepalive
    assert any("back after" in f for f in dev.agent_faults) and not any("given up" in f for f in dev.agent_faults)
    assert any("recovered" in f for f in dev.agent_faults), dev.agent_faults  # the report says how it resumed
    check_rows(tmp_path / "lut.db", KEYS, {agent.address}, tally)
    timed = timed_keys(agent.job_log) - before
    tally.add(blocks_timed_twice=sum(1 for n in timed.values() if n > 1))
    assert timed == Counter({k: 1 for k in KEYS}), f"timed more than once on the device: {timed}"
    assert dev.recovered >= 1
    _cost(f"partition mid-job, healed once the host noticed: {dev.recovered} result(s) recovered from the agent, "
          "none timed twice", report, base, tally)


def test_partition_longer_than_agent_wait_gives_up_and_requeues(
        lab: NetLab, agents: list[NetAgent], tmp_path: Path, tally) -> None:
    """Two boards serve one device; one is cut off for longer than the host waits: it is given up, its jobs
    go to the other board, and every block is stored once."""
    boards = [NetAgent(lab.node("b1"), tmp_path / "b1").start(), NetAgent(lab.node("b2"), tmp_path / "b2").start()]
    agents += boards
    trap_index = 2
    trap = Trap(tmp_path / "trap")
    exporter = SleepExporter(trap_key=KEYS[trap_index], trap_path=str(trap.path))
    with _LogWatch("", "giving up") as given_up:
        thread, box = in_thread(lambda: _profile(tmp_path / "lut.db", boards, exporter, agent_wait_s=3.0))
        try:
            workers = [b.worker_pid() for b in boards]
            wait_for(lambda: any(trap.entered(w) for w in workers), 60.0, "the trapped job to start on a board")
            victim = next(b for b, w in zip(boards, workers) if trap.entered(w))  # the board that holds it
            victim.node.partition(lab.root_ip)
            trap.release()
            tally.add(faults_injected=1)
            assert given_up.event.wait(90.0), "the host never gave the cut-off board up"
        finally:
            trap.release()
        report = joined(thread, box)
    victim.node.heal()
    (dev,) = report.devices
    assert report.ok and dev.timed == len(KEYS), dev.to_dict()
    faults = [f for f in dev.agent_faults if victim.address in f]
    assert any("requeued" in f for f in faults) and any("given up" in f for f in faults), dev.agent_faults
    check_rows(tmp_path / "lut.db", KEYS, {b.address for b in boards}, tally)
    timed = timed_keys(*(b.job_log for b in boards))
    # A job the cut-off board finished during the outage is timed again by the other board (its result never
    # arrived): at most the jobs that were on their way, which the report lists as requeued.
    requeued = requeued_jobs(faults)
    twice = [k for k, n in timed.items() if n > 1]
    assert set(timed) == set(KEYS) and len(twice) <= requeued, (timed, dev.agent_faults)
    tally.add(in_flight_retimed=len(twice))
    tally.note(f"board cut off for longer than agent_wait_s: {'; '.join(faults)}; {len(twice)} job(s) timed "
               "again on the other board")


# -- a device that reboots -----------------------------------------------------------------------------------------
def test_agent_reboot_on_the_same_address(lab: NetLab, agents: list[NetAgent], tmp_path: Path, tally) -> None:
    """The board goes dark (link down), its agent dies with a power cut and starts again on the same address
    with its disk cache; the profile waits, resumes and finishes with every block timed once."""
    node = lab.node("board")
    agent = NetAgent(node, tmp_path / "board").start()
    agents.append(agent)
    trap_index = 4
    trap = Trap(tmp_path / "trap")
    exporter = SleepExporter(trap_key=KEYS[trap_index], trap_path=str(trap.path))
    with _LogWatch(agent.address, "is back") as back:
        thread, box = in_thread(lambda: _profile(tmp_path / "lut.db", [agent], exporter, agent_wait_s=60.0))
        try:
            worker = agent.worker_pid()
            wait_for(lambda: trap.entered(worker), 60.0, "the trapped job to start on the device")
            node.partition()  # the board drops off the network ...
            agent.power_cut()  # ... and loses power mid-job
            tally.add(faults_injected=1)
            trap.release()
            agent.restart()
            node.heal()
            assert back.event.wait(60.0), "the host never saw the rebooted agent"
        finally:
            trap.release()
            node.heal()
        report = joined(thread, box)
    (dev,) = report.devices
    assert report.ok and dev.timed == len(KEYS), dev.to_dict()
    assert any("requeued" in f for f in dev.agent_faults) and any("back after" in f for f in dev.agent_faults)
    check_rows(tmp_path / "lut.db", KEYS, {agent.address}, tally)
    check_timed_once([agent.job_log], KEYS, tally)  # the job cut by the power cut never completed there
    tally.note(f"agent reboot: {'; '.join(dev.agent_faults)}")


# -- TLS and tokens on the link, clocks apart ----------------------------------------------------------------------
def test_tls_and_token_over_a_slow_link_with_the_agent_clock_ahead(lab: NetLab, agents: list[NetAgent],
                                                                   tmp_path: Path, tally) -> None:
    """The agent serves TLS with a certificate it made itself and checks the token, across a 150 ms link.

    Clocks cannot differ between namespaces of one kernel, so the agent's clock running ahead is what its
    certificate shows: made on the board, it must already be valid on a host whose clock lags by hours.
    Nothing else in a profile compares the two clocks (leases run on the database's clock; deadlines,
    keepalive and the agent's memory of results on each machine's monotonic clock).
    """
    import datetime as dt

    import grpc
    from cryptography import x509

    from agent.certs import make_self_signed

    node = lab.node("tls")
    node.loss(1)
    pair = make_self_signed(tmp_path / "pki", [node.ip])
    cert = x509.load_pem_x509_certificate(pair.cert.read_bytes())
    host_lag = dt.timedelta(hours=6)  # a host that far behind the board still finds the certificate valid
    assert cert.not_valid_before_utc <= dt.datetime.now(dt.timezone.utc) - host_lag
    agent = NetAgent(node, tmp_path / "tls", rtt_ms=150.0, tls=(pair.cert, pair.key)).start()
    agents.append(agent)
    assert "tls=on" in agent.agent.ready_line
    with LutStore(tmp_path / "lut.db") as store:
        report = profile(store, [AgentRef("board", agent.address)], _settings(), token=TOKEN, tls_ca=str(pair.cert),
                         export_fn=SleepExporter())
    (dev,) = report.devices
    assert report.ok and dev.timed == len(KEYS), dev.to_dict()
    check_rows(tmp_path / "lut.db", KEYS, {agent.address}, tally)
    check_timed_once([agent.job_log], KEYS, tally)
    refusals = []
    for token, ca in (("not-the-token", pair.cert), (TOKEN, None)):  # a wrong token; plaintext to a TLS agent
        with AgentClient(agent.address, token=token, tls_ca=ca, timeout_s=5.0, retry_s=1.0) as client:
            try:
                client.device_info()
            except Exception as err:  # noqa: BLE001 - the refusal is the point
                refusals.append(getattr(err, "code", type(err).__name__))
    assert refusals == [grpc.StatusCode.UNAUTHENTICATED.name, grpc.StatusCode.UNAVAILABLE.name]
    tally.add(requests_tried=2, faults_injected=2)
    tally.note(f"TLS + token over 150 ms RTT, 1% loss: {report.wall_s:.1f} s for {len(KEYS)} blocks")
