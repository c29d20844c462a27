"""The ``profile()`` entry: check the devices, plan each one's work, start a worker per agent, and report."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lut.repeatability import round_spread
from lut.schema import DeviceSetting
from lut.store import LutStore
from lut.transfer import measured_keys
from profiler.client import DEFAULT_RETRY_S, AgentClient, AgentError, connect_kw
from profiler.quantize import unsupported_precision
from profiler.worklist import DeviceWork, Failure, Leases, host_id
from protos import agent_pb2
from space import Block, get_space, list_spaces, space_to_dict

from .exports import CachedExports, ExportFn, Exports, FnExports
from .reports import DeviceReport, ProfileReport, Progress, busy_fraction
from .sentinel import sentinel_block
from .settings import AgentRef, ProfileError, ProfileSettings, plan_blocks
from .worker import AgentWorker

__all__ = ["profile"]

log = logging.getLogger(__name__)

# A worker's call retries an unreachable agent this long; a longer outage is waited out with agent_wait_s.
_WORKER_RETRY_S = 2.0


def _device_setting(name: str, clients: Sequence[AgentClient], settings: ProfileSettings) -> tuple[DeviceSetting, str, dict[str, Any]]:
    """The device setting the agents of ``name`` measure under (they must agree on the runtime version)."""
    versions = {}
    agent_version = ""
    info: dict[str, Any] = {}
    for client in clients:
        try:
            dev = client.device_info()
        except AgentError as err:
            raise ProfileError(f"device {name!r}: {err}") from err
        versions[client.address] = _runtime_version(name, client.address, dev, settings)
        agent_version = dev.agent_version
        info = _device_info(dev, sorted(versions), settings.threads)
    if len(set(versions.values())) > 1:
        raise ProfileError(f"device {name!r}: agents disagree on {settings.runtime} version {versions}; "
                           "give them different names")
    delegate = settings.options.get("provider", "") or settings.options.get("delegate", "") \
        or settings.options.get("device", "")
    if settings.precision == "int8" and not delegate and info["int8_dot_product"] == "none":  # a CPU LUT
        log.warning("device %r: its CPU lists no int8 dot-product instructions (VNNI, Arm dotprod); its int8 kernels "
                    "go through 16-bit steps, so this LUT speaks for CPUs like it only", name)
    setting = DeviceSetting(name=name, runtime=settings.runtime, runtime_version=next(iter(versions.values())),
                            threads=settings.threads, precision=settings.precision,
                            model_format=settings.model_format, delegate=delegate)
    return setting, agent_version, info


def _timing_cpus(dev: agent_pb2.DeviceInfo) -> list[str]:
    return [c for c in dev.properties.get("timing_cpus", "").split(",") if c]


def _runtime_version(name: str, address: str, dev: agent_pb2.DeviceInfo, settings: ProfileSettings) -> str:
    """The version of the profile's runtime on one agent, which must offer it with CPUs enough for the threads."""
    runtime = next((r for r in dev.runtimes if r.name == settings.runtime), None)
    if runtime is None or not runtime.available:
        detail = f" ({runtime.detail})" if runtime is not None and runtime.detail else ""
        known = ", ".join(r.name for r in dev.runtimes if r.available) or "none"
        raise ProfileError(f"device {name!r}: agent {address} has no runtime {settings.runtime!r}{detail}; "
                           f"available: {known}")
    timing_cpus = _timing_cpus(dev)
    if timing_cpus and settings.threads > len(timing_cpus):
        raise ProfileError(f"device {name!r}: agent {address} times on {len(timing_cpus)} CPU(s) "
                           f"({','.join(timing_cpus)}), fewer than --threads {settings.threads}: threads sharing "
                           "a core time nothing that deploys; restart it with --cpus auto or more CPUs")
    return runtime.version


