"""Host-side client of a lutnas agent (the ``lutnas.agent.v1.Agent`` gRPC service).

Every call passes a deadline. Unary calls are retried on UNAVAILABLE only, within a total
deadline; the final error names the address, the number of attempts and the last error.
``Benchmark`` streams are never retried here: the agent may already have timed jobs of a broken
stream, and re-sending them would time a block twice. Callers resume instead.

Uses only ``protos``, grpc and numpy (no torch), so it runs anywhere the agent does.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from protos import agent_pb2, agent_pb2_grpc

__all__ = [
    "AgentClient",
    "AgentError",
    "AgentUnavailable",
    "AgentAuthError",
    "AgentCallError",
    "AgentJobError",
    "connect_kw",
    "make_job",
    "make_plan",
    "message_to_dict",
    "oversized_message",
    "runtime_for_path",
    "DEFAULT_TIMEOUT_S",
    "DEFAULT_RETRY_S",
    "DEFAULT_REFUSED_S",
]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 30.0  # one unary call
DEFAULT_RETRY_S = 10.0  # total time to keep retrying UNAVAILABLE
# A refused connection means nothing listens there (the agent is not running, or not yet): give up on it
# after a second unless the caller asks to wait longer (refused_s), instead of retrying it for retry_s.
DEFAULT_REFUSED_S = 1.0
#: Largest message the client sends: a whole fp32 network of every family fits (the agent may accept less).
MAX_SEND_MB = 512
#: Room a job needs beside its model bytes (ids, shapes, plan, options: well under a kilobyte in practice).
JOB_HEADROOM_BYTES = 64 << 10
_RETRY_PAUSE_S = (0.1, 0.2, 0.5, 1.0)
# Keepalive: after KEEPALIVE_S without a byte from the agent the channel pings it, and a ping unanswered for
# KEEPALIVE_TIMEOUT_S closes the connection: its calls fail UNAVAILABLE, so a dead link (Wi-Fi gone, a partition)
# ends a stream within ~20 s instead of at the job's deadline (minutes). On a phone link (150 ms RTT, 2% loss,
# 5 Mbit/s) pings came back in well under a second; 10 s leaves room for a long retransmission stall. The agent
# accepts a ping every 5 s (agent.server), so these never count as abuse.
KEEPALIVE_S = 10.0
KEEPALIVE_TIMEOUT_S = 10.0
_BENCHMARK_SLACK_S = 60.0  # stream deadline beyond the jobs' own deadlines (upload, model load)
_EXTENSIONS = {".onnx": "onnxruntime", ".tflite": "tflite", ".pt": "torch", ".pt2": "torch", ".ptl": "torch"}
_T = TypeVar("_T")


class AgentError(Exception):
    """A call to an agent failed.

    Attributes:
        address: The agent's host:port.
        code: The gRPC status name (``UNAVAILABLE``, ``UNAUTHENTICATED``, ...) or a job error code.
        attempts: How many times the call was tried.
    """

    def __init__(self, message: str, address: str, code: str, attempts: int = 1) -> None:
        super().__init__(message)
        self.address = address
        self.code = code
        self.attempts = attempts


class AgentUnavailable(AgentError):
    """The agent could not be reached (after retries)."""


class AgentAuthError(AgentError):
    """The agent rejected the token (UNAUTHENTICATED)."""


class AgentCallError(AgentError):
    """The agent answered a call with an error status other than the two above."""


class AgentJobError(AgentError):
    """A benchmark job came back with a job-level error."""


def oversized_message(model_bytes: int, limit_bytes: int, address: str) -> str | None:
    """Why a model of ``model_bytes`` cannot go to the agent at ``address``, which accepts messages of
    ``limit_bytes``, or None.

    The agent reports its limit in ``GetDeviceInfo.max_message_bytes`` (0 from an agent too old to say: no check).
    Without this check gRPC answers a too-large job with a bare RESOURCE_EXHAUSTED that names neither the model nor
    the flag to raise.

    Returns:
        None when it fits, else one clause: the model's size, the agent's limit and the ``--max-message-mb`` to
        start the agent with (the size rounded up to a multiple of 16 MB).
    """
    needed = model_bytes + JOB_HEADROOM_BYTES
    if not limit_bytes or needed <= limit_bytes:
        return None
    mb = 1 << 20
    flag = 16 * math.ceil(needed / (16 * mb))
    return (f"is {model_bytes / mb:.1f} MB and the agent at {address} accepts messages up to {limit_bytes / mb:.0f} MB; "
            f"start the agent with --max-message-mb {flag}")


def runtime_for_path(path: str | Path) -> str:
    """The runtime a model file's extension implies.

    Raises:
        ValueError: unknown extension, listing the known ones.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in _EXTENSIONS:
        raise ValueError(
            f"cannot infer the runtime of {str(path)!r}; known extensions: {', '.join(sorted(_EXTENSIONS))} (or pass --runtime)"
        )
    return _EXTENSIONS[suffix]


