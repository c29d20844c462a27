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


@pytest.mark.parametrize(("options", "threads", "expected"), [
    ({}, 1, "thread_cpu"),
    ({}, 2, "wall"),
    ({"clock": "wall"}, 1, "wall"),
    ({"clock": "thread_cpu"}, 1, "thread_cpu"),
])
def test_clock_is_resolved_and_reported(options: dict, threads: int, expected: str) -> None:
    rt = OnnxRuntime()
    loaded = rt.load(_relu_model(), LoadOptions(format="onnx", threads=threads, options=options))
    m = rt.time(loaded, PLAN)
    assert m.settings["clock"] == expected
    assert len(m.samples_ms) == 3 and all(s >= 0 for s in m.samples_ms)


@pytest.mark.parametrize(("options", "threads", "match"), [
    ({"clock": "cpu"}, 1, "clock='cpu'"),
    ({"clock": "thread_cpu"}, 2, "threads=2"),
])
def test_bad_clock_is_invalid_argument(options: dict, threads: int, match: str) -> None:
    with pytest.raises(JobError, match=match) as info:
        OnnxRuntime().load(_relu_model(), LoadOptions(format="onnx", threads=threads, options=options))
    assert info.value.code == "INVALID_ARGUMENT"


@pytest.mark.parametrize(("options", "threads", "expected"), [
    ({}, 1, "thread_cpu"),
    ({}, 2, "wall"),
    ({"clock": "wall"}, 1, "wall"),
    ({"xnnpack": "0"}, 1, "thread_cpu"),
])
def test_tflite_clock_is_resolved_and_reported(options: dict, threads: int, expected: str) -> None:
    rt = TfliteRuntime()
    loaded = rt.load(tflite_add(32), LoadOptions(format="tflite", threads=threads, options=options))
    m = rt.time(loaded, PLAN)
    assert m.settings["clock"] == expected
    assert len(m.samples_ms) == 3 and all(s >= 0 for s in m.samples_ms)


def test_tflite_thread_cpu_refuses_two_threads() -> None:
    with pytest.raises(JobError, match="threads=2") as info:
        TfliteRuntime().load(tflite_add(32), LoadOptions(format="tflite", threads=2, options={"clock": "thread_cpu"}))
    assert info.value.code == "INVALID_ARGUMENT"
