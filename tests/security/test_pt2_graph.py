"""A ``.pt2`` graph is a program: only pure tensor operators run on the agent, and job errors stay short.

The hostile archives here are what an attacker would send: an ordinary ``torch.export`` archive whose
graph JSON is rewritten to call ``aten.from_file`` (which maps any file, creating it when ``shared``).
One real agent (subprocess, loopback, token) serves the job-level probes.
"""

from __future__ import annotations

import copy
import io
import json
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from onnx import TensorProto, helper

from agent.errors import MAX_ERROR_CHARS, JobError
from agent.runtimes._pt2_ops import ALLOWED_TARGETS, CONTROL_FLOW_OPS, CORE_ATEN_OPS, GRAPH_PLUMBING, PROJECT_OPS
from agent.runtimes.torch_rt import check_pt2_archive
from agent.testing import AgentProcess, start_agent_process
from layers import block_input_shape
from profiler.builders import build_block, build_subnet
from profiler.client import AgentClient, make_job
from space import Block, get_space

PLAN = {"warmup_count": 1, "warmup_s": 0.0, "min_reps": 3, "min_s": 0.0, "max_reps": 5, "max_s": 0.5}
_FLOAT32 = 7  # torch.export's serialized ScalarType of float32
_INT64 = 5
_POSITIONAL, _KEYWORD = 1, 2


@pytest.fixture(scope="module")
def agent() -> Iterator[AgentProcess]:
    proc = start_agent_process(extra_args=["--runtimes", "onnxruntime,torch", "--cpus", "all"])
    yield proc
    proc.stop()


@pytest.fixture
def client(agent) -> Iterator[AgentClient]:
    with AgentClient(agent.address, token=agent.token, timeout_s=60.0) as c:
        yield c


def _outcome(client: AgentClient, model: bytes, runtime: str = "torch", **kw):
    job = make_job(model, runtime=runtime, plan=PLAN, job_timeout_s=120.0, **kw)
    (result,) = client.benchmark([job], timeout_s=180.0)
    return result


# -- building hostile archives ---------------------------------------------------------------------

def _export(module: torch.nn.Module, *inputs: torch.Tensor) -> bytes:
    buf = io.BytesIO()
    torch.export.save(torch.export.export(module.eval(), inputs), buf)
    return buf.getvalue()


def _edit_program(archive: bytes, edit: Callable[[dict], None]) -> bytes:
    """A copy of ``archive`` with ``edit`` applied to its graph JSON, every other member as it was."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(archive)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("models/model.json"):
                doc = json.loads(data)
                edit(doc)
                data = json.dumps(doc).encode()
            dst.writestr(info.filename, data)
    return out.getvalue()


def _node(target: str, inputs: list[tuple[str, dict, int]], out: str) -> dict:
    return {
        "target": target,
        "inputs": [{"name": name, "arg": arg, "kind": kind} for name, arg, kind in inputs],
        "outputs": [{"as_tensor": {"name": out}}],
        "metadata": {},
        "is_hop_single_tensor_return": None,
        "name": out,
    }


def _from_file(path: Path, shared: bool, size: int, dtype: int, out: str = "ff") -> dict:
    return _node("torch.ops.aten.from_file.default", [
        ("filename", {"as_string": str(path)}, _POSITIONAL), ("shared", {"as_bool": shared}, _POSITIONAL),
        ("size", {"as_int": size}, _POSITIONAL), ("dtype", {"as_scalar_type": dtype}, _KEYWORD),
    ], out)


def _meta(dtype: int, size: int) -> dict:
    return {"dtype": dtype, "sizes": [{"as_int": size}], "requires_grad": False, "device": {"type": "cpu", "index": None},
            "strides": [{"as_int": 1}], "storage_offset": {"as_int": 0}, "layout": 7}


class _Sink(torch.nn.Module):
    """``x + b``: a buffer an attacker copies into a file."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("b", torch.tensor([1.5, 2.5, 3.5, 4.5]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.b


@pytest.fixture(scope="module")
def sink() -> bytes:
    return _export(_Sink(), torch.zeros(4))


