"""A token holder times models, nothing more: hostile models, delegates, memory bombs, idle streams.

One real agent (subprocess, loopback, token) with tight limits serves every probe here.
"""

from __future__ import annotations

import io
import json
import os
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import torch
from onnx import TensorProto, helper

from agent.errors import JobError
from agent.jobs import validate_job
from agent.runtimes.onnxruntime_rt import check_self_contained
from agent.runtimes.torch_rt import check_pt2_archive
from agent.server import StreamLimiter, client_address
from agent.testing import AgentProcess, onnx_matmul_relu, start_agent_process
from profiler.client import AgentClient, AgentJobError, make_job

from ._hostile import Payload, hostile_torch_file, payload_is_live

PLAN = {"warmup_count": 1, "warmup_s": 0.0, "min_reps": 3, "min_s": 0.0, "max_reps": 5, "max_s": 0.5}
MAX_WORKER_MB = 2048
IDLE_S = 3.0
PER_CLIENT = 2


@pytest.fixture(scope="module")
def delegate_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("delegates") / "libnot_a_delegate.so"
    path.write_bytes(b"not a shared object")
    return path


@pytest.fixture(scope="module")
def agent(delegate_file) -> Iterator[AgentProcess]:
    proc = start_agent_process(extra_args=[
        "--max-worker-mb", str(MAX_WORKER_MB), "--max-streams", "3", "--max-streams-per-client", str(PER_CLIENT),
        "--stream-idle-s", str(IDLE_S), "--delegate", f"gpu={delegate_file}", "--cpus", "all",
    ])
    yield proc
    proc.stop()


@pytest.fixture
def client(agent) -> Iterator[AgentClient]:
    with AgentClient(agent.address, token=agent.token, timeout_s=30.0) as c:
        yield c


def _job_error(client: AgentClient, model: bytes, runtime: str, **kw) -> AgentJobError:
    with pytest.raises(AgentJobError) as info:
        client.time_model(model, runtime, plan=PLAN, job_timeout_s=120.0, **kw)
    return info.value


# -- ONNX external data ------------------------------------------------------------------------

def _external(name: str, location: str) -> TensorProto:
    tensor = helper.make_tensor(name, TensorProto.FLOAT, [4], [0.0] * 4)
    tensor.ClearField("float_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "16")):
        tensor.external_data.add(key=key, value=value)
    return tensor


def _onnx(nodes, initializers=(), inputs=("x",)) -> bytes:
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(i, TensorProto.FLOAT, [4]) for i in inputs],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=list(initializers),
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def test_onnx_external_data_is_refused_and_the_worker_sees_an_empty_directory(agent, client) -> None:
    secret = agent.cache_dir.parent / "secret.txt"  # the agent's own working directory
    secret.write_text("TOP-SECRET-0123456789")
    model = _onnx([helper.make_node("Add", ["x", "w"], ["y"])], [_external("w", "secret.txt")])
    err = _job_error(client, model, "onnxruntime")
    assert err.code == "INVALID_ARGUMENT" and "external data" in str(err) and "TOP-SECRET" not in str(err)
    worker_cwd = Path(f"/proc/{client.device_info().worker_pid}/cwd")
    if worker_cwd.exists():
        assert worker_cwd.resolve() != secret.parent.resolve() and os.listdir(worker_cwd) == []


def test_external_data_hidden_in_a_subgraph_or_attribute_is_refused() -> None:
    then = helper.make_graph([helper.make_node("Identity", ["w"], ["y"])], "then", [],
                             [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                             initializer=[_external("w", "/etc/hostname")])
    in_if = _onnx([helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=then)], inputs=("c",))
    in_attr = _onnx([helper.make_node("Constant", [], ["y"], value=_external("k", "../../etc/hostname"))], inputs=())
    for model in (in_if, in_attr):
        with pytest.raises(JobError, match="external data"):
            check_self_contained(model)
    check_self_contained(onnx_matmul_relu(4, 4, 4))  # an ordinary model passes


# -- torch.export archives ---------------------------------------------------------------------

class _Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x)


@pytest.fixture(scope="module")
def pt2_bytes() -> bytes:
    buf = io.BytesIO()
    torch.export.save(torch.export.export(_Tiny(), (torch.randn(2, 4),)), buf)
    return buf.getvalue()


