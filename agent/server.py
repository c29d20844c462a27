"""The agent's gRPC server: ``GetDeviceInfo``, ``HasModels`` and the ``Benchmark`` stream.

Trust model: whoever holds the token can make this device time models, nothing more. Models are
self-contained data (ONNX external data and pickled torch.export weights are refused), delegates
come only from the operator's ``--delegate`` allowlist, the worker runs in an empty private
directory under a memory cap, and Benchmark streams are bounded per client and overall and closed
when idle, so health checks and ``GetDeviceInfo`` stay answerable. TorchScript files still run
TorchScript code: offer the torch runtime only to token holders you trust that far. No-auth binds
only loopback; off the machine, use TLS (``lutnas agent cert``) so the token does not cross the
network in clear.

Servicer methods stay thin: :mod:`agent.jobs` checks jobs, :class:`agent.cache.ModelCache` keeps
blobs, :class:`agent.worker.WorkerSupervisor` runs jobs one at a time in a pinned child process.
Health (``grpc.health.v1``) and server reflection are on.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from agent.auth import BearerTokenInterceptor
from agent.cache import ModelCache, is_sha256
from agent.config import AGENT_VERSION, MAX_JOB_TIMEOUT_S, AgentConfig, absolute_paths, is_loopback
from agent.adb import device_files, job_options
from agent.device import read_device_facts, read_device_state
from agent.errors import JobError
from agent.jobs import validate_job
from agent.replay import RecentResults, job_fingerprint
from agent.runtimes import RUNTIMES, RuntimeProbe, get_runtime, load_runtime_class
from agent.runtimes.benchmark_model_rt import BINARY_OPTION, probe_binary
from agent.worker import WorkerSupervisor
from protos import SERVICE_NAME, agent_pb2, agent_pb2_grpc

__all__ = [
    "AgentServicer",
    "RunningAgent",
    "StreamLimiter",
    "check_exposure",
    "client_address",
    "read_tls_pair",
    "resolve_runtimes",
    "start_server",
]

log = logging.getLogger(__name__)

_MB = 1 << 20
_MAX_HASHES_PER_CALL = 10_000
# Each open Benchmark stream holds a server thread; these threads beyond the stream cap keep unary
# calls (health, GetDeviceInfo, HasModels) answerable however many streams are open.
_UNARY_THREADS = 8
_MIN_PING_INTERVAL_MS = 5_000  # the most often a host may ping (see start_server)
_KEEPALIVE_MS = 30_000  # the agent's own pings to hosts: after 30 s of silence ...
_KEEPALIVE_TIMEOUT_MS = 20_000  # ... and 20 s without an answer, the connection is dead
_END = object()  # the client closed its side of a stream
_WAKE_S = 0.5  # how often an idle stream's handler checks that its call and the agent still run


def resolve_runtimes(config: AgentConfig) -> tuple[dict[str, RuntimeProbe], dict[str, str]]:
    """Probe built-in and extra runtimes; return ``(probes by name, extra specs by name)``.

    Raises:
        ValueError: ``config.runtimes`` names an unknown runtime, or an extra runtime spec is bad.
    """
    extra: dict[str, str] = {}
    for spec in config.extra_runtimes:
        cls = load_runtime_class(spec)
        extra[str(cls.name)] = spec
    probes: dict[str, RuntimeProbe] = {}
    for name in {*RUNTIMES, *extra}:
        probe = get_runtime(name, extra).probe()
        if name == "benchmark_model" and config.benchmark_model_bin is not None:
            probe = probe_binary(config.benchmark_model_bin, config.adb_serial)
        probes[name] = probe
    if config.runtimes is not None:
        unknown = sorted(set(config.runtimes) - set(probes))
        if unknown:
            raise ValueError(f"--runtimes names unknown runtime(s) {unknown}; known: {', '.join(sorted(probes))}")
        for name in probes:
            if name not in config.runtimes and probes[name].available:
                probes[name] = RuntimeProbe(False, probes[name].version, "disabled by --runtimes")
    return probes, extra


def _state_msg(state: dict[str, Any]) -> agent_pb2.DeviceState:
    return agent_pb2.DeviceState(
        thermal=[agent_pb2.ThermalZone(**z) for z in state["thermal"]],
        cpus=[agent_pb2.CpuState(**c) for c in state["cpus"]],
        unix_time_s=state["unix_time_s"],
    )


def client_address(peer: str) -> str:
    """The client's address without its port (``ipv4:10.0.0.5``), from ``context.peer()``."""
    head, sep, _port = peer.rpartition(":")
    return head if sep and head else peer