def _writer(sink: bytes, target: Path) -> bytes:
    """``from_file(target, shared=True)`` (creates and maps the file), ``copy_`` of the buffer into it."""

    def edit(doc: dict) -> None:
        graph = doc["graph_module"]["graph"]
        graph["nodes"][:0] = [
            _from_file(target, shared=True, size=4, dtype=_FLOAT32),
            _node("torch.ops.aten.copy_.default", [
                ("self", {"as_tensor": {"name": "ff"}}, _POSITIONAL), ("src", {"as_tensor": {"name": "b_b"}}, _POSITIONAL),
            ], "cp"),
        ]
        graph["tensor_values"].update(ff=_meta(_FLOAT32, 4), cp=_meta(_FLOAT32, 4))
        graph["nodes"][-1]["inputs"][1]["arg"] = {"as_tensor": {"name": "cp"}}  # x + cp

    return _edit_program(sink, edit)


def _reader(sink: bytes, secret: Path) -> bytes:
    """``from_file(secret)`` as one int64, used as an index into a 4-element tensor: the error quotes it."""

    def edit(doc: dict) -> None:
        graph = doc["graph_module"]["graph"]
        graph["nodes"][:0] = [
            _from_file(secret, shared=False, size=1, dtype=_INT64),
            _node("torch.ops.aten.index.Tensor", [
                ("self", {"as_tensor": {"name": "b_b"}}, _POSITIONAL),
                ("indices", {"as_optional_tensors": [{"as_tensor": {"name": "ff"}}]}, _POSITIONAL),
            ], "leak"),
        ]
        graph["tensor_values"].update(ff=_meta(_INT64, 1), leak=_meta(_FLOAT32, 1))
        graph["nodes"][-1]["inputs"][1]["arg"] = {"as_tensor": {"name": "leak"}}

    return _edit_program(sink, edit)


def _with_target(archive: bytes, target: str) -> bytes:
    """The archive with its last node's operator replaced by ``target``."""

    def edit(doc: dict) -> None:
        doc["graph_module"]["graph"]["nodes"][-1]["target"] = target

    return _edit_program(archive, edit)


# -- the attacks of the report, through a real agent ----------------------------------------------

def test_a_graph_that_writes_a_file_is_refused(client, sink, tmp_path) -> None:
    target = tmp_path / "written"
    hostile = _writer(sink, target)
    result = _outcome(client, hostile, format="pt2")
    assert result.WhichOneof("outcome") == "error", "the hostile graph ran"
    assert result.error.code == "INVALID_ARGUMENT"
    assert "aten.from_file" in result.error.message
    assert not target.exists()


def test_a_graph_that_reads_a_file_is_refused(client, sink, tmp_path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"SECRETAB")
    leaked = str(int.from_bytes(b"SECRETAB", "little"))
    result = _outcome(client, _reader(sink, secret), format="pt2")
    assert result.error.code == "INVALID_ARGUMENT"
    assert "aten.from_file" in result.error.message and leaked not in result.error.message


