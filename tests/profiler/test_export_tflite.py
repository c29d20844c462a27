"""The direct TFLite writer: NHWC graphs without transposes, exact OFA padding, aligned weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from layers import block_input_shape
from profiler.builders import build_block
from space import Block

schema = pytest.importorskip("ai_edge_litert.schema_py_generated")
interpreter_mod = pytest.importorskip("ai_edge_litert.interpreter")

from profiler.export_tflite import BUFFER_ALIGN_BYTES, export_tflite, same_padding_matches  # noqa: E402

_OP_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
_MB = Block.mbconv


def _ops(data: bytes) -> list[str]:
    model = schema.Model.GetRootAs(data, 0)
    codes = [max(model.OperatorCodes(i).BuiltinCode(), model.OperatorCodes(i).DeprecatedBuiltinCode())
             for i in range(model.OperatorCodesLength())]
    sub = model.Subgraphs(0)
    return [_OP_NAMES[codes[sub.Operators(i).OpcodeIndex()]] for i in range(sub.OperatorsLength())]


def _export(block: Block) -> bytes:
    return export_tflite(build_block(block), block_input_shape(block))


def _run(data: bytes, x_nhwc: np.ndarray) -> np.ndarray:
    it = interpreter_mod.Interpreter(model_content=data, num_threads=1)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x_nhwc)
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"])


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "matches"),
    [(28, 3, 1, True), (28, 7, 1, True), (28, 3, 2, False), (28, 5, 2, False), (27, 3, 2, True),
     (27, 7, 2, True), (7, 1, 1, True), (1, 1, 1, True), (64, 3, 2, False), (65, 3, 2, True)],
)
def test_same_padding_matches_symmetric_padding_exactly_when_expected(size, kernel, stride, matches) -> None:
    assert same_padding_matches(size, kernel, stride) is matches


def test_block_graph_is_nhwc_without_transposes() -> None:
    block = _MB(28, 40, 40, 240, kernel=5, stride=1, skip=True, se=True, act="relu")
    data = _export(block)
    it = interpreter_mod.Interpreter(model_content=data)
    assert list(it.get_input_details()[0]["shape"]) == [1, 28, 28, 40]
    assert list(it.get_output_details()[0]["shape"]) == [1, 28, 28, 40]
    assert _ops(data) == ["CONV_2D", "DEPTHWISE_CONV_2D", "MEAN", "CONV_2D", "CONV_2D", "MUL", "MUL", "CONV_2D", "ADD"]


def test_h_swish_is_a_hard_swish_op() -> None:
    block = _MB(14, 80, 80, 320, kernel=3, stride=1, skip=True, se=False, act="h_swish")
    assert _ops(_export(block)) == ["CONV_2D", "HARD_SWISH", "DEPTHWISE_CONV_2D", "HARD_SWISH", "CONV_2D", "ADD"]


def test_pad_op_only_where_same_padding_differs() -> None:
    even = _MB(28, 24, 40, 144, kernel=5, stride=2, skip=False, se=False, act="relu")
    odd = _MB(27, 24, 40, 144, kernel=5, stride=2, skip=False, se=False, act="relu")
    assert _ops(_export(even)) == ["CONV_2D", "PAD", "DEPTHWISE_CONV_2D", "CONV_2D"]
    assert _ops(_export(odd)) == ["CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D"]
    assert _ops(_export(Block.first_conv(224, 16))) == ["PAD", "CONV_2D", "HARD_SWISH"]
    assert _ops(_export(Block.first_conv(225, 16))) == ["CONV_2D", "HARD_SWISH"]


def test_head_ops() -> None:
    assert _ops(_export(Block.fixed("avgpool", 7, 960, 1, 960))) == ["MEAN"]
    assert _ops(_export(Block.fixed("feature_mix", 1, 960, 1, 1280))) == ["CONV_2D", "HARD_SWISH"]
    assert _ops(_export(Block.fixed("classifier", 1, 1280, 1, 1000))) == ["FULLY_CONNECTED"]


def test_weight_buffers_are_aligned() -> None:
    data = _export(_MB(14, 40, 40, 160, kernel=5, stride=1, skip=True, se=True, act="relu"))
    buf = np.frombuffer(data, dtype=np.uint8)
    base = buf.__array_interface__["data"][0]
    model = schema.Model.GetRootAs(buf, 0)
    sizes = 0
    for i in range(model.BuffersLength()):
        b = model.Buffers(i)
        if b.DataLength():
            arr = b.DataAsNumpy()
            assert (arr.__array_interface__["data"][0] - base) % BUFFER_ALIGN_BYTES == 0
            sizes += arr.size
    assert sizes > 0


def test_matches_litert_torch_conversion() -> None:
    litert_torch = pytest.importorskip("litert_torch")
    block = _MB(14, 40, 40, 240, kernel=5, stride=1, skip=True, se=True, act="relu")
    module = build_block(block)
    x = np.random.default_rng(0).standard_normal(block_input_shape(block)).astype(np.float32)
    nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    wrapped = litert_torch.to_channel_last_io(module, args=[0], outputs=[0])
    reference = litert_torch.convert(wrapped.eval(), (torch.from_numpy(nhwc),))
    ref_out = _run(bytes(reference.model_content()), nhwc)
    ours = _run(export_tflite(module, block_input_shape(block)), nhwc)
    np.testing.assert_allclose(ours, ref_out, atol=1e-4, rtol=1e-4)