class StreamLimiter:
    """Counts open Benchmark streams overall and per client address; refuses those over a cap.

    Args:
        max_total: Open streams, all clients together.
        max_per_client: Open streams from one client address.
    """

    def __init__(self, max_total: int, max_per_client: int) -> None:
        self.max_total = max_total
        self.max_per_client = max_per_client
        self._lock = threading.Lock()
        self._open: dict[str, int] = {}

    @property
    def total(self) -> int:
        """Streams open now."""
        with self._lock:
            return sum(self._open.values())

    def acquire(self, client: str) -> str | None:
        """Count a new stream from ``client``; returns None, or the reason it is refused."""
        with self._lock:
            mine = self._open.get(client, 0)
            if mine >= self.max_per_client:
                return f"{mine} Benchmark streams already open from {client}; at most {self.max_per_client} per client"
            if sum(self._open.values()) >= self.max_total:
                return f"{self.max_total} Benchmark streams already open; try again when one closes"
            self._open[client] = mine + 1
            # Logged under the lock, so the last such line always gives the current count.
            log.info("stream from %s opened (%d open)", client, sum(self._open.values()))
            return None

    def release(self, client: str) -> None:
        """Forget one stream of ``client`` (it ended, or its client went away)."""
        with self._lock:
            left = self._open.get(client, 0) - 1
            if left > 0:
                self._open[client] = left
            else:
                self._open.pop(client, None)
            log.info("stream from %s closed (%d open)", client, sum(self._open.values()))


def _jobs_until_idle(
    request_iterator: Iterator[agent_pb2.BenchmarkJob], context: grpc.ServicerContext, idle_s: float,
    stopping: threading.Event,
) -> Iterator[agent_pb2.BenchmarkJob]:
    """The stream's jobs; aborts the call when the client sends nothing for ``idle_s`` seconds.

    gRPC's request iterator blocks without a timeout, so a helper thread reads it into a one-slot
    queue (one job buffered at most: a client cannot make the agent hold more than it runs). The
    wait ends as soon as the call does (a client that cancels sends no end-of-stream) or the agent
    stops: a handler left waiting would hold the agent's exit for the whole idle timeout.
    """
    slot: queue.Queue = queue.Queue(maxsize=1)

    def offer(item: object) -> bool:
        # Wait for the handler to take the slot, unless the call has ended (then nobody will).
        while context.is_active():
            try:
                slot.put(item, timeout=1.0)
                return True
            except queue.Full:
                continue
        return False

    def pump() -> None:
        try:
            for job in request_iterator:
                if not offer(job):
                    return
        except grpc.RpcError:
            pass  # the call ended under us (cancelled, aborted): nothing left to read
        if not offer(_END):
            # The call has ended: wake the handler now, so its thread (one of the server's concurrent-RPC slots)
            # is free at once rather than at its next check.
            with contextlib.suppress(queue.Full):
                slot.put_nowait(_END)

    threading.Thread(target=pump, name="agent-stream-reader", daemon=True).start()
    idle_until = time.monotonic() + idle_s
    while True:
        left_s = idle_until - time.monotonic()
        if left_s <= 0:
            context.abort(
                grpc.StatusCode.DEADLINE_EXCEEDED, f"no job on this stream for {idle_s:g} s; closed (agent --stream-idle-s)"
            )
        try:
            item = slot.get(timeout=min(left_s, _WAKE_S))
        except queue.Empty:
            item = None
        if stopping.is_set():
            context.abort(grpc.StatusCode.UNAVAILABLE, "the agent is stopping")
        if item is _END or not context.is_active():
            return
        if item is None:
            continue
        yield item
        idle_until = time.monotonic() + idle_s