def _rewrite(archive: bytes, edit) -> bytes:
    """A copy of a zip archive with ``edit(name, data) -> data`` applied to every member."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(archive)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info.filename, edit(info.filename, src.read(info)))
    return out.getvalue()


def _pickled_weight_archive(pt2: bytes, marker: Path) -> bytes:
    """The archive with its first weight stored as a pickle (``use_pickle``) that runs ``touch marker``."""
    payload = io.BytesIO()
    torch.save(Payload(marker), payload)
    with zipfile.ZipFile(io.BytesIO(pt2)) as zf:
        config_name = next(n for n in zf.namelist() if n.endswith("_weights_config.json"))
        config = json.loads(zf.read(config_name))
    fqn, meta = next(iter(config["config"].items()))
    meta["use_pickle"] = True
    target = meta["path_name"]

    def edit(name: str, data: bytes) -> bytes:
        if name == config_name:
            return json.dumps(config).encode()
        return payload.getvalue() if name.endswith(f"data/weights/{target}") else data

    return _rewrite(pt2, edit)


def test_pt2_with_a_pickled_weight_is_refused(agent, client, pt2_bytes, tmp_path) -> None:
    marker = tmp_path / "ran"
    hostile = _pickled_weight_archive(pt2_bytes, marker)
    with pytest.raises(Exception):  # torch's own loader runs the payload: the probe is live
        torch.export.load(io.BytesIO(hostile))
    assert marker.exists()
    marker.unlink()
    err = _job_error(client, hostile, "torch", format="pt2")
    assert err.code == "INVALID_ARGUMENT" and "pickle" in str(err)
    assert not marker.exists(), "the agent's worker ran the pickled weight"


def test_pt2_with_hostile_sample_inputs_is_refused(pt2_bytes, tmp_path) -> None:
    marker = tmp_path / "ran"
    assert payload_is_live(marker)
    evil = hostile_torch_file(tmp_path / "inputs.pt", marker).read_bytes()
    hostile = _rewrite(pt2_bytes, lambda name, data: evil if "sample_inputs" in name else data)
    with pytest.raises(JobError, match="not plain tensors"):
        check_pt2_archive(torch, hostile)
    assert not marker.exists()
    check_pt2_archive(torch, pt2_bytes)  # an ordinary export passes


# -- delegates and files named by jobs ---------------------------------------------------------

def test_delegates_come_only_from_the_operator_allowlist(client, delegate_file) -> None:
    blob = b"any bytes: the delegate is checked before the model"
    err = _job_error(client, blob, "tflite", options={"delegate": str(delegate_file)})
    assert err.code == "INVALID_ARGUMENT" and "allowlist" in str(err) and "offered: gpu" in str(err)
    err = _job_error(client, blob + b"2", "tflite", options={"delegate": "gpu"})
    assert err.code == "FAILED_PRECONDITION" and "cannot load delegate 'gpu'" in str(err)


@pytest.mark.parametrize("flag", ["flag.external_delegate_path", "flag.profiling_output_csv_file",
                                  "flag.input_layer_value_files", "flag.stable_delegate_settings_file"])
def test_benchmark_model_jobs_cannot_name_files(flag) -> None:
    job = make_job(b"m", runtime="benchmark_model", options={flag: "/tmp/x"})
    with pytest.raises(JobError, match="read or write files"):
        validate_job(job, offered={"benchmark_model"}, known={"benchmark_model"}, max_input_bytes=1 << 20,
                     job_timeout_s=60.0, max_job_timeout_s=600.0)


# -- memory ------------------------------------------------------------------------------------

def _memory_bomb() -> bytes:
    """About 130 bytes of ONNX asking for a 768 x 2^20 float tensor (3 GiB)."""
    shape = helper.make_tensor("s", TensorProto.INT64, [2], [768, 1 << 20])
    one = helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0])
    nodes = [helper.make_node("Constant", [], ["shape"], value=shape),
             helper.make_node("ConstantOfShape", ["shape"], ["y"], value=one)]
    return _onnx(nodes, inputs=())


def test_memory_bomb_is_resource_exhausted_and_the_worker_restarts(agent, client) -> None:
    bomb = _memory_bomb()
    assert len(bomb) < 200
    before = client.device_info().worker_pid
    err = _job_error(client, bomb, "onnxruntime")
    assert err.code == "RESOURCE_EXHAUSTED" and "--max-worker-mb" in str(err), str(err)
    result = client.time_model(onnx_matmul_relu(8, 8, 8), "onnxruntime", plan=PLAN)
    assert result.stats.n >= 3 and agent.alive()
    assert client.device_info().worker_pid not in (0, before)


# -- streams -----------------------------------------------------------------------------------

def test_idle_streams_are_bounded_closed_and_never_block_health(agent, client) -> None:
    quiet = threading.Event()  # set at the end: until then the streams send nothing

    def silent() -> Iterator:
        quiet.wait(60.0)
        return
        yield

    n = 24
    done = threading.Semaphore(0)
    calls = []
    try:
        for _ in range(n):
            call = client.open_stream(silent(), timeout_s=60.0)
            call.add_done_callback(lambda _call: done.release())
            calls.append(call)
        for _ in range(n - PER_CLIENT):  # every stream over the per-client cap is refused at once
            assert done.acquire(timeout=20.0)
        held = [c for c in calls if not c.done()]
        assert len(held) == PER_CLIENT
        assert client.health(timeout_s=5.0) == "SERVING"
        assert client.device_info().jobs_completed >= 0
        for _ in range(PER_CLIENT):  # the held ones are closed once idle
            assert done.acquire(timeout=IDLE_S + 20.0)
    finally:
        quiet.set()
    refused = [c for c in calls if c not in held]
    assert {c.code() for c in refused} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert all("per client" in c.details() for c in refused)
    assert {c.code() for c in held} == {grpc.StatusCode.DEADLINE_EXCEEDED}
    assert all("no job on this stream" in c.details() for c in held)
    result = client.time_model(onnx_matmul_relu(8, 8, 8, seed=1), "onnxruntime", plan=PLAN)  # slots are free again
    assert result.stats.n >= 3


def test_stream_caps_count_each_client_address_and_all_together() -> None:
    limiter = StreamLimiter(max_total=3, max_per_client=2)
    a, b, c = (client_address(p) for p in ("ipv4:10.0.0.5:4242", "ipv6:[::1]:5000", "ipv4:10.0.0.7:1"))
    assert (a, b) == ("ipv4:10.0.0.5", "ipv6:[::1]")
    assert limiter.acquire(a) is None and limiter.acquire(a) is None
    assert "per client" in limiter.acquire(a)
    assert limiter.acquire(b) is None
    assert "already open" in limiter.acquire(c)  # the overall cap, though c has none open
    limiter.release(a)
    assert limiter.acquire(c) is None and limiter.total == 3
