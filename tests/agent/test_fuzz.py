"""Hypothesis-driven malformed requests: the agent answers each with a status, and keeps serving."""

from __future__ import annotations

import grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.testing import AgentProcess, onnx_matmul_relu, sleep_model
from profiler.client import AgentCallError, AgentClient, make_job
from protos import agent_pb2
from tests.security._fuzz import mutate_bytes

from .conftest import FAST_PLAN

_VALID_ONNX = onnx_matmul_relu(8, 8, 8)
_SETTINGS = dict(deadline=None, derandomize=True, suppress_health_check=list(HealthCheck), database=None)
_ALLOWED_JOB_ERRORS = {"INVALID_ARGUMENT", "FAILED_PRECONDITION", "NOT_FOUND", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED"}


_plans = st.fixed_dictionaries(
    {},
    optional={
        "warmup_count": st.integers(-(2**31), 5),
        "warmup_s": st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(0, 0.01)),
        "min_reps": st.integers(-(2**31), 2**31 - 1),
        "min_s": st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(0, 0.01)),
        "max_reps": st.integers(-(2**31), 30),
        "max_s": st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(0, 0.05)),
        "target_rel_ci": st.floats(allow_nan=True, allow_infinity=True),
        "cooldown_s": st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.just(0.0)),
    },
)
_inputs = st.lists(
    st.tuples(
        st.one_of(st.just(""), st.just("x"), st.text(max_size=12)),
        st.lists(st.integers(-(2**40), 2**40), max_size=10),
        st.one_of(st.just(""), st.sampled_from(["float32", "int64", "uint8", "bool"]), st.text(max_size=8)),
    ),
    max_size=4,
)


def _job(data: st.DataObject) -> agent_pb2.BenchmarkJob:
    source = data.draw(st.sampled_from(["random", "mutated-onnx", "valid-onnx", "sleep-json", "hash"]))
    runtime = data.draw(
        st.one_of(st.sampled_from(["onnxruntime", "tflite", "torch", "benchmark_model", "sleep", ""]), st.text(max_size=20))
    )
    kwargs = dict(
        runtime=runtime,
        format=data.draw(st.one_of(st.just(""), st.sampled_from(["onnx", "tflite", "pt2", "torchscript"]), st.text(max_size=10))),
        threads=data.draw(st.integers(-(2**31), 2**31 - 1)),
        inputs=data.draw(_inputs),
        plan={**FAST_PLAN, **data.draw(_plans)},
        options=data.draw(st.dictionaries(st.text(max_size=12), st.text(max_size=12), max_size=3)),
        job_timeout_s=data.draw(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(0.5, 2.0))),
        return_samples=data.draw(st.booleans()),
        job_id=data.draw(st.text(max_size=300)),
    )
    if source == "hash":
        return make_job(sha256=data.draw(st.one_of(st.text(max_size=70), st.text("0123456789abcdef", min_size=64, max_size=64))), **kwargs)
    if source == "random":
        blob = data.draw(st.binary(max_size=4096))
    elif source == "mutated-onnx":
        blob = mutate_bytes(_VALID_ONNX, data)
    elif source == "valid-onnx":
        blob = _VALID_ONNX
    else:
        blob = data.draw(
            st.sampled_from([b"{}", b"[]", b'{"latency_ms": "x"}', b'{"latency_ms": -5}', b'{"latency_ms": 1e308}', sleep_model(0.1)[:-3]])
        )
    return make_job(blob, **kwargs)


def test_fuzzed_jobs_and_raw_messages(shared_agent: AgentProcess) -> None:
    counts = {"jobs": 0, "raw": 0}
    with AgentClient(shared_agent.address, token=shared_agent.token, timeout_s=10.0) as client:
        channel = grpc.insecure_channel(shared_agent.address)
        metadata = (("authorization", f"Bearer {shared_agent.token}"),)
        raw_methods = {
            name: channel.unary_unary(f"/lutnas.agent.v1.Agent/{name}", request_serializer=lambda b: b, response_deserializer=lambda b: b)
            for name in ("GetDeviceInfo", "HasModels")
        }
        raw_stream = channel.stream_stream(
            "/lutnas.agent.v1.Agent/Benchmark", request_serializer=lambda b: b, response_deserializer=lambda b: b
        )

        @settings(max_examples=160, **_SETTINGS)
        @given(st.data())
        def fuzz_jobs(data: st.DataObject) -> None:
            job = _job(data)
            try:
                results = list(client.benchmark([job], timeout_s=30.0))
            except AgentCallError as err:
                # Only transport-level refusals end a stream; never a crash of the service.
                assert err.code in {"RESOURCE_EXHAUSTED", "INVALID_ARGUMENT"}, err
                counts["jobs"] += 1
                return
            assert len(results) == 1
            result = results[0]
            if result.WhichOneof("outcome") == "error":
                assert result.error.code in _ALLOWED_JOB_ERRORS | {"ABORTED"}, result.error
                assert "\n" not in result.error.message and len(result.error.message) <= 300
            counts["jobs"] += 1

        @settings(max_examples=60, **_SETTINGS)
        @given(st.sampled_from(["GetDeviceInfo", "HasModels", "Benchmark"]), st.binary(max_size=512))
        def fuzz_raw(method: str, payload: bytes) -> None:
            try:
                if method == "Benchmark":
                    list(raw_stream(iter([payload, payload]), timeout=10, metadata=metadata))
                else:
                    raw_methods[method](payload, timeout=10, metadata=metadata)
            except grpc.RpcError as err:
                assert err.code() in {grpc.StatusCode.INTERNAL, grpc.StatusCode.INVALID_ARGUMENT}, err
            counts["raw"] += 1

        try:
            fuzz_jobs()
            fuzz_raw()
        finally:
            channel.close()
        assert counts["jobs"] + counts["raw"] >= 200
        assert client.health() == "SERVING"
        assert client.time_model(_VALID_ONNX, "onnxruntime", plan=FAST_PLAN).stats.n >= 5
    assert shared_agent.alive()