class AgentServicer(agent_pb2_grpc.AgentServicer):
    """Implements the Agent service over a cache and a worker supervisor."""

    def __init__(
        self,
        config: AgentConfig,
        cache: ModelCache,
        supervisor: WorkerSupervisor,
        probes: dict[str, RuntimeProbe],
    ) -> None:
        self.config = config
        self.cache = cache
        self.supervisor = supervisor
        self.probes = probes
        self.offered = frozenset(name for name, p in probes.items() if p.available)
        self.files = device_files(config.adb_serial)  # this machine, or the phone over adb
        self.facts = read_device_facts(self.files)
        # With --adb the CPUs that matter are the phone's big cores, not this host's worker CPUs.
        self.state_cpus = self.facts["big_cores"] if config.adb_serial else supervisor.cpus
        self.properties = dict(self.facts["properties"])
        if not config.adb_serial and supervisor.cpus is not None:
            # every CPU a job may run on, pinned first: a host asking for more threads learns it before it exports
            self.properties["timing_cpus"] = ",".join(map(str, (*supervisor.cpus, *supervisor.spare_cpus)))
        self.streams = StreamLimiter(config.max_streams, config.max_streams_per_client)
        self.stopping = threading.Event()  # set when the agent stops: streams end, running jobs are killed
        self._counter_lock = threading.Lock()
        self.jobs_completed = 0
        self.jobs_failed = 0
        self.recent = RecentResults()  # answers to jobs a host sends again after its stream broke
        self._one_job = threading.Lock()  # a resend checks for an earlier run only once that run is over

    # -- RPCs ---------------------------------------------------------------------------------

    def GetDeviceInfo(self, request: agent_pb2.DeviceInfoRequest, context: grpc.ServicerContext) -> agent_pb2.DeviceInfo:
        f = self.facts
        return agent_pb2.DeviceInfo(
            name=self.config.name or f["hostname"],
            hostname=f["hostname"],
            agent_version=AGENT_VERSION,
            os=f["os"],
            machine=f["machine"],
            board=f["board"],
            cpu_model=f["cpu_model"],
            cpu_cores=f["cpu_cores"],
            ram_mb=f["ram_mb"],
            properties=self.properties,
            runtimes=[
                agent_pb2.RuntimeInfo(name=n, available=p.available, version=p.version, detail=p.detail)
                for n, p in sorted(self.probes.items())
            ],
            accelerators=[agent_pb2.Accelerator(**a) for a in f["accelerators"]],
            state=_state_msg(read_device_state(self.state_cpus, self.files)),
            pinned_cpus=list(self.state_cpus or ()) if self.config.adb_serial else self.supervisor.worker_cpus or list(self.supervisor.cpus or ()),
            python_version=f["python_version"],
            jobs_completed=self.jobs_completed,
            jobs_failed=self.jobs_failed,
            cache_bytes=self.cache.total_bytes,
            cache_entries=len(self.cache),
            cache_limit_bytes=self.cache.limit_bytes,
            max_message_bytes=self.config.max_message_mb * _MB,
            worker_pid=self.supervisor.pid,
            auth_required=not self.config.insecure_no_auth,
            tls=self.config.tls,
        )

    def HasModels(self, request: agent_pb2.HasModelsRequest, context: grpc.ServicerContext) -> agent_pb2.HasModelsReply:
        if len(request.sha256) > _MAX_HASHES_PER_CALL:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{len(request.sha256)} hashes in one call; at most {_MAX_HASHES_PER_CALL}")
        bad = [h for h in request.sha256 if not is_sha256(h)]
        if bad:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"not a lowercase hex sha256: {bad[0][:80]!r}")
        return agent_pb2.HasModelsReply(present=[h for h in request.sha256 if self.cache.has(h)])

    def Benchmark(
        self, request_iterator: Iterator[agent_pb2.BenchmarkJob], context: grpc.ServicerContext
    ) -> Iterator[agent_pb2.BenchmarkResult]:
        client = client_address(context.peer())
        refused = self.streams.acquire(client)
        if refused is not None:
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, refused)
        once = threading.Lock()  # taken by the first release: the call-end callback and the handler's end may race

        def release() -> None:
            if once.acquire(blocking=False):
                self.streams.release(client)

        if not context.add_callback(release):
            release()  # the call already ended
            return
        try:
            for job in _jobs_until_idle(request_iterator, context, self.config.stream_idle_s, self.stopping):
                if not context.is_active():
                    return
                result = self.run_job(job, cancelled=lambda: self.stopping.is_set() or not context.is_active())
                if self.stopping.is_set() and result.WhichOneof("outcome") == "error":
                    # The job was cut short, not refused: the host should retry it on a running agent.
                    context.abort(grpc.StatusCode.UNAVAILABLE, "the agent is stopping; the job did not finish")
                yield result
        finally:
            # The call-end callback frees the slot as soon as a client goes away, even mid-job; but gRPC does not
            # run it for a call that ends just as its handler returns (1 stream in 25 of the fuzz test kept its
            # slot that way, and four such lock a client out), so the handler's end frees it too.
            release()

    # -- helpers ------------------------------------------------------------------------------

    def run_job(self, job: agent_pb2.BenchmarkJob, cancelled: Callable[[], bool] | None = None) -> agent_pb2.BenchmarkResult:
        """Check, cache and run one job; always returns a result (statistics or a job error).

        Args:
            job: The job as received.
            cancelled: Polled while the job runs; True kills it (its stream ended, or the agent stops).
        """
        result = agent_pb2.BenchmarkResult(job_id=job.job_id, runtime=job.runtime, threads=job.threads or 1, agent_version=AGENT_VERSION)
        try:
            doc, timeout_s = validate_job(
                job,
                offered=self.offered,
                known=self.probes.keys(),
                max_input_bytes=self.config.max_input_mb * _MB,
                job_timeout_s=self.config.job_timeout_s,
                max_job_timeout_s=max(MAX_JOB_TIMEOUT_S, self.config.job_timeout_s),
            )
            sha, path = self._model_path(job)
        except JobError as err:
            return self._failed(result, err.code, err.message)
        result.model_sha256 = sha
        doc["model_path"] = str(path)
        if job.runtime == "benchmark_model":
            doc["options"][BINARY_OPTION] = str(self.config.benchmark_model_bin)
            doc["options"].update(job_options(self.config.adb_serial, self.facts["big_cores"]))
        # One job at a time (the worker runs one anyway). A job sent again may arrive while its first run is
        # still going (the host saw its stream break; the agent did not yet): it waits for that run and is
        # answered with its result.
        with self._one_job:
            fingerprint = job_fingerprint(job, sha)
            kept = self.recent.recall(fingerprint) if job.resend else None
            if kept is not None:  # it ran here already; its result was lost on the way
                log.info("job %r sent again: answered with the result of its earlier run", job.job_id)
                return kept
            return self._timed(job, doc, timeout_s, cancelled, result, fingerprint)

    def _timed(self, job: agent_pb2.BenchmarkJob, doc: dict[str, Any], timeout_s: float,
               cancelled: Callable[[], bool] | None, result: agent_pb2.BenchmarkResult,
               fingerprint: str) -> agent_pb2.BenchmarkResult:
        """Run the checked job in the worker; its statistics in ``result``, remembered for a resend."""
        reply = self.supervisor.run(doc, timeout_s, cancelled)
        if not reply.get("ok"):
            return self._failed(result, reply.get("code", "INTERNAL"), reply.get("message", "job failed"))
        r = reply["result"]
        result.stats.CopyFrom(agent_pb2.Stats(**r["stats"]))
        result.runtime_version = r["runtime_version"]
        result.options.update({k: str(v) for k, v in r["settings"].items() if k != BINARY_OPTION})
        result.samples_ms.extend(r["samples_ms"])
        result.stop_reason = r["stop_reason"]
        result.warmup_runs = r["warmup_runs"]
        result.load_ms = r["load_ms"]
        result.wall_s = r["wall_s"]
        result.before.CopyFrom(_state_msg(r["before"]))
        result.after.CopyFrom(_state_msg(r["after"]))
        with self._counter_lock:
            self.jobs_completed += 1
            self._log_job(result.model_sha256, job, result)
        self.recent.remember(fingerprint, result)
        return result

    def _model_path(self, job: agent_pb2.BenchmarkJob) -> tuple[str, Path]:
        which = job.WhichOneof("model")
        if which == "model_blob":
            if not job.model_blob:
                raise JobError("INVALID_ARGUMENT", "model_blob is empty")
            try:
                return self.cache.put(job.model_blob)
            except ValueError as err:
                raise JobError("RESOURCE_EXHAUSTED", str(err)) from err
            except OSError as err:
                raise JobError("RESOURCE_EXHAUSTED", f"cannot store the model in the cache: {err.strerror}") from err
        if which == "model_sha256":
            sha = job.model_sha256
            if not is_sha256(sha):
                raise JobError("INVALID_ARGUMENT", f"model_sha256 is not a lowercase hex sha256: {sha[:80]!r}")
            path = self.cache.get(sha)
            if path is None:
                raise JobError("NOT_FOUND", f"model {sha[:12]}... is not cached here; send model_blob")
            return sha, path
        raise JobError("INVALID_ARGUMENT", "job has neither model_blob nor model_sha256")

    def _failed(self, result: agent_pb2.BenchmarkResult, code: str, message: str) -> agent_pb2.BenchmarkResult:
        with self._counter_lock:
            self.jobs_failed += 1
        result.error.CopyFrom(agent_pb2.JobError(code=code, message=message))
        log.info("job %r failed: %s %s", result.job_id, code, message)
        return result

    def _log_job(self, sha: str, job: agent_pb2.BenchmarkJob, result: agent_pb2.BenchmarkResult) -> None:
        if self.config.job_log is None:
            return
        line = {
            "unix_time_s": time.time(),
            "job_id": job.job_id,
            "model_sha256": sha,
            "runtime": job.runtime,
            "threads": result.threads,
            "n": result.stats.n,
            "median_ms": result.stats.median_ms,
        }
        try:
            with open(self.config.job_log, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(line) + "\n")
        except OSError as err:
            log.warning("cannot append to --job-log %s: %s", self.config.job_log, err.strerror)


