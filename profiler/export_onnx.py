"""Direct ONNX export of block modules and whole subnets, built node by node with ``onnx.helper``.

The graph is written from the BN-folded weights of the modules of :mod:`layers`, so an export takes
milliseconds (torch's exporter takes hundreds). Layout NCHW, batch 1, float32, opset :data:`ONNX_OPSET`.

Ops used: Conv (``group`` for depthwise, symmetric ``pads`` of ``k // 2``), Relu, Clip (ReLU6), HardSwish,
HardSigmoid (``alpha=1/6, beta=0.5``, i.e. relu6(x + 3) / 6), GlobalAveragePool, MaxPool (symmetric ``pads``),
AveragePool (``ceil_mode``, a bottleneck's downsample shortcut), Mul, Add, Flatten, Gemm.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from layers import (
    Bottleneck,
    Classifier,
    ConvBNAct,
    GlobalAvgPool,
    MaxPool,
    MBConv,
    ResidualBlock,
    SqueezeExcite,
    SubnetModel,
    fold_conv_bn,
    module_output_shape,
)

__all__ = ["ONNX_EXPORTER_VERSION", "ONNX_IR_VERSION", "ONNX_OPSET", "export_onnx", "to_onnx_model"]

logger = logging.getLogger(__name__)

#: Bumped whenever the bytes this module writes for the same module change.
ONNX_EXPORTER_VERSION = "onnx-direct-1"
#: Opset 17: HardSwish needs 14; 17 loads in onnxruntime 1.13 and later.
ONNX_OPSET = 17
#: IR version matching opset 17, so older runtimes on devices accept the model.
ONNX_IR_VERSION = 8

INPUT_NAME = "input"
OUTPUT_NAME = "output"


class _Graph:
    """Accumulates nodes and initializers; every emitter returns the name of its output tensor."""

    def __init__(self, reserved: Sequence[str] = ()) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._names: set[str] = set(reserved)

    def _unique(self, hint: str) -> str:
        name, i = hint, 1
        while name in self._names:
            name = f"{hint}_{i}"
            i += 1
        self._names.add(name)
        return name

    def const(self, hint: str, value: np.ndarray) -> str:
        name = self._unique(hint)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value, dtype=np.float32), name))
        return name

    def op(self, op_type: str, inputs: Sequence[str], hint: str, **attrs: object) -> str:
        out = self._unique(hint)
        node_name = self._unique(f"{hint}/{op_type}")
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=node_name, **attrs))
        return out


def _act(g: _Graph, x: str, act: str, hint: str) -> str:
    if act == "relu":
        return g.op("Relu", [x], f"{hint}.relu")
    if act == "relu6":
        bounds = [g.const(f"{hint}.min", np.array(0.0)), g.const(f"{hint}.max", np.array(6.0))]
        return g.op("Clip", [x, *bounds], f"{hint}.relu6")
    if act == "h_swish":
        return g.op("HardSwish", [x], f"{hint}.hswish")
    if act == "none":
        return x
    raise ValueError(f"unknown activation {act!r}; known: relu, relu6, h_swish, none")


def _conv(g: _Graph, x: str, m: ConvBNAct, hint: str) -> str:
    w, b = m.folded()
    inputs = [x, g.const(f"{hint}.weight", w)]
    if b is not None:
        inputs.append(g.const(f"{hint}.bias", b))
    p = m.kernel // 2
    y = g.op(
        "Conv",
        inputs,
        f"{hint}.conv",
        kernel_shape=[m.kernel, m.kernel],
        strides=[m.stride, m.stride],
        pads=[p, p, p, p],
        group=m.groups,
    )
    return _act(g, y, m.act_name, hint)


def _conv1x1_bias(g: _Graph, x: str, conv: nn.Conv2d, hint: str) -> str:
    weight = g.const(f"{hint}.weight", conv.weight.detach().numpy())
    bias = g.const(f"{hint}.bias", conv.bias.detach().numpy())
    return g.op("Conv", [x, weight, bias], hint, kernel_shape=[1, 1])


def _se(g: _Graph, x: str, m: SqueezeExcite, hint: str) -> str:
    s = g.op("GlobalAveragePool", [x], f"{hint}.pool")
    s = g.op("Relu", [_conv1x1_bias(g, s, m.fc.reduce, f"{hint}.reduce")], f"{hint}.relu")
    s = _conv1x1_bias(g, s, m.fc.expand, f"{hint}.expand")
    s = g.op("HardSigmoid", [s], f"{hint}.hsigmoid", alpha=1.0 / 6.0, beta=0.5)
    return g.op("Mul", [x, s], f"{hint}.scale")


def _mbconv(g: _Graph, x: str, block: ResidualBlock, hint: str) -> str:
    m: MBConv = block.conv
    y = _conv(g, x, m.inverted_bottleneck, f"{hint}.expand") if m.inverted_bottleneck is not None else x
    y = _conv(g, y, m.depth_conv, f"{hint}.dw")
    if m.se is not None:
        y = _se(g, y, m.se, f"{hint}.se")
    y = _conv(g, y, m.point_linear, f"{hint}.project")
    if block.has_skip:
        y = g.op("Add", [x, y], f"{hint}.add")
    return y


def _residual_conv(g: _Graph, x: str, block: ResidualBlock, hint: str) -> str:
    y = _conv(g, x, block.conv, hint)
    return g.op("Add", [x, y], f"{hint}.add") if block.has_skip else y


def _bottleneck(g: _Graph, x: str, m: Bottleneck, hint: str) -> str:
    y = _conv(g, x, m.conv1, f"{hint}.conv1")
    y = _conv(g, y, m.conv2, f"{hint}.conv2")
    y = _conv(g, y, m.conv3, f"{hint}.conv3")
    shortcut = x
    if m.downsample is not None:
        pool = getattr(m.downsample, "avg_pool", None)
        if pool is not None and m.stride > 1:
            # ceil_mode keeps the last, partial window as torch does (averaged over its cells only).
            shortcut = g.op("AveragePool", [shortcut], f"{hint}.down.pool", kernel_shape=[m.stride, m.stride],
                            strides=[m.stride, m.stride], ceil_mode=1)
        conv = m.downsample.conv
        w, b = fold_conv_bn(conv, m.downsample.bn)
        stride = list(conv.stride)
        shortcut = g.op("Conv", [shortcut, g.const(f"{hint}.down.weight", w), g.const(f"{hint}.down.bias", b)],
                        f"{hint}.down.conv", kernel_shape=[1, 1], strides=stride)
    return _act(g, g.op("Add", [y, shortcut], f"{hint}.add"), m.act_name, hint)


def _emit(g: _Graph, x: str, module: nn.Module, hint: str) -> str:
    if isinstance(module, SubnetModel):
        for i, layer in enumerate(module.layers):
            x = _emit(g, x, layer, f"l{i}")
        return x
    if isinstance(module, ResidualBlock) and isinstance(module.conv, MBConv):
        return _mbconv(g, x, module, hint)
    if isinstance(module, ResidualBlock) and isinstance(module.conv, ConvBNAct) and module.conv.se is None:
        return _residual_conv(g, x, module, hint)
    if isinstance(module, ConvBNAct) and module.se is None:
        return _conv(g, x, module, hint)
    if isinstance(module, Bottleneck):
        return _bottleneck(g, x, module, hint)
    if isinstance(module, MaxPool):
        k, s, p = module.kernel, module.pool_stride, module.kernel // 2
        return g.op("MaxPool", [x], f"{hint}.maxpool", kernel_shape=[k, k], strides=[s, s], pads=[p, p, p, p])
    if isinstance(module, GlobalAvgPool):
        return g.op("GlobalAveragePool", [x], f"{hint}.pool")
    if isinstance(module, Classifier):
        if module.pool:
            x = g.op("GlobalAveragePool", [x], f"{hint}.pool")
        flat = g.op("Flatten", [x], f"{hint}.flatten", axis=1)
        w = g.const(f"{hint}.weight", module.linear.weight.detach().numpy())
        b = g.const(f"{hint}.bias", module.linear.bias.detach().numpy())
        return g.op("Gemm", [flat, w, b], f"{hint}.gemm", transB=1)
    raise TypeError(
        f"cannot export module of type {type(module).__name__}; "
        "expected ConvBNAct, ResidualBlock(MBConv or ConvBNAct), Bottleneck, MaxPool, GlobalAvgPool, Classifier or "
        "SubnetModel"
    )


def to_onnx_model(module: nn.Module, input_shape: Sequence[int], name: str = "lutnas") -> onnx.ModelProto:
    """Write an ONNX model for a block module or a :class:`SubnetModel`.

    Args:
        module: A module made of :mod:`layers` (eval mode; BN is folded from its running statistics).
        input_shape: NCHW input shape, e.g. ``(1, 40, 28, 28)``.
        name: Graph name.

    Returns:
        The model, input ``"input"`` and output ``"output"``, float32.

    Raises:
        TypeError: The module (or one of its layers) is not a :mod:`layers` module.
    """
    g = _Graph(reserved=(INPUT_NAME, OUTPUT_NAME))
    y = _emit(g, INPUT_NAME, module, "b")
    if y == INPUT_NAME:
        raise TypeError("module has no operations to export")
    g.nodes[-1].output[0] = OUTPUT_NAME  # the last node computes y; name it as the graph output
    graph = helper.make_graph(
        g.nodes,
        name,
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, list(input_shape))],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, list(module_output_shape(module, input_shape)))],
        initializer=g.initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", ONNX_OPSET)],
        producer_name="lutnas",
        producer_version=ONNX_EXPORTER_VERSION,
    )
    model.ir_version = ONNX_IR_VERSION
    return model


def export_onnx(module: nn.Module, input_shape: Sequence[int]) -> bytes:
    """Serialized ONNX bytes for a block module or a :class:`SubnetModel`; see :func:`to_onnx_model`."""
    data = to_onnx_model(module, input_shape).SerializeToString()
    logger.debug("onnx export: %d bytes, input %s", len(data), tuple(input_shape))
    return data
