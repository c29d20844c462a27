"""The CPU runtimes' ``clock`` option: thread CPU time for one thread on the calling thread, wall otherwise."""

from __future__ import annotations

import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("ai_edge_litert")
onnx = pytest.importorskip("onnx")

from onnx import TensorProto, helper

from agent.errors import JobError
from agent.runtimes import LoadOptions
from agent.runtimes.onnxruntime_rt import OnnxRuntime
from agent.runtimes.tflite_rt import TfliteRuntime
from agent.testing import tflite_add
from agent.timing import TimingPlan


def _relu_model() -> bytes:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 16, 16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 16, 16])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


PLAN = TimingPlan(warmup_count=1, warmup_s=0.0, min_reps=3, min_s=0.0, max_reps=3, max_s=1.0, target_rel_ci=0.0)


# (runtime, model bytes, format) for each CPU runtime with a clock option
RUNTIMES = {
    "onnxruntime": (OnnxRuntime, _relu_model, "onnx"),
    "tflite": (TfliteRuntime, lambda: tflite_add(32), "tflite"),
}


@pytest.mark.parametrize(("runtime", "options", "threads", "expected"), [
    ("onnxruntime", {}, 1, "thread_cpu"),
    ("onnxruntime", {}, 2, "wall"),
    ("onnxruntime", {"clock": "wall"}, 1, "wall"),
    ("onnxruntime", {"clock": "thread_cpu"}, 1, "thread_cpu"),
    ("tflite", {}, 1, "thread_cpu"),
    ("tflite", {}, 2, "wall"),
    ("tflite", {"clock": "wall"}, 1, "wall"),
    ("tflite", {"xnnpack": "0"}, 1, "thread_cpu"),
])
def test_clock_is_resolved_and_reported(runtime: str, options: dict, threads: int, expected: str) -> None:
    make, model, fmt = RUNTIMES[runtime]
    rt = make()
    loaded = rt.load(model(), LoadOptions(format=fmt, threads=threads, options=options))
    m = rt.time(loaded, PLAN)
    assert m.settings["clock"] == expected
    assert len(m.samples_ms) == 3 and all(s >= 0 for s in m.samples_ms)


@pytest.mark.parametrize(("runtime", "options", "threads", "match"), [
    ("onnxruntime", {"clock": "cpu"}, 1, "clock='cpu'"),
    ("onnxruntime", {"clock": "thread_cpu"}, 2, "threads=2"),
    ("tflite", {"clock": "cpu"}, 1, "clock='cpu'"),
    ("tflite", {"clock": "thread_cpu"}, 2, "threads=2"),
])
def test_bad_clock_is_invalid_argument(runtime: str, options: dict, threads: int, match: str) -> None:
    make, model, fmt = RUNTIMES[runtime]
    with pytest.raises(JobError, match=match) as info:
        make().load(model(), LoadOptions(format=fmt, threads=threads, options=options))
    assert info.value.code == "INVALID_ARGUMENT"