@dataclass
class RunningAgent:
    """A started agent: its server, address and parts."""

    server: grpc.Server
    address: str  # host:port actually bound
    port: int
    servicer: AgentServicer
    supervisor: WorkerSupervisor
    auth_mode: str  # "token" or "none"

    def stop(self, grace_s: float = 1.0) -> None:
        """Stop serving: open streams end, a running job and its tools are killed, the worker exits."""
        self.servicer.stopping.set()
        self.supervisor.stop()
        self.server.stop(grace_s).wait(grace_s + 1.0)

    def wait(self) -> None:
        """Block until the server stops."""
        self.server.wait_for_termination()


def read_tls_pair(cert: Path, key: Path) -> tuple[bytes, bytes]:
    """The PEM key and certificate chain, checked to be a matching pair.

    gRPC reports a bad pair only as "cannot bind"; Python's ``ssl`` says what is wrong.

    Raises:
        ValueError: a file cannot be read, is not PEM, or the key does not belong to the certificate.
    """
    try:
        pair = (Path(key).read_bytes(), Path(cert).read_bytes())
    except OSError as err:
        raise ValueError(f"cannot read TLS key/cert {err.filename}: {err.strerror}") from err
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key)
    except ssl.SSLError as err:
        if err.reason == "KEY_VALUES_MISMATCH":
            raise ValueError(f"--tls-key {key} does not match --tls-cert {cert} (make a pair with 'lutnas agent cert')") from err
        raise ValueError(f"--tls-cert {cert} / --tls-key {key}: not a PEM certificate and key ({err.reason or err})") from err
    return pair