def message_to_dict(msg: Any) -> dict[str, Any]:
    """A protobuf message as a JSON-ready dict: proto field names, every field, numbers as numbers.

    Unset message fields become None, and so do non-finite floats.

    (``json_format.MessageToDict`` writes 64-bit integers as strings, which JSON consumers trip on.)
    """
    out: dict[str, Any] = {}
    for field in msg.DESCRIPTOR.fields:
        value = getattr(msg, field.name)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            out[field.name] = {k: message_to_dict(v) if value_field.message_type else v for k, v in value.items()}
        elif field.is_repeated:
            out[field.name] = [message_to_dict(v) if field.message_type else v for v in value]
        elif field.message_type is not None:
            out[field.name] = message_to_dict(value) if msg.HasField(field.name) else None
        elif field.enum_type is not None:
            out[field.name] = field.enum_type.values_by_number[value].name
        elif isinstance(value, float) and not math.isfinite(value):
            out[field.name] = None  # strict JSON has no inf/nan (e.g. the CI of too few samples)
        else:
            out[field.name] = value
    return out


def make_plan(**fields: float | int) -> agent_pb2.TimingPlan:
    """A :class:`TimingPlan` message from keyword fields (unset ones take the agent's defaults).

    Raises:
        ValueError: an unknown field name, listing the known ones.
    """
    known = [f.name for f in agent_pb2.TimingPlan.DESCRIPTOR.fields]
    unknown = sorted(set(fields) - set(known))
    if unknown:
        raise ValueError(f"unknown timing plan field(s) {unknown}; known: {', '.join(known)}")
    return agent_pb2.TimingPlan(**{k: v for k, v in fields.items() if v is not None})


def make_job(
    model: bytes | None = None,
    *,
    sha256: str | None = None,
    runtime: str,
    format: str = "",
    threads: int = 1,
    inputs: Sequence[tuple[str, Sequence[int], str]] = (),
    plan: agent_pb2.TimingPlan | Mapping[str, float | int] | None = None,
    options: Mapping[str, str] | None = None,
    return_samples: bool = False,
    job_timeout_s: float = 0.0,
    job_id: str = "",
) -> agent_pb2.BenchmarkJob:
    """Build a ``BenchmarkJob``: give the model bytes, or the sha256 of a blob the agent holds.

    Args:
        model: The model file's bytes.
        sha256: A cached blob's hash instead of the bytes.
        runtime: Runtime name on the agent.
        format: Model format ("" lets the agent infer it).
        threads: Runtime threads.
        inputs: ``(name, shape, dtype)`` per input; empty name means by position.
        plan: A TimingPlan message or its fields.
        options: Runtime options.
        return_samples: Ask for every sample.
        job_timeout_s: Per-job deadline on the agent (0: its default); the job's ``timeout_s`` field.
        job_id: Echoed in the result.

    Raises:
        ValueError: neither or both of ``model`` and ``sha256``.
    """
    if (model is None) == (sha256 is None):
        raise ValueError("give exactly one of model (bytes) and sha256")
    if plan is None or isinstance(plan, agent_pb2.TimingPlan):
        plan_msg = plan or agent_pb2.TimingPlan()
    else:
        plan_msg = make_plan(**plan)
    job = agent_pb2.BenchmarkJob(
        job_id=job_id,
        format=format,
        runtime=runtime,
        threads=threads,
        inputs=[agent_pb2.TensorSpec(name=n, shape=list(s), dtype=d) for n, s, d in inputs],
        plan=plan_msg,
        options=dict(options or {}),
        return_samples=return_samples,
        timeout_s=job_timeout_s,
    )
    if model is not None:
        job.model_blob = bytes(model)
    else:
        job.model_sha256 = str(sha256)
    return job


def connect_kw(connect_timeout_s: float | None) -> dict[str, float]:
    """The :class:`AgentClient` retry arguments of a ``connect_timeout_s`` setting (None: the client's defaults)."""
    if connect_timeout_s is None:
        return {}
    return {"retry_s": connect_timeout_s, "refused_s": connect_timeout_s}


