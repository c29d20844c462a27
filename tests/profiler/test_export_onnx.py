"""The direct ONNX writer: opset, IR version and the ops each block kind becomes."""

from __future__ import annotations

import onnx
import pytest

from layers import block_input_shape
from profiler.builders import build_block
from profiler.export_onnx import ONNX_IR_VERSION, ONNX_OPSET, export_onnx, to_onnx_model
from space import Block

_MB = Block.mbconv


def _ops(block: Block) -> list[str]:
    model = to_onnx_model(build_block(block), block_input_shape(block))
    return [n.op_type for n in model.graph.node]


def test_model_is_valid_with_pinned_opset_and_ir_version() -> None:
    block = _MB(14, 40, 40, 160, kernel=5, stride=1, skip=True, se=True, act="h_swish")
    model = onnx.load_from_string(export_onnx(build_block(block), block_input_shape(block)))
    onnx.checker.check_model(model, full_check=True)
    assert model.ir_version == ONNX_IR_VERSION
    assert [(o.domain, o.version) for o in model.opset_import] == [("", ONNX_OPSET)]
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == [1, 40, 14, 14]
    assert [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim] == [1, 40, 14, 14]


def test_mbconv_ops() -> None:
    se = _MB(14, 40, 40, 160, kernel=5, stride=1, skip=True, se=True, act="h_swish")
    assert _ops(se) == ["Conv", "HardSwish", "Conv", "HardSwish", "GlobalAveragePool", "Conv", "Relu", "Conv",
                        "HardSigmoid", "Mul", "Conv", "Add"]
    first = _MB(32, 16, 16, 16, kernel=3, stride=1, skip=True, se=False, act="relu")
    assert _ops(first) == ["Conv", "Relu", "Conv", "Add"]


def test_depthwise_conv_attributes_and_hard_sigmoid() -> None:
    block = _MB(28, 24, 40, 144, kernel=7, stride=2, skip=False, se=True, act="relu")
    model = to_onnx_model(build_block(block), block_input_shape(block))
    dw = [n for n in model.graph.node if n.op_type == "Conv"][1]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in dw.attribute}
    assert attrs == {"kernel_shape": [7, 7], "strides": [2, 2], "pads": [3, 3, 3, 3], "group": 144}
    hsig = next(n for n in model.graph.node if n.op_type == "HardSigmoid")
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in hsig.attribute}
    assert attrs["alpha"] == pytest.approx(1 / 6) and attrs["beta"] == pytest.approx(0.5)


def test_head_ops() -> None:
    assert _ops(Block.first_conv(224, 16)) == ["Conv", "HardSwish"]
    assert _ops(Block.fixed("final_expand", 7, 160, 7, 960)) == ["Conv", "HardSwish"]
    assert _ops(Block.fixed("avgpool", 7, 960, 1, 960)) == ["GlobalAveragePool"]
    assert _ops(Block.fixed("feature_mix", 1, 960, 1, 1280)) == ["Conv", "HardSwish"]
    assert _ops(Block.fixed("classifier", 1, 1280, 1, 1000)) == ["Flatten", "Gemm"]
    mix = to_onnx_model(build_block(Block.fixed("feature_mix", 1, 960, 1, 1280)), (1, 960, 1, 1))
    assert len(mix.graph.node[0].input) == 2  # no bias: OFA's feature mix conv has none