def check_exposure(config: AgentConfig) -> None:
    """Refuse a no-auth agent off loopback; warn when a token would cross the network in clear.

    Raises:
        ValueError: ``insecure_no_auth`` with a non-loopback host.
    """
    if is_loopback(config.host):
        return
    if config.insecure_no_auth:
        raise ValueError(
            f"--insecure-no-auth binds only loopback (127.0.0.1, ::1), not {config.host}: anyone who reaches "
            "the port could run models; use a token (and TLS) instead"
        )
    if not config.tls:
        log.warning(
            "listening on %s without TLS: the token crosses the network in clear; "
            "make a pair with 'lutnas agent cert' and pass --tls-cert/--tls-key",
            config.host,
        )


def start_server(config: AgentConfig) -> RunningAgent:
    """Start an agent from ``config`` and return once it accepts calls.

    Raises:
        ValueError: inconsistent settings (no token without insecure_no_auth, no-auth off loopback,
            half a TLS pair or a mismatched one, bad runtimes).
        RuntimeError: the port could not be bound or the worker did not start.
    """
    config = absolute_paths(config)  # the worker resolves nothing from its own (empty) directory
    if not config.insecure_no_auth and not config.token:
        raise ValueError("a token is required unless insecure_no_auth is set")
    if (config.tls_cert is None) != (config.tls_key is None):
        raise ValueError("--tls-cert and --tls-key go together")
    check_exposure(config)
    tls_pair = read_tls_pair(config.tls_cert, config.tls_key) if config.tls_cert and config.tls_key else None
    probes, extra = resolve_runtimes(config)
    cache = ModelCache(config.cache_dir, config.cache_mb * _MB)
    supervisor = WorkerSupervisor(config.cpus, extra, max_worker_mb=config.max_worker_mb, delegates=dict(config.delegates),
                                  spare_cpus=config.spare_cpus)
    supervisor.start()
    servicer = AgentServicer(config, cache, supervisor, probes)
    max_bytes = config.max_message_mb * _MB
    interceptors = [] if config.insecure_no_auth else [BearerTokenInterceptor(config.token or "")]
    threads = config.max_streams + _UNARY_THREADS
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="agent-rpc"),
        interceptors=interceptors,
        options=[
            ("grpc.max_receive_message_length", max_bytes),
            ("grpc.max_send_message_length", max_bytes),
            ("grpc.so_reuseport", 0),  # two agents must never share a port silently
            # Hosts ping every 10 s on open calls (profiler.client.KEEPALIVE_S). gRPC's default wants 5 minutes
            # between pings while no data flows and soon answers early ones with GOAWAY ("too_many_pings"): a
            # stream waiting on a long job broke 50 s in. The key is GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_
            # WITHOUT_DATA_MS's; gRPC ignores keys it does not know.
            ("grpc.http2.min_ping_interval_without_data_ms", _MIN_PING_INTERVAL_MS),
            # The agent pings too: a host gone with its link (no FIN, no RST) ends its stream, and the job it left
            # running is stopped, within about a minute instead of at the stream's idle timeout.
            ("grpc.keepalive_time_ms", _KEEPALIVE_MS),
            ("grpc.keepalive_timeout_ms", _KEEPALIVE_TIMEOUT_MS),
        ],
        # Beyond this, callers get RESOURCE_EXHAUSTED at once instead of queueing behind held streams.
        maximum_concurrent_rpcs=threads,
    )
    agent_pb2_grpc.add_AgentServicer_to_server(servicer, server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [SERVICE_NAME, health.SERVICE_NAME]
    if config.reflection:
        from grpc_reflection.v1alpha import reflection

        names.append(reflection.SERVICE_NAME)
        reflection.enable_server_reflection(names, server)
    host = f"[{config.host.strip('[]')}]" if ":" in config.host else config.host  # IPv6 literals need brackets
    bind = f"{host}:{config.port}"
    try:
        if tls_pair is not None:
            port = server.add_secure_port(bind, grpc.ssl_server_credentials([tls_pair]))
        else:
            port = server.add_insecure_port(bind)
    except RuntimeError as err:
        supervisor.stop()
        raise RuntimeError(f"cannot bind {bind}: {err}") from err
    if port == 0:
        supervisor.stop()
        raise RuntimeError(f"cannot bind {bind} (in use?)")
    server.start()
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return RunningAgent(
        server=server,
        address=f"{host}:{port}",
        port=port,
        servicer=servicer,
        supervisor=supervisor,
        auth_mode="none" if config.insecure_no_auth else "token",
    )
