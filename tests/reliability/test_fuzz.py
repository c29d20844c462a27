"""At least a thousand malformed requests against one agent: each gets a status and a one-line reason.

One agent subprocess (token auth, sleep runtime, 1 MiB message cap, 10 s job deadline) takes every
request; jobs share one long-lived ``Benchmark`` stream, reopened only after a stream-level refusal.
Requests (hypothesis, derandomized): random bytes as models, truncated / bit-flipped / spliced real
ONNX and TFLite models, wrong input shapes and dtypes, unknown runtimes and formats, absurd plans
(negative, NaN, infinite, huge), bad thread counts and deadlines, bad sha256 strings (in jobs and in
``HasModels``), near-empty jobs, oversize messages and undecodable bytes.

Checked: every request is answered (a result with a job-level error or statistics, or a gRPC status)
with a non-empty one-line reason; the agent answers health checks throughout; its resident memory
(server and timing worker, ``VmRSS``) stays within ``SERVER_RSS_MB`` / ``WORKER_RSS_MB`` and the
server grows by at most ``SERVER_GROWTH_MB`` after warm-up.
"""

from __future__ import annotations

import queue
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.testing import (
    SLEEP_RUNTIME_SPEC,
    AgentProcess,
    onnx_matmul_relu,
    sleep_model,
    start_agent_process,
    tflite_add,
    wait_until,
)
from agent.config import DEFAULT_MAX_STREAMS_PER_CLIENT
from profiler.client import make_job
from protos import agent_pb2, agent_pb2_grpc

from ._harness import TOKEN, rss_kb

SERVER_RSS_MB = 400  # the gRPC server process, absolute
SERVER_GROWTH_MB = 64  # the server, from after the first 100 requests to the end: no leak per request
WORKER_RSS_MB = 1024  # the timing worker (onnxruntime and LiteRT loaded), absolute
MIN_REQUESTS = 1000
MAX_MESSAGE_MB = 1
_KNOWN_RUNTIMES = frozenset({"onnxruntime", "tflite", "torch", "benchmark_model", "sleep"})
_HYPOTHESIS = {"deadline": None, "derandomize": True, "database": None, "suppress_health_check": list(HealthCheck)}
# Job-level codes the agent may answer a job with (OK means statistics came back).
_JOB_CODES = {"OK", "INVALID_ARGUMENT", "FAILED_PRECONDITION", "NOT_FOUND", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED",
              "ABORTED"}
# gRPC statuses that may end a call or stream (oversize or undecodable messages).
_CALL_CODES = {"OK", "INVALID_ARGUMENT", "RESOURCE_EXHAUSTED", "INTERNAL", "UNAUTHENTICATED"}
_PLAN = {"warmup_count": 1, "warmup_s": 0.0, "min_reps": 2, "min_s": 0.0, "max_reps": 3, "max_s": 0.02}
_ONNX = onnx_matmul_relu(8, 8, 8)
_TFLITE = tflite_add(16)
_SLEEP = sleep_model(0.1)


def _queued(jobs: queue.Queue) -> Iterator[agent_pb2.BenchmarkJob]:
    """A Benchmark stream's requests: the jobs put on ``jobs``, until a None."""
    while (job := jobs.get()) is not None:
        yield job


@dataclass
class _Answer:
    code: str  # "OK" or a job error code or a gRPC status name
    reason: str  # "" for OK