class AgentClient:
    """A connection to one agent.

    Args:
        address: ``host:port``.
        token: Bearer token; None for an agent started with --insecure-no-auth.
        tls_ca: PEM file of the CA (or self-signed cert) to trust; None for plaintext.
        timeout_s: Deadline of each unary call.
        retry_s: Total time to keep retrying UNAVAILABLE.
        refused_s: Total time to keep retrying a refused connection (nothing listens: the agent is not running,
            or still starting); at most ``retry_s``.
        max_message_mb: Largest message to accept (and to send, where larger than :data:`MAX_SEND_MB`).
        tls_server_name: Name to check the agent's certificate against (default: the host).

    Raises:
        OSError: ``tls_ca`` cannot be read.
    """

    def __init__(
        self,
        address: str,
        token: str | None = None,
        tls_ca: str | Path | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        retry_s: float = DEFAULT_RETRY_S,
        max_message_mb: int = 64,
        tls_server_name: str | None = None,
        refused_s: float = DEFAULT_REFUSED_S,
    ) -> None:
        self.address = address
        self.refused_s = min(refused_s, retry_s)
        self.token = token
        self.tls_ca = tls_ca
        self.timeout_s = timeout_s
        self.retry_s = retry_s
        self.max_message_mb = max_message_mb
        self.tls_server_name = tls_server_name
        options = [
            # The agent's own limit decides what it accepts (a whole ResNet50 is ~140 MB); this side only bounds
            # what it takes in.
            ("grpc.max_send_message_length", max(max_message_mb, MAX_SEND_MB) << 20),
            ("grpc.max_receive_message_length", max_message_mb << 20),
            ("grpc.keepalive_time_ms", int(KEEPALIVE_S * 1000)),
            ("grpc.keepalive_timeout_ms", int(KEEPALIVE_TIMEOUT_S * 1000)),
            ("grpc.keepalive_permit_without_calls", 0),  # only while a call is open: an idle channel costs nothing
            ("grpc.http2.max_pings_without_data", 0),  # a stream waiting on a long job sends no data, only pings
        ]
        if tls_server_name:
            options.append(("grpc.ssl_target_name_override", tls_server_name))
        if tls_ca is not None:
            creds = grpc.ssl_channel_credentials(root_certificates=Path(tls_ca).read_bytes())
            self._channel = grpc.secure_channel(address, creds, options=options)
        else:
            self._channel = grpc.insecure_channel(address, options=options)
        self._stub = agent_pb2_grpc.AgentStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._seen_ready = False  # streams are not retried, so check reachability once, before the first

    # -- context management -------------------------------------------------------------------

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()

    def __enter__(self) -> AgentClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- calls --------------------------------------------------------------------------------

    def health(self, service: str = "", timeout_s: float | None = None) -> str:
        """The agent's health status name (``SERVING``, ...); needs no token.

        Args:
            service: The service to ask about ("" for the whole agent).
            timeout_s: Deadline of this probe; None uses the client's ``timeout_s``.

        Raises:
            AgentError: the call failed.
        """
        request = health_pb2.HealthCheckRequest(service=service)
        reply = self._call("health", lambda t: self._health.Check(request, timeout=timeout_s or t))
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)

    def device_info(self) -> agent_pb2.DeviceInfo:
        """Facts about the device (see ``DeviceInfo`` in agent.proto).

        Raises:
            AgentError: the call failed.
        """
        return self._call(
            "GetDeviceInfo", lambda t: self._stub.GetDeviceInfo(agent_pb2.DeviceInfoRequest(), timeout=t, metadata=self._metadata)
        )

    def has_models(self, hashes: Iterable[str]) -> set[str]:
        """Which of the sha256 ``hashes`` the agent already caches.

        Raises:
            AgentError: the call failed.
        """
        request = agent_pb2.HasModelsRequest(sha256=list(hashes))
        reply = self._call("HasModels", lambda t: self._stub.HasModels(request, timeout=t, metadata=self._metadata))
        return set(reply.present)

    def wait_ready(self) -> None:
        """Block until the agent answers a health check, retrying UNAVAILABLE for up to ``retry_s``.

        Raises:
            AgentUnavailable: not reachable within ``retry_s``.
            AgentError: another failure.
        """
        # A health call rather than channel_ready_future: the latter leaves a watcher thread
        # running after the channel closes.
        self.health()

    def benchmark(self, jobs: Iterable[agent_pb2.BenchmarkJob], timeout_s: float | None = None) -> Iterator[agent_pb2.BenchmarkResult]:
        """Stream jobs to the agent and yield one result per job, in order.

        Job-level failures come back as results with ``error`` set (use ``result.WhichOneof("outcome")``).
        Jobs are consumed lazily, so a generator can upload the next model while the agent times
        the current one.

        Args:
            jobs: The jobs.
            timeout_s: Deadline of the whole stream; None: no overall deadline beyond the jobs' own.

        Raises:
            AgentError: the stream failed (unreachable, auth, message too large, ...).
        """
        if not self._seen_ready:
            self.wait_ready()
            self._seen_ready = True
        responses = self._stub.Benchmark(iter(jobs), timeout=timeout_s, metadata=self._metadata)
        try:
            yield from responses
        except grpc.RpcError as err:
            raise self._error("Benchmark", err, attempts=1) from err
        finally:
            responses.cancel()

    def time_model(
        self,
        model: bytes,
        runtime: str,
        *,
        format: str = "",
        threads: int = 1,
        inputs: Sequence[tuple[str, Sequence[int], str]] = (),
        plan: agent_pb2.TimingPlan | Mapping[str, float | int] | None = None,
        options: Mapping[str, str] | None = None,
        return_samples: bool = False,
        job_timeout_s: float = 0.0,
    ) -> agent_pb2.BenchmarkResult:
        """Time one model; upload its bytes only when the agent lacks them.

        Raises:
            AgentJobError: the job failed on the agent (bad model, shapes, runtime missing, ...).
            AgentError: the call failed.
        """
        sha = hashlib.sha256(model).hexdigest()
        cached = sha in self.has_models([sha])
        job = make_job(
            None if cached else model,
            sha256=sha if cached else None,
            runtime=runtime,
            format=format,
            threads=threads,
            inputs=inputs,
            plan=plan,
            options=options,
            return_samples=return_samples,
            job_timeout_s=job_timeout_s,
            job_id=sha[:12],
        )
        stream_timeout_s = (job_timeout_s or 3600.0) + _BENCHMARK_SLACK_S
        results = list(self.benchmark([job], timeout_s=stream_timeout_s))
        if len(results) != 1:
            raise AgentCallError(f"agent at {self.address} returned {len(results)} results for 1 job", self.address, "INTERNAL")
        result = results[0]
        if result.WhichOneof("outcome") == "error":
            raise AgentJobError(
                f"agent at {self.address} could not time the model: {result.error.code}: {result.error.message}",
                self.address,
                result.error.code,
            )
        return result

    def open_stream(self, jobs: Iterable[agent_pb2.BenchmarkJob], timeout_s: float | None = None) -> Any:
        """Open a raw ``Benchmark`` stream for a long-lived session (the fleet scheduler's pipeline).

        Returns grpc's call object: iterate it for results, ``cancel()`` it from another thread
        (e.g. a watchdog when a job overruns). Translate its ``grpc.RpcError`` with :meth:`error`.
        No health probe first: the caller handles UNAVAILABLE itself.
        """
        return self._stub.Benchmark(iter(jobs), timeout=timeout_s, metadata=self._metadata)

    def error(self, what: str, err: grpc.RpcError) -> AgentError:
        """The :class:`AgentError` subclass for a failed call ``what``."""
        return self._error(what, err, attempts=1)

    # -- plumbing -----------------------------------------------------------------------------

    def _call(self, what: str, fn: Callable[[float], _T]) -> _T:
        start = time.monotonic()
        attempts = 0
        while True:
            attempts += 1
            try:
                return fn(self.timeout_s)
            except grpc.RpcError as err:
                code = err.code() if hasattr(err, "code") else None
                if code != grpc.StatusCode.UNAVAILABLE:
                    raise self._error(what, err, attempts) from err
                pause = _RETRY_PAUSE_S[min(attempts - 1, len(_RETRY_PAUSE_S) - 1)]
                if time.monotonic() + pause >= start + (self.refused_s if _refused(err) else self.retry_s):
                    raise self._error(what, err, attempts) from err
                log.debug("%s to %s unavailable (attempt %d); retrying in %.1f s", what, self.address, attempts, pause)
                time.sleep(pause)

    def _error(self, what: str, err: grpc.RpcError, attempts: int) -> AgentError:
        code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
        details = (err.details() if hasattr(err, "details") else str(err)) or ""
        details = " ".join(details.split())[:300]
        name = code.name if code is not None else "UNKNOWN"
        tries = f" after {attempts} attempt{'s' if attempts != 1 else ''}"
        if code == grpc.StatusCode.UNAVAILABLE:
            hint = "; is it running? (lutnas agent serve)" if _refused(err) else ""
            return AgentUnavailable(f"agent at {self.address} unreachable{tries}: {details}{hint}", self.address, name,
                                    attempts)
        if code == grpc.StatusCode.UNAUTHENTICATED:
            return AgentAuthError(f"agent at {self.address} rejected the token: {details}", self.address, name, attempts)
        return AgentCallError(f"{what} on agent at {self.address} failed{tries}: {name}: {details}", self.address, name, attempts)


def _refused(err: grpc.RpcError) -> bool:
    """Whether an UNAVAILABLE error is a refused connection: nothing listens at the address."""
    details = err.details() if hasattr(err, "details") else ""
    return "connection refused" in (details or "").lower()
