"""A real agent on loopback: device info, streams, caching, runtimes, job log."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest

from agent.testing import AgentProcess, onnx_conv, sleep_model, tflite_add
from profiler.client import AgentClient, AgentJobError, make_job

from .conftest import FAST_PLAN


def test_health_and_device_info(client: AgentClient) -> None:
    assert client.health() == "SERVING"
    info = client.device_info()
    assert info.name and info.hostname and info.agent_version
    assert info.cpu_cores >= 1 and info.ram_mb > 0 and info.os
    names = {r.name: r for r in info.runtimes}
    assert names["onnxruntime"].available and names["onnxruntime"].version
    assert names["sleep"].available
    assert not names["benchmark_model"].available
    assert len(info.pinned_cpus) == 1, "the worker pins to one core by default"
    assert info.worker_pid > 0
    assert info.auth_required and not info.tls
    assert info.max_message_bytes == 64 << 20


def test_stream_with_one_bad_model(client: AgentClient, onnx_model: bytes) -> None:
    jobs = [
        make_job(onnx_model, runtime="onnxruntime", plan=FAST_PLAN, job_id="good-1"),
        make_job(b"\x08\x01not an onnx model", runtime="onnxruntime", plan=FAST_PLAN, job_id="bad"),
        make_job(onnx_conv(8, 14), runtime="onnxruntime", plan=FAST_PLAN, job_id="good-2", return_samples=True),
    ]
    results = list(client.benchmark(jobs))
    assert [r.job_id for r in results] == ["good-1", "bad", "good-2"]
    assert [r.WhichOneof("outcome") for r in results] == ["stats", "error", "stats"]
    assert results[1].error.code == "INVALID_ARGUMENT" and "\n" not in results[1].error.message
    good = results[2]
    s = good.stats
    assert 5 <= s.n <= 20 and len(good.samples_ms) == s.n
    assert s.min_ms <= s.p10_ms <= s.median_ms <= s.p90_ms <= s.max_ms
    assert s.mean_ms > 0 and s.std_ms >= 0
    assert good.model_sha256 == hashlib.sha256(jobs[2].model_blob).hexdigest()
    assert good.runtime_version and good.options["providers"].startswith("CPUExecutionProvider")
    assert good.before.unix_time_s <= good.after.unix_time_s
    assert good.before.cpus and good.warmup_runs >= 2


def test_cached_blob_is_not_resent(client: AgentClient, monkeypatch: pytest.MonkeyPatch) -> None:
    model = onnx_conv(4, 10, seed=7)
    sha = hashlib.sha256(model).hexdigest()
    sent: list[str | None] = []
    original = client.benchmark

    def spy(jobs, **kw):
        jobs = list(jobs)
        sent.extend(j.WhichOneof("model") for j in jobs)
        return original(jobs, **kw)

    monkeypatch.setattr(client, "benchmark", spy)
    assert client.has_models([sha]) == set()
    first = client.time_model(model, "onnxruntime", plan=FAST_PLAN)
    assert client.has_models([sha, "0" * 64]) == {sha}
    second = client.time_model(model, "onnxruntime", plan=FAST_PLAN)
    assert sent == ["model_blob", "model_sha256"]
    assert first.model_sha256 == second.model_sha256 == sha


def test_unknown_hash_is_not_found(client: AgentClient) -> None:
    (result,) = client.benchmark([make_job(sha256="f" * 64, runtime="onnxruntime")])
    assert result.error.code == "NOT_FOUND"


def test_tflite_runtime(client: AgentClient) -> None:
    result = client.time_model(tflite_add(32), "tflite", plan=FAST_PLAN, threads=1)
    assert result.stats.n >= 5 and result.options["xnnpack"] == "1"
    plain = client.time_model(tflite_add(32), "tflite", plan=FAST_PLAN, options={"xnnpack": "0"})
    assert plain.options["xnnpack"] == "0"
    with pytest.raises(AgentJobError, match="INVALID_ARGUMENT"):
        client.time_model(tflite_add(32)[:-40], "tflite", plan=FAST_PLAN)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torch_runtime_cpu(client: AgentClient) -> None:
    torch = pytest.importorskip("torch")

    class Block(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(4, 4, 3, padding=1)

        def forward(self, x):
            return torch.relu(self.conv(x))

    block = Block().eval()
    example = (torch.randn(1, 4, 8, 8),)
    buf = io.BytesIO()
    torch.jit.save(torch.jit.trace(block, example), buf)
    scripted = client.time_model(buf.getvalue(), "torch", format="torchscript", inputs=[("", [1, 4, 8, 8], "float32")], plan=FAST_PLAN)
    assert scripted.stats.n >= 5 and scripted.options["format"] == "torchscript"
    with pytest.raises(AgentJobError, match="declares no input shapes"):
        client.time_model(buf.getvalue(), "torch", plan=FAST_PLAN)
    buf = io.BytesIO()
    torch.export.save(torch.export.export(block, example), buf)
    exported = client.time_model(buf.getvalue(), "torch", plan=FAST_PLAN)  # format and shapes from the archive
    assert exported.stats.n >= 5 and exported.options["format"] == "pt2" and exported.options["device"] == "cpu"


def test_sleep_runtime_and_drift_file(client: AgentClient, tmp_path: Path) -> None:
    drift = tmp_path / "factor"
    plan = {"warmup_count": 1, "warmup_s": 0.0, "min_reps": 5, "min_s": 0.0, "max_reps": 5}
    base = client.time_model(sleep_model(3.0, drift_file=drift), "sleep", plan=plan)
    # The minimum is robust to this shared machine's positive, bursty noise.
    assert base.stats.min_ms == pytest.approx(3.0, rel=0.1)
    drift.write_text("2.0")
    drifted = client.time_model(sleep_model(3.0, drift_file=drift), "sleep", plan=plan)
    assert drifted.stats.min_ms == pytest.approx(6.0, rel=0.1)


def test_job_log_counts_timings(shared_agent: AgentProcess, client: AgentClient, job_log: Path) -> None:
    model = sleep_model(0.5, tag="counted")
    sha = hashlib.sha256(model).hexdigest()
    before = client.device_info().jobs_completed
    plan = {"warmup_count": 0, "warmup_s": 0.0, "min_reps": 2, "min_s": 0.0, "max_reps": 2}
    client.time_model(model, "sleep", plan=plan)
    client.time_model(model, "sleep", plan=plan)
    lines = [json.loads(line) for line in job_log.read_text().splitlines()]
    assert sum(1 for line in lines if line["model_sha256"] == sha) == 2
    assert {"unix_time_s", "runtime", "job_id", "n", "median_ms"} <= set(lines[-1])
    assert client.device_info().jobs_completed == before + 2


def test_reflection_lists_the_service(shared_agent: AgentProcess) -> None:
    import grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    with grpc.insecure_channel(shared_agent.address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        metadata = (("authorization", f"Bearer {shared_agent.token}"),)
        (reply,) = list(stub.ServerReflectionInfo(iter([request]), timeout=10, metadata=metadata))
    names = {s.name for s in reply.list_services_response.service}
    assert {"lutnas.agent.v1.Agent", "grpc.health.v1.Health"} <= names