@dataclass
class _Session:
    """One agent, one channel, one reusable Benchmark stream, and the running figures."""

    agent: AgentProcess
    channel: grpc.Channel
    metadata: tuple = ()
    codes: Counter = field(default_factory=Counter)
    requests: int = 0
    server_rss_kb: list[int] = field(default_factory=list)
    worker_rss_kb: list[int] = field(default_factory=list)
    _queue: queue.Queue | None = None
    _results: Iterator | None = None
    _opened: float = 0.0

    def __post_init__(self) -> None:
        self.metadata = (("authorization", f"Bearer {TOKEN}"),)
        self.stub = agent_pb2_grpc.AgentStub(self.channel)
        self.health_stub = health_pb2_grpc.HealthStub(self.channel)

    # -- the shared stream ----------------------------------------------------------------
    def _open(self) -> None:
        self.close()
        jobs: queue.Queue = queue.Queue()
        self._queue = jobs
        self._results = self.stub.Benchmark(_queued(jobs), metadata=self.metadata, timeout=120.0)
        self._opened = time.monotonic()

    def close(self) -> None:
        if self._queue is not None:
            self._queue.put(None)
        if self._results is not None:
            self._results.cancel()
        self._queue = self._results = None

    def job(self, job: agent_pb2.BenchmarkJob) -> _Answer:
        """Send one job on the shared stream and read its answer."""
        # Streams get a deadline (so a hang fails the test instead of blocking it): renew them well before.
        if self._results is None or time.monotonic() - self._opened > 60.0:
            self._open()
        assert self._queue is not None and self._results is not None
        self._queue.put(job)
        try:
            result = next(self._results)
        except grpc.RpcError as err:
            self._results = None  # a stream-level refusal ends the stream; the next job opens another
            return self._record(err.code().name, err.details() or "")
        except StopIteration:
            self._results = None
            return self._record("NO_ANSWER", "the stream ended without a result")
        if result.WhichOneof("outcome") == "error":
            return self._record(result.error.code, result.error.message)
        return self._record("OK", "")

    # -- unary calls ----------------------------------------------------------------------
    def unary(self, fn: Callable[[], object]) -> _Answer:
        try:
            fn()
        except grpc.RpcError as err:
            return self._record(err.code().name, err.details() or "")
        return self._record("OK", "")

    def raw(self, method: str, payload: bytes) -> _Answer:
        """Undecodable bytes as the request of ``method``."""
        path = f"/lutnas.agent.v1.Agent/{method}"
        try:
            if method == "Benchmark":
                call = self.channel.stream_stream(path, request_serializer=bytes, response_deserializer=bytes)
                list(call(iter([payload]), timeout=30.0, metadata=self.metadata))
            else:
                call = self.channel.unary_unary(path, request_serializer=bytes, response_deserializer=bytes)
                call(payload, timeout=30.0, metadata=self.metadata)
        except grpc.RpcError as err:
            return self._record(err.code().name, err.details() or "")
        return self._record("OK", "")

    def _record(self, code: str, reason: str) -> _Answer:
        self.requests += 1
        self.codes[code] += 1
        if self.requests % 100 == 0:
            self.check_alive()
        return _Answer(code, reason)

    # -- the agent's health ---------------------------------------------------------------
    def check_alive(self) -> None:
        """Health answers SERVING; record the RSS of the server and its current worker."""
        reply = self.health_stub.Check(health_pb2.HealthCheckRequest(), timeout=30.0)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        info = self.stub.GetDeviceInfo(agent_pb2.DeviceInfoRequest(), timeout=30.0, metadata=self.metadata)
        self.server_rss_kb.append(rss_kb(self.agent.proc.pid))
        self.worker_rss_kb.append(rss_kb(info.worker_pid))


def _full_share_of_streams(s: _Session) -> bool:
    """Whether this client can hold its whole share of Benchmark streams at once, each timing a job: no stream
    that ended (broken, refused, cancelled) still holds its slot."""
    queues: list[queue.Queue] = [queue.Queue() for _ in range(DEFAULT_MAX_STREAMS_PER_CLIENT)]
    calls = [s.stub.Benchmark(_queued(q), metadata=s.metadata, timeout=60.0) for q in queues]
    try:
        for q in queues:
            q.put(_job(_ONNX, runtime="onnxruntime"))
        return all(next(call).WhichOneof("outcome") == "stats" for call in calls)
    except grpc.RpcError:
        return False
    finally:
        for q, call in zip(queues, calls):
            q.put(None)
            call.cancel()


def _one_line(answer: _Answer) -> bool:
    return answer.code == "OK" or (bool(answer.reason.strip()) and "\n" not in answer.reason and len(answer.reason) <= 1000)


def _check_job_answer(answer: _Answer, ok_allowed: bool = True) -> None:
    assert answer.code in _JOB_CODES | _CALL_CODES, answer
    assert _one_line(answer), answer
    if not ok_allowed:
        assert answer.code != "OK", answer


# -- strategies ---------------------------------------------------------------------------

_floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(-1.0, 0.05))
_ints = st.one_of(st.integers(-(2**31), 2**31 - 1), st.integers(-3, 5))
_absurd_plans = st.fixed_dictionaries({}, optional={
    "warmup_count": _ints, "warmup_s": _floats, "min_reps": _ints, "min_s": _floats, "max_reps": _ints,
    "max_s": _floats, "target_rel_ci": _floats, "cooldown_s": _floats,
})
_shapes = st.lists(st.integers(-5, 300), max_size=6)
_inputs = st.lists(st.tuples(st.one_of(st.sampled_from(["x", "", "y"]), st.text(max_size=10)), _shapes,
                             st.one_of(st.sampled_from(["", "float32", "int64", "uint8", "bool", "float16"]),
                                       st.text(max_size=8))),
                   min_size=1, max_size=3)


@st.composite
def _mutated(draw: st.DrawFn, blob: bytes) -> bytes:
    kind = draw(st.sampled_from(["truncate", "flip", "splice"]))
    if kind == "truncate":
        return blob[: draw(st.integers(1, len(blob) - 1))]
    buf = bytearray(blob)
    if kind == "flip":
        for _ in range(draw(st.integers(1, 16))):
            buf[draw(st.integers(0, len(buf) - 1))] ^= 1 << draw(st.integers(0, 7))
        return bytes(buf)
    at = draw(st.integers(0, len(buf)))
    return bytes(buf[:at]) + draw(st.binary(min_size=1, max_size=64)) + bytes(buf[at:])


def _job(blob: bytes | None = None, **kw: object) -> agent_pb2.BenchmarkJob:
    base: dict[str, object] = {"runtime": "sleep", "plan": _PLAN, "job_id": "fuzz"}
    base.update(kw)
    if blob is None:
        return make_job(sha256=str(base.pop("sha256")), **base)  # type: ignore[arg-type]
    return make_job(blob, **base)  # type: ignore[arg-type]


