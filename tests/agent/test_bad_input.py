"""Bad input gets a status code and a one-line reason; the agent keeps serving."""

from __future__ import annotations

import os

import grpc
import pytest

from agent.testing import start_agent_process
from profiler.client import AgentCallError, AgentClient, make_job
from protos import agent_pb2

from .conftest import FAST_PLAN


def _one(client: AgentClient, job: agent_pb2.BenchmarkJob) -> agent_pb2.BenchmarkResult:
    (result,) = client.benchmark([job])
    return result


@pytest.mark.parametrize(
    "blob",
    [os.urandom(2048), b"", b"\x00" * 64],
    ids=["random-bytes", "empty", "zeros"],
)
def test_garbage_models(client: AgentClient, blob: bytes) -> None:
    result = _one(client, make_job(blob, runtime="onnxruntime", plan=FAST_PLAN))
    assert result.error.code == "INVALID_ARGUMENT"
    assert "\n" not in result.error.message


def test_truncated_models(client: AgentClient, onnx_model: bytes) -> None:
    from agent.testing import tflite_add

    for blob, runtime in ((onnx_model[: len(onnx_model) // 2], "onnxruntime"), (tflite_add(16)[:100], "tflite")):
        result = _one(client, make_job(blob, runtime=runtime, plan=FAST_PLAN))
        assert result.error.code == "INVALID_ARGUMENT", (runtime, result.error)
    assert client.health() == "SERVING"


def test_wrong_input_shapes_and_dtypes(client: AgentClient, onnx_model: bytes) -> None:
    cases = [
        [("x", [3, 3], "float32")],
        [("x", [32, 32], "int64")],
        [("nope", [32, 32], "")],
        [("x", [32, 32], ""), ("y", [1], "")],
        [("x", [0, 32], "")],
        [("x", [32, 32], "complex512")],
    ]
    for inputs in cases:
        result = _one(client, make_job(onnx_model, runtime="onnxruntime", inputs=inputs, plan=FAST_PLAN))
        assert result.error.code == "INVALID_ARGUMENT", (inputs, result)
    huge = _one(client, make_job(onnx_model, runtime="onnxruntime", inputs=[("x", [1 << 20, 1 << 20], "")]))
    assert huge.error.code == "RESOURCE_EXHAUSTED"


def test_unknown_and_unavailable_runtimes(client: AgentClient, onnx_model: bytes) -> None:
    unknown = _one(client, make_job(onnx_model, runtime="tensorrt-9000"))
    assert unknown.error.code == "INVALID_ARGUMENT" and "offered" in unknown.error.message
    missing_bin = _one(client, make_job(onnx_model, runtime="benchmark_model"))
    assert missing_bin.error.code == "FAILED_PRECONDITION"
    bad_provider = _one(client, make_job(onnx_model, runtime="onnxruntime", options={"providers": "NoSuchExecutionProvider"}))
    assert bad_provider.error.code == "FAILED_PRECONDITION"
    bad_option = _one(client, make_job(onnx_model, runtime="onnxruntime", options={"colour": "blue"}))
    assert bad_option.error.code == "INVALID_ARGUMENT"


def test_bad_plans_and_fields(client: AgentClient, onnx_model: bytes) -> None:
    for plan in ({"max_reps": 0}, {"min_s": -1.0}, {"max_s": float("inf")}, {"min_reps": 10, "max_reps": 5}, {"max_s": 1e9}):
        result = _one(client, make_job(onnx_model, runtime="onnxruntime", plan=plan))
        assert result.error.code == "INVALID_ARGUMENT", (plan, result)
    for job in (
        make_job(onnx_model, runtime="onnxruntime", threads=-1),
        make_job(onnx_model, runtime="onnxruntime", format="tflite"),
        make_job(onnx_model, runtime="onnxruntime", job_timeout_s=float("nan")),
        make_job(sha256="xyz", runtime="onnxruntime"),
        agent_pb2.BenchmarkJob(runtime="onnxruntime"),
    ):
        assert _one(client, job).error.code == "INVALID_ARGUMENT", job


def test_bad_hashes_in_has_models(client: AgentClient) -> None:
    with pytest.raises(AgentCallError) as info:
        client.has_models(["not-a-hash"])
    assert info.value.code == "INVALID_ARGUMENT"


def test_oversize_blob_is_refused() -> None:
    with start_agent_process(extra_args=["--max-message-mb", "1"]) as agent:
        with AgentClient(agent.address, token=agent.token) as client:
            with pytest.raises(AgentCallError) as info:
                list(client.benchmark([make_job(os.urandom(2 << 20), runtime="onnxruntime")]))
            assert info.value.code == "RESOURCE_EXHAUSTED"
            assert client.device_info().max_message_bytes == 1 << 20  # still serving
    # The model cache cap refuses a blob that fits a message but not the cache.
    with start_agent_process(extra_args=["--cache-mb", "1"]) as agent:
        with AgentClient(agent.address, token=agent.token) as client:
            (result,) = client.benchmark([make_job(os.urandom(1536 << 10), runtime="onnxruntime")])
            assert result.error.code == "RESOURCE_EXHAUSTED"
            assert client.health() == "SERVING"


def test_calls_without_deadline_still_bounded(client: AgentClient) -> None:
    # A raw stub call (no client helpers) of an unknown method gets UNIMPLEMENTED, not a hang.
    channel = grpc.insecure_channel(client.address)
    try:
        call = channel.unary_unary("/lutnas.agent.v1.Agent/NoSuchMethod", request_serializer=lambda b: b, response_deserializer=lambda b: b)
        with pytest.raises(grpc.RpcError) as info:
            call(b"", timeout=5, metadata=(("authorization", f"Bearer {client.token}"),))
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        channel.close()