class _Branchy(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cond(x.sum(0) > 0, lambda t: t.cos(), lambda t: t.sin(), (x,))  # sum over a dim: core ATen


def _hidden_in_cond(archive: bytes, target_file: Path) -> bytes:
    """``from_file`` inside the true branch of a ``torch.cond``, nowhere in the top graph."""

    def edit(doc: dict) -> None:
        (cond,) = [n for n in doc["graph_module"]["graph"]["nodes"] if n["target"] == "torch.ops.higher_order.cond"]
        body = cond["inputs"][1]["arg"]["as_graph"]["graph"]
        body["nodes"].insert(0, _from_file(target_file, shared=True, size=4, dtype=_FLOAT32))
        body["tensor_values"]["ff"] = _meta(_FLOAT32, 4)

    return _edit_program(archive, edit)


def test_an_operator_hidden_in_a_cond_branch_is_refused(client, tmp_path) -> None:
    plain = _export(_Branchy(), torch.ones(4))
    assert _outcome(client, plain, format="pt2").WhichOneof("outcome") == "stats"  # control flow itself is allowed
    target = tmp_path / "from-branch"
    result = _outcome(client, _hidden_in_cond(plain, target), format="pt2")
    assert result.error.code == "INVALID_ARGUMENT" and "aten.from_file" in result.error.message
    assert not target.exists()


# -- what the static check refuses, without loading anything ----------------------------------------

@pytest.mark.parametrize("target", [
    "torch.ops.aten.copy_.default",               # in place, into a buffer or an input
    "torch.ops.aten.set_.source_Tensor",          # rebinds a tensor's storage
    "torch.ops.aten._local_scalar_dense.default",  # an internal
    "torch.ops.aten.empty.memory_format",         # uninitialized memory
    "torch.ops.aten.rand.default",                # random
    "torch.ops.aten.index.Tensor",                # the reader's oracle
    "torch.ops.aten.from_file",                   # the packet, not an overload
    "torch.save",
    "builtins.exec",
    "torch.ops.higher_order.auto_functionalized",
    "#custom:op",
])
def test_operators_off_the_allowlist_are_refused(sink, target) -> None:
    with pytest.raises(JobError, match="allowlist") as info:
        check_pt2_archive(torch, _with_target(sink, target))
    assert info.value.code == "INVALID_ARGUMENT"
    assert target.removeprefix("torch.ops.") in info.value.message


def test_an_operator_passed_as_an_argument_is_checked(sink) -> None:
    def edit(doc: dict) -> None:
        doc["graph_module"]["graph"]["nodes"][-1]["inputs"].append(
            {"name": "op", "arg": {"as_operator": "torch.ops.aten.from_file.default"}, "kind": _KEYWORD})

    with pytest.raises(JobError, match="aten.from_file"):
        check_pt2_archive(torch, _edit_program(sink, edit))


def test_python_source_in_the_archive_is_refused(sink) -> None:
    # torch.export.load exec()s guard code and sympify()s symbolic expressions: both are Python source.
    def guards(doc: dict) -> None:
        doc["guards_code"] = ["__import__('os').system('true') == 0"]

    def symbolic(doc: dict) -> None:
        doc["graph_module"]["graph"]["sym_int_values"]["s0"] = {"as_expr": {"expr_str": "__import__('os').getpid()"}}

    with pytest.raises(JobError, match="guard code"):
        check_pt2_archive(torch, _edit_program(sink, guards))
    with pytest.raises(JobError, match="symbolic"):
        check_pt2_archive(torch, _edit_program(sink, symbolic))


def _add_member(archive: bytes, name: str, data: bytes, compress: int = zipfile.ZIP_STORED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(archive)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
        dst.writestr(name, data, compress_type=compress)
    return out.getvalue()


def test_members_outside_a_plain_export_are_refused(sink) -> None:
    root = zipfile.ZipFile(io.BytesIO(sink)).namelist()[0].split("/")[0]
    for name in (f"{root}/data/aotinductor/model/model.so", "serialized_exported_program.json", f"{root}/models/x.py"):
        with pytest.raises(JobError, match="not part of a plain torch.export archive"):
            check_pt2_archive(torch, _add_member(sink, name, b"\x7fELF"))


def test_member_sizes_are_checked_before_anything_is_inflated(sink) -> None:
    root = zipfile.ZipFile(io.BytesIO(sink)).namelist()[0].split("/")[0]
    bomb = _add_member(sink, f"{root}/models/bomb.json", b" " * (80 << 20), zipfile.ZIP_DEFLATED)
    assert len(bomb) < (1 << 20)
    with pytest.raises(JobError, match="inflates to"):
        check_pt2_archive(torch, bomb)


# -- what the project itself sends still runs ---------------------------------------------------------

KIND_BLOCKS = {
    "first_conv": Block.first_conv(64, 16),
    "mbconv": Block.mbconv(32, 16, 16, 16, kernel=3, stride=1, skip=True, se=False, act="relu"),
    "mbconv_se": Block.mbconv(14, 40, 40, 160, kernel=5, stride=1, skip=True, se=True, act="relu"),
    "mbconv_hswish_s2": Block.mbconv(14, 40, 80, 240, kernel=7, stride=2, skip=False, se=False, act="h_swish"),
    "mbconv_se_hswish": Block.mbconv(14, 40, 40, 160, kernel=3, stride=1, skip=True, se=True, act="h_swish"),
    "final_expand": Block.fixed("final_expand", 4, 160, 4, 960),
    "avgpool": Block.fixed("avgpool", 4, 960, 1, 960),
    "feature_mix": Block.fixed("feature_mix", 1, 960, 1, 1280),
    "classifier": Block.fixed("classifier", 1, 1280, 1, 1000),
}


@pytest.mark.parametrize("kind", sorted(KIND_BLOCKS))
def test_every_block_kind_exported_as_pt2_times(client, kind) -> None:
    block = KIND_BLOCKS[kind]
    archive = _export(build_block(block), torch.randn(block_input_shape(block)))
    check_pt2_archive(torch, archive)
    result = _outcome(client, archive, format="pt2")
    assert result.WhichOneof("outcome") == "stats", result.error.message
    assert result.stats.n >= 3


def test_a_whole_subnet_exported_as_pt2_times(client) -> None:
    arch = {"ks": [3, 5, 7, 3] * 5, "e": [3, 4, 6, 4] * 5, "d": [2, 3, 4, 3, 4], "r": 128}
    net = build_subnet(get_space("ofa-mbv3-w1.2"), arch)
    result = _outcome(client, _export(net, torch.randn(net.input_shape)), format="pt2")
    assert result.WhichOneof("outcome") == "stats", result.error.message


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_the_profilers_own_pt2_exports_pass(client, precision) -> None:
    pytest.importorskip("profiler.export_pt2")
    from profiler.export import export_block, export_subnet

    for block in KIND_BLOCKS.values():
        check_pt2_archive(torch, export_block(block, "pt2", precision=precision))  # raises naming what is refused
    arch = {"ks": [3, 5, 7, 3] * 5, "e": [3, 4, 6, 4] * 5, "d": [2, 3, 4, 3, 4], "r": 128}
    result = _outcome(client, export_subnet(get_space("ofa-mbv3-w1.2"), arch, "pt2", precision=precision), format="pt2")
    assert result.WhichOneof("outcome") == "stats", result.error.message


def _safe_core_ops() -> set[str]:
    """torch's core ATen overloads minus anything that mutates, allocates uninitialized, draws random numbers,
    has a data-dependent output or is an internal (``_``-prefixed) operator."""
    unsafe_tags = {torch.Tag.nondeterministic_seeded, torch.Tag.dynamic_output_shape, torch.Tag.data_dependent_output,
                   torch.Tag.inplace_view}
    safe = set()
    for packet_name in dir(torch.ops.aten):
        packet = getattr(torch.ops.aten, packet_name, None)
        if not isinstance(packet, torch._ops.OpOverloadPacket):
            continue
        for overload in packet.overloads():
            op = getattr(packet, overload)
            if torch.Tag.core in op.tags and _pure(op) and not unsafe_tags & set(op.tags):
                safe.add(f"torch.ops.aten.{packet_name}.{overload}")
    return safe - {"torch.ops.aten.empty.memory_format", "torch.ops.aten.empty_strided.default",
                   "torch.ops.aten.as_strided.default"}


def _pure(op) -> bool:
    schema = op._schema
    name = schema.name.split("::")[1]
    writes = any(a.alias_info is not None and a.alias_info.is_write for a in schema.arguments)
    storage = any("Storage" in str(a.type) for a in schema.arguments)
    return not (name.startswith("_") or name.endswith("_") or writes or storage or "out" in schema.overload_name)


def test_the_allowlist_is_safe_core_aten_plus_what_the_project_needs() -> None:
    core = _safe_core_ops()
    assert CORE_ATEN_OPS <= core, f"not safe core ATen in torch {torch.__version__}: {sorted(CORE_ATEN_OPS - core)}"
    for name in PROJECT_OPS:
        packet, overload = name.removeprefix("torch.ops.aten.").split(".")
        assert _pure(getattr(getattr(torch.ops.aten, packet), overload)), name
    assert CONTROL_FLOW_OPS <= {"torch.ops.higher_order.cond", "torch.ops.higher_order.map_impl",
                                "torch.ops.higher_order.while_loop"}
    assert ALLOWED_TARGETS == CORE_ATEN_OPS | PROJECT_OPS | CONTROL_FLOW_OPS | GRAPH_PLUMBING
    for name in ("from_file.default", "copy_.default", "set_.source_Tensor", "_local_scalar_dense.default"):
        assert f"torch.ops.aten.{name}" not in ALLOWED_TARGETS


# -- job errors stay short --------------------------------------------------------------------------

def _onnx_reshape_named(name: str) -> bytes:
    """A Reshape to a shape its input cannot take, so the run fails with an error that quotes ``name``."""
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [3, 3])
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"], name=name)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=[shape],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def test_a_long_runtime_error_comes_back_bounded(client) -> None:
    name = "A" * 20_000 + "TAIL"
    result = _outcome(client, _onnx_reshape_named(name), runtime="onnxruntime")
    message = result.error.message
    assert result.error.code == "INVALID_ARGUMENT"
    assert "AAAA" in message and "TAIL" not in message  # the runtime's text, cut
    assert len(message) <= MAX_ERROR_CHARS and "[cut:" in message