def test_thousand_malformed_requests(tally) -> None:
    agent = start_agent_process(token=TOKEN, extra_args=[
        "--extra-runtime", SLEEP_RUNTIME_SPEC, "--max-message-mb", str(MAX_MESSAGE_MB), "--job-timeout-s", "10"])
    channel = grpc.insecure_channel(agent.address, options=[("grpc.max_receive_message_length", 8 << 20)])
    s = _Session(agent, channel)
    started = time.monotonic()
    try:
        s.check_alive()

        @settings(max_examples=300, **_HYPOTHESIS)
        @given(st.binary(min_size=1, max_size=2048), st.sampled_from(["onnxruntime", "tflite", "sleep"]))
        def random_blobs(blob: bytes, runtime: str) -> None:
            _check_job_answer(s.job(_job(blob, runtime=runtime)), ok_allowed=False)

        @settings(max_examples=150, **_HYPOTHESIS)
        @given(_mutated(_ONNX))
        def mutated_onnx(blob: bytes) -> None:
            _check_job_answer(s.job(_job(blob, runtime="onnxruntime")))  # a flipped weight still runs: OK is fine

        @settings(max_examples=100, **_HYPOTHESIS)
        @given(_mutated(_TFLITE))
        def mutated_tflite(blob: bytes) -> None:
            _check_job_answer(s.job(_job(blob, runtime="tflite")))

        @settings(max_examples=100, **_HYPOTHESIS)
        @given(st.sampled_from(["onnxruntime", "tflite"]), _inputs)
        def wrong_inputs(runtime: str, inputs: list) -> None:
            blob = _ONNX if runtime == "onnxruntime" else _TFLITE
            _check_job_answer(s.job(_job(blob, runtime=runtime, inputs=inputs)))

        @settings(max_examples=60, **_HYPOTHESIS)
        # Hypothesis also draws string constants it finds in the code under test: a real runtime's name is not
        # an unknown one.
        @given(st.one_of(st.text(max_size=40).filter(lambda name: name not in _KNOWN_RUNTIMES),
                         st.sampled_from(["", "ONNXRUNTIME", "tensorflow", "sleep "])),
               st.text(max_size=12))
        def unknown_runtimes(runtime: str, fmt: str) -> None:
            _check_job_answer(s.job(_job(_ONNX, runtime=runtime, format=fmt)), ok_allowed=False)

        @settings(max_examples=120, **_HYPOTHESIS)
        @given(_absurd_plans, _ints, st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(-5, 1e6)))
        def absurd_plans(plan: dict, threads: int, timeout_s: float) -> None:
            _check_job_answer(s.job(_job(_SLEEP, plan={**_PLAN, **plan}, threads=threads, job_timeout_s=timeout_s)))

        @settings(max_examples=60, **_HYPOTHESIS)
        @given(st.one_of(st.text(max_size=80), st.text("0123456789abcdefABCDEF", min_size=60, max_size=66)))
        def bad_hashes_in_jobs(sha: str) -> None:
            # A well-formed hash the agent lacks is NOT_FOUND; anything else INVALID_ARGUMENT.
            _check_job_answer(s.job(_job(None, sha256=sha)), ok_allowed=False)

        @settings(max_examples=20, **_HYPOTHESIS)
        @given(st.text(max_size=300))
        def near_empty_jobs(job_id: str) -> None:
            _check_job_answer(s.job(agent_pb2.BenchmarkJob(job_id=job_id)), ok_allowed=False)

        @settings(max_examples=80, **_HYPOTHESIS)
        @given(st.one_of(st.lists(st.text(max_size=70), max_size=20),
                         st.integers(10_001, 12_000).map(lambda n: ["0" * 64] * n)))
        def bad_hashes_in_has_models(hashes: list[str]) -> None:
            answer = s.unary(lambda: s.stub.HasModels(agent_pb2.HasModelsRequest(sha256=hashes), timeout=30.0,
                                                       metadata=s.metadata))
            assert answer.code in {"OK", "INVALID_ARGUMENT"} and _one_line(answer), answer
            assert answer.code == "INVALID_ARGUMENT" or all(len(h) == 64 for h in hashes), answer

        @settings(max_examples=10, **_HYPOTHESIS)
        @given(st.integers((MAX_MESSAGE_MB << 20) + 1, 3 * (MAX_MESSAGE_MB << 20)), st.booleans())
        def oversize(size: int, as_job: bool) -> None:
            if as_job:
                answer = s.job(_job(b"\x01" * size, runtime="onnxruntime"))
            else:
                answer = s.unary(lambda: s.stub.HasModels(
                    agent_pb2.HasModelsRequest(sha256=["a" * size]), timeout=30.0, metadata=s.metadata))
            assert answer.code == "RESOURCE_EXHAUSTED" and _one_line(answer), answer

        @settings(max_examples=60, **_HYPOTHESIS)
        @given(st.sampled_from(["GetDeviceInfo", "HasModels", "Benchmark"]), st.binary(min_size=1, max_size=512))
        def undecodable(method: str, payload: bytes) -> None:
            answer = s.raw(method, payload)
            assert answer.code in _CALL_CODES and _one_line(answer), answer  # some bytes decode as a valid message

        for fuzz in (random_blobs, mutated_onnx, mutated_tflite, wrong_inputs, unknown_runtimes, absurd_plans,
                     bad_hashes_in_jobs, near_empty_jobs, bad_hashes_in_has_models, oversize, undecodable):
            fuzz()
        # Still serving, and still timing a good model correctly; every stream slot the fuzz used is free again.
        s.close()
        assert wait_until(lambda: _full_share_of_streams(s), timeout_s=15.0, poll_s=0.5)
        s.check_alive()
        assert s.job(_job(_ONNX, runtime="onnxruntime")).code == "OK"
        assert agent.alive()
    finally:
        elapsed = time.monotonic() - started
        s.close()
        channel.close()
        agent.stop()
    tally.add(requests_tried=s.requests, fuzz_requests=s.requests)
    tally.note(f"fuzz: {s.requests} requests in {elapsed:.0f} s; answers {dict(sorted(s.codes.items()))}; "
               f"RSS max server {max(s.server_rss_kb) // 1024} MiB, worker {max(s.worker_rss_kb) // 1024} MiB")
    assert s.requests >= MIN_REQUESTS
    assert "NO_ANSWER" not in s.codes
    assert max(s.server_rss_kb) <= SERVER_RSS_MB * 1024, s.server_rss_kb
    assert max(s.worker_rss_kb) <= WORKER_RSS_MB * 1024, s.worker_rss_kb
    baseline = s.server_rss_kb[1] if len(s.server_rss_kb) > 1 else s.server_rss_kb[0]
    assert s.server_rss_kb[-1] - baseline <= SERVER_GROWTH_MB * 1024, s.server_rss_kb