def _device_info(dev: agent_pb2.DeviceInfo, agents: list[str], threads: int) -> dict[str, Any]:
    """What the setting's info keeps about the device its agents run on."""
    info = {"hostname": dev.hostname, "cpu_model": dev.cpu_model, "board": dev.board, "os": dev.os,
            "machine": dev.machine, "cpu_cores": dev.cpu_cores, "agents": agents,
            "int8_dot_product": dev.properties.get("int8_dot_product", "")}
    timing_cpus = _timing_cpus(dev)
    if timing_cpus:  # the CPUs the jobs run on: the pinned ones, then one more per thread beyond them,
        # written like each result's "cpus" option (ascending)
        used = timing_cpus[:max(threads, len(dev.pinned_cpus))]
        info["timing_cpus"] = ",".join(sorted(used, key=int))
    return info


# Agents before this version ran every thread of a job on the one pinned core.
_ONE_CORE_PER_THREAD = (0, 2)


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for part in version.split("+")[0].split(".")[:2]:
        digits = "".join(ch for ch in part if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def _warn_shared_core_rows(store: LutStore, setting_id: int, name: str, threads: int) -> None:
    """Say so when a multi-thread setting holds rows an older agent timed with all its threads on one core.

    They are kept (a resume never re-times a measured row), but they price blocks slower than they run.
    """
    rows = store.rows(setting_id)
    versions = rows["agent_version"].dropna().astype(str)
    old = versions[[bool(v) and _version_tuple(v) < _ONE_CORE_PER_THREAD for v in versions]]
    if len(old):
        log.warning("device %r: %d row(s) of this %d-thread setting were timed by agent %s, which ran every thread "
                    "on one core; `lutnas lut rm --device %s` and profile again for a LUT of what deploys",
                    name, len(old), threads, ", ".join(sorted(set(old))), setting_id)


@dataclass
class _Device:
    """One device name's share of a profile: its agents, what they still have to time, and its report."""

    refs: list[AgentRef]
    work: DeviceWork
    report: DeviceReport
    agent_version: str = ""
    refused: list[Failure] = field(default_factory=list)  # every block, when the runtime cannot run the precision


def profile(
    store: LutStore,
    agents: Sequence[AgentRef],
    settings: ProfileSettings,
    *,
    token: str | None = None,
    tls_ca: str | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    stop: threading.Event | None = None,
    export_fn: ExportFn | None = None,
) -> ProfileReport:
    """Time every block the space needs on every device and write the rows to ``store``.

    Args:
        store: The LUT store (rows are written one transaction each, as they arrive).
        agents: The agents; several may share a name (identical boards split that device's work).
        settings: What to profile and how.
        token: Bearer token for the agents.
        tls_ca: CA certificate to trust when the agents use TLS.
        on_progress: Called after every row or failure.
        stop: Set it to stop early (Ctrl-C); the store stays consistent and a rerun resumes. The profile
            only reads it: one event can serve several calls.
        export_fn: Replace the exporters (block, format, seed) -> bytes; for synthetic runtimes.

    Raises:
        ValueError: a setting is out of range, or the profiler's exporters and the runtime do not go together at
            this format and precision (see :meth:`ProfileSettings.validate`).
        ProfileError: an agent is unreachable at the start or lacks the runtime.
    """
    settings.validate(own_exports=export_fn is not None)
    by_name = _group_agents(agents)
    stop = stop or threading.Event()
    # Ends the workers: the caller's event is only read, so it can be passed to the next call as it was, and a
    # Ctrl-C handler that sets it never waits on a lock this thread holds.
    halt = threading.Event()
    start = time.monotonic()
    client_kw = {"token": token, "tls_ca": tls_ca, "retry_s": _WORKER_RETRY_S, "timeout_s": settings.rpc_timeout_s}
    blocks = _planned_blocks(settings)
    holder = host_id()  # this run's name on the blocks it claims in the store
    devices = {name: _plan_device(name, refs, store, settings, blocks, holder, client_kw) for name, refs in by_name.items()}
    exports = _exports(settings, export_fn, devices)
    workers: list[tuple[str, AgentWorker, threading.Thread]] = []
    try:
        _start_workers(devices, workers, store, exports, settings, client_kw, halt, _progress(devices, on_progress),
                       holder)
        _join(workers, {name: d.work for name, d in devices.items()}, stop)
        stopped = stop.is_set()
    finally:
        _stop(devices, workers, exports, settings, halt)
    for name, device in devices.items():
        _fill_report(device, [w for n, w, _ in workers if n == name], time.monotonic() - start)
    return ProfileReport(devices=[d.report for d in devices.values()], wall_s=time.monotonic() - start,
                         export_s=exports.export_s, exported=exports.exported, stopped=stopped)


def _group_agents(agents: Sequence[AgentRef]) -> dict[str, list[AgentRef]]:
    """The agents by device name, in the order given."""
    if not agents:
        raise ProfileError("no agents given; use --agent NAME=HOST:PORT")
    by_name: dict[str, list[AgentRef]] = {}
    for ref in agents:
        by_name.setdefault(ref.name, []).append(ref)
    if len({ref.address for ref in agents}) != len(agents):
        raise ProfileError("the same agent address is given twice")
    return by_name


def _planned_blocks(settings: ProfileSettings) -> list[Block]:
    """The blocks this profile covers: the space's at the resolutions, or only the chosen ones of them."""
    blocks = plan_blocks(settings.space, settings.resolutions)
    if settings.only_keys:
        wanted = set(settings.only_keys)
        blocks = [b for b in blocks if b.key in wanted]
    return blocks


def _plan_device(name: str, refs: list[AgentRef], store: LutStore, settings: ProfileSettings, blocks: list[Block],
                 holder: str, client_kw: Mapping[str, Any]) -> _Device:
    """Ask the device's agents what they run, file the setting, and leave the blocks it lacks (resume)."""
    kw = {**client_kw, "retry_s": DEFAULT_RETRY_S, **connect_kw(settings.connect_timeout_s)}
    clients = [AgentClient(r.address, **kw) for r in refs]
    try:
        setting, agent_version, info = _device_setting(name, clients, settings)
    finally:
        for c in clients:
            c.close()
    refusal = unsupported_precision(settings.runtime, settings.precision, info.get("machine", ""), settings.options)
    if refusal is not None:  # every block would fail the same way: fail them here and store nothing
        log.warning("device %r: %s", name, refusal)
        return _Device(refs, DeviceWork([], rounds=settings.rounds),
                       DeviceReport(name=name, setting_id=0, total=len(blocks), skipped=0), agent_version,
                       [Failure(b.key, refusal, 0) for b in blocks])
    setting_id = store.ensure_setting(setting, info=info)
    _record_space(store, setting_id, settings.space)
    have = measured_keys(store, setting_id)  # predicted (few-shot) rows are timed again
    if settings.threads > 1:
        _warn_shared_core_rows(store, setting_id, name, settings.threads)
    todo = [b for b in blocks if b.key not in have]
    leases = Leases(store, setting_id, holder, [b.key for b in todo], batch=settings.claim_batch,
                    lease_s=settings.lease_s, wait_s=settings.store_wait_s) if todo else None
    return _Device(refs, DeviceWork(todo, rounds=settings.rounds, leases=leases),
                   DeviceReport(name=name, setting_id=setting_id, total=len(blocks), skipped=len(blocks) - len(todo)),
                   agent_version)


def _record_space(store: LutStore, setting_id: int, space_ref: str) -> None:
    """Note the profiled space with the setting, a space file's whole document too: readers then find a user's
    space again from the store alone (``lut predict`` without ``--space``)."""
    space = get_space(space_ref)
    doc = None if space.name in list_spaces() else space_to_dict(space)
    store.record_space(setting_id, space.name, doc)


def _exports(settings: ProfileSettings, export_fn: ExportFn | None, devices: Mapping[str, _Device]) -> Exports:
    """The caller's export function, or the exporters run ahead into the cache (the sentinel first)."""
    if export_fn is not None:
        return FnExports(settings, export_fn)
    all_todo = list(dict.fromkeys(b for d in devices.values() for b in d.work.blocks))
    sentinels = [sentinel_block(settings.space, settings.resolutions[0])] if settings.sentinel_every else []
    return CachedExports(settings, sentinels + all_todo if all_todo else [])


def _progress(devices: Mapping[str, _Device],
              on_progress: Callable[[Progress], None] | None) -> Callable[[str], Callable[[], None]]:
    """``emitter(name)``: a callable that reports device ``name``'s progress (one caller at a time)."""
    lock = threading.Lock()

    def emitter(name: str) -> Callable[[], None]:
        def emit() -> None:
            if on_progress is not None:
                done, failed = devices[name].work.counts()
                report = devices[name].report
                with lock:
                    on_progress(Progress(name, report.skipped + done, failed, report.total))
        return emit

    return emitter


def _start_workers(devices: Mapping[str, _Device], workers: list[tuple[str, AgentWorker, threading.Thread]],
                   store: LutStore, exports: Exports, settings: ProfileSettings, client_kw: Mapping[str, Any],
                   halt: threading.Event, emitter: Callable[[str], Callable[[], None]], host: str) -> None:
    """One thread per agent of every device with work left (appended to ``workers`` as they start), each ending
    once ``halt`` is set; ``host`` names this run in the rows it stores."""
    for name, device in devices.items():
        emitter(name)()
        if not device.work.blocks:
            continue
        for ref in device.refs:
            worker = AgentWorker(ref, device.work, device.report.setting_id, store, exports, settings,
                                 client_kw, halt, emitter(name), device.agent_version, host=host)
            thread = threading.Thread(target=worker.run, name=f"agent-{ref.address}", daemon=True)
            workers.append((name, worker, thread))
            thread.start()


def _stop(devices: Mapping[str, _Device], workers: list[tuple[str, AgentWorker, threading.Thread]],
          exports: Exports, settings: ProfileSettings, halt: threading.Event) -> None:
    """Stop the workers, the export pool and the block claims."""
    halt.set()
    for _, _, thread in workers:
        thread.join(timeout=settings.job_timeout_s + 60)
    exports.close()
    for device in devices.values():
        if device.work.leases is not None:
            device.work.leases.close()


def _fill_report(device: _Device, mine: list[AgentWorker], wall_s: float) -> None:
    """Sum the device's workers into its report, and warn when its rounds disagree."""
    rep, work = device.report, device.work
    rep.timed = len(work.done)
    rep.failed = list(work.failures) + device.refused
    rep.retimed = work.retimed
    rep.aborted = work.aborted
    rep.wall_s = wall_s
    rep.busy_s = sum(w.stats.busy_s for w in mine)
    rep.agent_wall_s = sum(w.stats.wall_s for w in mine)
    rep.idle_s = sum(w.stats.idle_s for w in mine)
    rep.uploaded_bytes = sum(w.stats.uploaded_bytes for w in mine)
    rep.saved_bytes = sum(w.stats.saved_bytes for w in mine)
    rep.sentinel_drifts = sum(w.stats.drifts for w in mine)
    rep.sentinel_transients = sum(w.stats.transients for w in mine)
    rep.agent_busy = {w.ref.address: busy_fraction(w.stats.busy_s, w.stats.wall_s, w.stats.idle_s) for w in mine}
    rep.agent_faults = [line for w in mine for line in w.faults]
    rep.recovered = sum(w.stats.recovered for w in mine)
    rep.round_spread = round_spread(m for w in mine for m in w.stats.round_medians.values())
    if rep.unsteady:
        log.warning("%s: a block's rounds differ by a median %.0f%% (slowest round median over the fastest): "
                    "timing on this device is unsteady and the LUT's rows carry that noise, although each keeps "
                    "its fastest round. Profile it again into a new store with more --rounds or on a quieter "
                    "device, and check the LUT with lutnas validate", rep.name, 100 * rep.round_spread)


def _join(workers: list[tuple[str, AgentWorker, threading.Thread]], works: Mapping[str, DeviceWork],
          stop: threading.Event) -> None:
    """Wait for every device; a device whose agents all gave up is aborted with the reason."""
    while not stop.is_set():
        alive_any = False
        for name, work in works.items():
            threads = [t for n, _, t in workers if n == name]
            if work.finished() or not threads:
                continue
            if any(t.is_alive() for t in threads):
                alive_any = True
                continue
            left = work.left()
            work.abort(f"every agent of {name!r} is gone with {left} blocks left; rerun to resume")
        if not alive_any:
            return
        time.sleep(0.1)
