"""onnxruntime: CPU execution provider by default; CUDA/TensorRT when the installed build has them.

Options: ``providers`` (comma-separated, e.g. ``CUDAExecutionProvider,CPUExecutionProvider``),
``graph_optimization`` (``all`` default, ``basic``, ``extended``, ``disable``), ``clock`` (below).

``clock`` picks what one run's latency is read from (:mod:`agent.runtimes._clock`): ``auto`` (default)
reads the calling thread's CPU time with one intra-op thread on the CPU execution provider, where
onnxruntime runs every kernel on the calling thread, else the wall clock.

The clock in effect is reported in the result's options (``clock``), so LUT rows record it.

Models must be self-contained: before a session is made, the model is parsed with the slice of
ONNX's protobuf schema in :mod:`agent.runtimes._onnx_refs`, and any tensor stored as external
data (initializers, attribute tensors, sparse tensors, in subgraphs and functions too) is refused. onnxruntime would otherwise read the named
file, relative to the worker's directory or absolute, and echo its bytes in error messages.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from agent.errors import JobError, bad_model_code, one_line, out_of_memory
from agent.runtimes import LoadOptions, RuntimeProbe
from agent.runtimes._clock import clock_ns, resolve_clock
from agent.runtimes._inputs import match_specs, random_tensor, resolve_shape
from agent.runtimes._probe import installed_version
from agent.timing import Measurement, TimingPlan, measure

__all__ = ["OnnxRuntime", "check_self_contained"]

# onnxruntime type strings -> numpy dtypes, for inputs the job leaves to the model.
_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(int16)": "int16",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(bool)": "bool",
}
_OPT_LEVELS = ("disable", "basic", "extended", "all")


@dataclass
class _Loaded:
    session: Any
    feeds: dict[str, np.ndarray]
    settings: dict[str, str]
    clock: str = "wall"  # wall | thread_cpu


class OnnxRuntime:
    """Times ONNX models with onnxruntime ``InferenceSession.run``."""

    name = "onnxruntime"

    def probe(self) -> RuntimeProbe:
        version = installed_version("onnxruntime", "onnxruntime", "onnxruntime-gpu")
        if version is None:
            return RuntimeProbe(False, detail="pip install onnxruntime")
        return RuntimeProbe(True, version=version)

    def load(self, model_bytes: bytes, options: LoadOptions) -> _Loaded:
        try:
            import onnxruntime as ort
        except ImportError as err:
            if out_of_memory(err):  # its shared library did not fit under the worker's cap
                raise JobError("RESOURCE_EXHAUSTED", f"importing onnxruntime ran out of memory: {one_line(err, 200)}") from err
            raise JobError("FAILED_PRECONDITION", f"onnxruntime is not installed here (pip install onnxruntime): {err}") from err
        opts = dict(options.options)
        level_name = opts.pop("graph_optimization", "all")
        if level_name not in _OPT_LEVELS:
            raise JobError("INVALID_ARGUMENT", f"option graph_optimization={level_name!r}; known: {', '.join(_OPT_LEVELS)}")
        providers = [p for p in opts.pop("providers", "CPUExecutionProvider").split(",") if p]
        clock = opts.pop("clock", "auto")
        if opts:
            raise JobError("INVALID_ARGUMENT",
                           f"unknown onnxruntime option(s) {sorted(opts)}; known: providers, graph_optimization, clock")
        cpu_only = all(p == "CPUExecutionProvider" for p in providers)
        clock = resolve_clock(clock, options.threads == 1 and cpu_only,
                              f"threads={options.threads}, providers={','.join(providers)}")
        available = ort.get_available_providers()
        missing = [p for p in providers if p not in available]
        if missing:
            raise JobError("FAILED_PRECONDITION", f"execution provider(s) {missing} not in this onnxruntime build; available: {available}")
        so = ort.SessionOptions()
        so.intra_op_num_threads = options.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[level_name]
        so.log_severity_level = 3  # errors reach the host as job errors; keep the agent's log quiet
        check_self_contained(model_bytes)
        try:
            session = ort.InferenceSession(model_bytes, sess_options=so, providers=providers)
        except Exception as err:  # onnxruntime raises several pybind types for a bad model; all mean the same here
            raise JobError(bad_model_code(err), f"onnxruntime cannot load the model: {one_line(err, 200)}") from err
        model_inputs = session.get_inputs()
        specs = match_specs([i.name for i in model_inputs], options.inputs)
        rng = np.random.default_rng(0)
        feeds: dict[str, np.ndarray] = {}
        budget = options.max_input_bytes
        for meta, spec in zip(model_inputs, specs, strict=True):
            shape = resolve_shape(meta.name, meta.shape, spec)
            dtype = spec.dtype if spec is not None and spec.dtype else _ORT_TYPES.get(meta.type)
            if dtype is None:
                raise JobError("INVALID_ARGUMENT", f"input {meta.name!r} has type {meta.type}, which the agent cannot fill")
            feeds[meta.name] = random_tensor(shape, dtype, rng, budget)
            budget -= feeds[meta.name].nbytes
        try:
            session.run(None, feeds)  # one run here so shape and dtype errors surface as bad input
        except Exception as err:  # same pybind error family as above
            shapes = {k: list(v.shape) for k, v in feeds.items()}
            raise JobError(bad_model_code(err), f"onnxruntime rejected inputs {shapes}: {one_line(err, 200)}") from err
        settings = {"providers": ",".join(session.get_providers()), "graph_optimization": level_name, "clock": clock}
        return _Loaded(session=session, feeds=feeds, settings=settings, clock=clock)

    def time(self, loaded: _Loaded, plan: TimingPlan) -> Measurement:
        run = loaded.session.run
        feeds = loaded.feeds
        clock = clock_ns(loaded.clock)

        def run_once() -> float:
            t0 = clock()
            run(None, feeds)
            return (clock() - t0) / 1e6

        m = measure(run_once, plan)
        m.settings = dict(loaded.settings)
        return m


def check_self_contained(model_bytes: bytes) -> None:
    """Refuse an ONNX model that stores any tensor outside itself (external data).

    Raises:
        JobError: INVALID_ARGUMENT for external data or bytes that are not an ONNX model.
    """
    from google.protobuf.message import DecodeError

    from agent.runtimes._onnx_refs import EXTERNAL, ModelRefs

    try:
        model = ModelRefs.FromString(model_bytes)
    except DecodeError as err:
        if out_of_memory(err):  # a large model parsed under the worker's memory cap
            raise JobError("RESOURCE_EXHAUSTED", f"reading the model ran out of memory: {one_line(err, 200)}") from err
        raise JobError("INVALID_ARGUMENT", f"not an ONNX model: {one_line(err, 200)}") from err
    nodes = [n for f in model.functions for n in f.node]
    for tensor in (*_graph_tensors(model.graph), *(t for n in nodes for t in _node_tensors(n))):
        if tensor.data_location == EXTERNAL or len(tensor.external_data):
            where = next((e.value for e in tensor.external_data if e.key == "location"), "?")
            raise JobError(
                "INVALID_ARGUMENT",
                f"tensor {tensor.name[:64]!r} points at external data ({where[:64]!r}); models must be self-contained",
            )


def _graph_tensors(graph: Any) -> Iterator[Any]:
    """Every tensor a graph holds: initializers, sparse initializers and its nodes' attribute tensors."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield from (sparse.values, sparse.indices)
    for node in graph.node:
        yield from _node_tensors(node)


def _node_tensors(node: Any) -> Iterator[Any]:
    """Tensors in a node's attributes, subgraphs (If, Loop, Scan) included."""
    for attr in node.attribute:
        if attr.HasField("t"):
            yield attr.t
        yield from attr.tensors
        for sparse in (*([attr.sparse_tensor] if attr.HasField("sparse_tensor") else []), *attr.sparse_tensors):
            yield from (sparse.values, sparse.indices)
        if attr.HasField("g"):
            yield from _graph_tensors(attr.g)
        for graph in attr.graphs:
            yield from _graph_tensors(graph)
