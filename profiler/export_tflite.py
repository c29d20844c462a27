"""Direct TFLite export of block modules and whole subnets on the LiteRT flatbuffer schema object API.

The graph is NHWC end to end (input ``[1, H, W, C]``), with no transposes, so a block costs what it costs
inside a real network. Weights are the BN-folded float32 weights of the modules of :mod:`layers`.

Ops used:

- CONV_2D (weights OHWI) and DEPTHWISE_CONV_2D (weights ``[1, k, k, C]``), ReLU and ReLU6 fused into the conv.
- HARD_SWISH after a conv for h_swish.
- PAD before a conv only where TFLite's SAME padding differs from OFA's symmetric ``k // 2`` padding
  (stride 2 on an even input side); otherwise SAME.
- MAX_POOL_2D; where SAME padding differs from torch's ``k // 2``, a MIRROR_PAD (SYMMETRIC) first, which
  repeats the edge cells so a padded cell never changes a window's max (as torch's ``-inf`` padding), then VALID.
- MEAN over H and W (keep dims) for the global pool and the squeeze of squeeze-excite.
- h_sigmoid in squeeze-excite as the excite conv with ``bias + 3`` and fused RELU6, then MUL by 1/6
  on the 1×1×C gate; MUL to apply the gate; ADD for the identity skip.
- A bottleneck: three convs, the shortcut (AVERAGE_POOL_2D, SAME, which averages a partial edge window over its
  cells as torch's ``ceil_mode`` does, then a 1×1 conv) and ADD with the activation fused.
- FULLY_CONNECTED for the classifier (it flattens its ``[1, 1, 1, C]`` input itself), after a MEAN when it pools.

Constant buffers are numpy ``uint8`` arrays aligned to 16 bytes in the file.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import flatbuffers
import numpy as np
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

try:
    from ai_edge_litert import schema_py_generated as schema
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError("TFLite export needs the LiteRT schema; install it with `pip install ai-edge-litert`") from err

__all__ = ["TFLITE_EXPORTER_VERSION", "export_tflite", "same_padding_matches", "to_tflite_model"]

logger = logging.getLogger(__name__)

#: Bumped whenever the bytes this module writes for the same module change.
TFLITE_EXPORTER_VERSION = "tflite-direct-1"

INPUT_NAME = "input"
OUTPUT_NAME = "output"
SIGNATURE_KEY = "serving_default"
FILE_IDENTIFIER = b"TFL3"
SCHEMA_VERSION = 3
BUFFER_ALIGN_BYTES = 16  # what the TFLite converter uses; lets runtimes read weights in place
MAX_DEPRECATED_BUILTIN_CODE = 127  # PLACEHOLDER_FOR_GREATER_OP_CODES

_Op = schema.BuiltinOperator
_Opt = schema.BuiltinOptions
_Act = schema.ActivationFunctionType

Shape = tuple[int, ...]


class _AlignedBuffer:
    """A ``BufferT`` stand-in whose data vector starts on a 16-byte boundary (``ModelT.Pack`` only calls ``Pack``)."""

    __slots__ = ("data",)

    def __init__(self, data: np.ndarray | None) -> None:
        self.data = data

    def Pack(self, builder: flatbuffers.Builder) -> int:  # noqa: N802 - flatbuffers object-API name
        vec = None
        if self.data is not None and self.data.size:
            payload = self.data.tobytes()
            builder.StartVector(1, len(payload), BUFFER_ALIGN_BYTES)
            builder.head = builder.head - len(payload)
            builder.Bytes[builder.head : builder.head + len(payload)] = payload
            vec = builder.EndVector()  # StartVector recorded the length
        schema.BufferStart(builder)
        if vec is not None:
            schema.BufferAddData(builder, vec)
        return schema.BufferEnd(builder)


class _Graph:
    """Accumulates tensors, constant buffers and operators of one subgraph; activations are NHWC."""

    def __init__(self) -> None:
        self.tensors: list[schema.TensorT] = []
        self.buffers: list[_AlignedBuffer] = [_AlignedBuffer(None)]  # buffer 0: the empty sentinel
        self.operators: list[schema.OperatorT] = []
        self.opcodes: list[schema.OperatorCodeT] = []
        self._opcode_index: dict[int, int] = {}

    def tensor(
        self, name: str, shape: Sequence[int], data: np.ndarray | None = None, dtype: int = schema.TensorType.FLOAT32
    ) -> int:
        t = schema.TensorT()
        t.name = name
        t.shape = np.asarray(shape, dtype=np.int32)
        t.type = dtype
        if data is None:
            t.buffer = 0
        else:
            t.buffer = len(self.buffers)
            self.buffers.append(_AlignedBuffer(np.ascontiguousarray(data).reshape(-1).view(np.uint8)))
        self.tensors.append(t)
        return len(self.tensors) - 1

    def const(self, name: str, value: np.ndarray) -> int:
        value = np.ascontiguousarray(value)
        dtype = schema.TensorType.INT32 if value.dtype == np.int32 else schema.TensorType.FLOAT32
        if dtype == schema.TensorType.FLOAT32:
            value = value.astype(np.float32, copy=False)
        return self.tensor(name, value.shape, value, dtype)

    def op(
        self, code: int, inputs: Sequence[int], outputs: Sequence[int], options_type: int = 0, options: object = None
    ) -> None:
        if code not in self._opcode_index:
            oc = schema.OperatorCodeT()
            oc.builtinCode = code
            oc.deprecatedBuiltinCode = min(code, MAX_DEPRECATED_BUILTIN_CODE)
            oc.version = 1
            self._opcode_index[code] = len(self.opcodes)
            self.opcodes.append(oc)
        o = schema.OperatorT()
        o.opcodeIndex = self._opcode_index[code]
        o.inputs = np.asarray(inputs, dtype=np.int32)
        o.outputs = np.asarray(outputs, dtype=np.int32)
        o.builtinOptionsType = options_type
        o.builtinOptions = options
        self.operators.append(o)


def same_padding_matches(size: int, kernel: int, stride: int) -> bool:
    """Whether TFLite SAME padding equals symmetric ``kernel // 2`` padding on one spatial side."""
    pad = kernel // 2
    out_sym = (size + 2 * pad - kernel) // stride + 1
    out_same = -(-size // stride)
    total = max((out_same - 1) * stride + kernel - size, 0)
    return out_same == out_sym and total // 2 == pad


def _fused(act: str) -> tuple[int, bool]:
    """(fused activation for a conv, whether a HARD_SWISH op must follow)."""
    if act == "relu":
        return _Act.RELU, False
    if act == "relu6":
        return _Act.RELU6, False
    if act == "h_swish":
        return _Act.NONE, True
    if act == "none":
        return _Act.NONE, False
    raise ValueError(f"unknown activation {act!r}; known: relu, relu6, h_swish, none")


def _conv(g: _Graph, x: int, shape: Shape, m: ConvBNAct, hint: str) -> tuple[int, Shape]:
    n, h, w, _ = shape
    k, s, p = m.kernel, m.stride, m.kernel // 2
    oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    if same_padding_matches(h, k, s) and same_padding_matches(w, k, s):
        padding = schema.Padding.SAME
    else:
        pad_h = max((oh - 1) * s + k - h - p, 0)
        pad_w = max((ow - 1) * s + k - w - p, 0)
        paddings = np.array([[0, 0], [p, pad_h], [p, pad_w], [0, 0]], dtype=np.int32)
        padded = (n, h + p + pad_h, w + p + pad_w, shape[3])
        xp = g.tensor(f"{hint}.pad", padded)
        g.op(_Op.PAD, [x, g.const(f"{hint}.paddings", paddings)], [xp], _Opt.PadOptions, schema.PadOptionsT())
        x, padding = xp, schema.Padding.VALID
    wt, bias = m.folded()
    fused, hard_swish = _fused(m.act_name)
    out_shape = (n, oh, ow, m.out_chs)
    y = g.tensor(f"{hint}.conv", out_shape)
    if bias is None:  # TFLite's CONV_2D kernel requires a bias tensor
        bias = np.zeros(m.out_chs, dtype=np.float32)
    bias_idx = g.const(f"{hint}.bias", bias)
    if m.groups == 1:
        opts = schema.Conv2DOptionsT()
        opts.padding, opts.strideH, opts.strideW, opts.fusedActivationFunction = padding, s, s, fused
        weight = g.const(f"{hint}.weight", wt.transpose(0, 2, 3, 1))  # OIHW -> OHWI
        g.op(_Op.CONV_2D, [x, weight, bias_idx], [y], _Opt.Conv2DOptions, opts)
    elif m.groups == m.in_chs == m.out_chs:
        opts = schema.DepthwiseConv2DOptionsT()
        opts.padding, opts.strideH, opts.strideW, opts.fusedActivationFunction = padding, s, s, fused
        opts.depthMultiplier = 1
        weight = g.const(f"{hint}.weight", wt.transpose(1, 2, 3, 0))  # (C,1,k,k) -> (1,k,k,C)
        g.op(_Op.DEPTHWISE_CONV_2D, [x, weight, bias_idx], [y], _Opt.DepthwiseConv2DOptions, opts)
    else:
        raise ValueError(f"groups={m.groups} is neither 1 nor depthwise ({m.in_chs} channels)")
    if hard_swish:
        z = g.tensor(f"{hint}.hswish", out_shape)
        g.op(_Op.HARD_SWISH, [y], [z])
        y = z
    return y, out_shape


def _mean_hw(g: _Graph, x: int, shape: Shape, hint: str) -> tuple[int, Shape]:
    out_shape = (shape[0], 1, 1, shape[3])
    y = g.tensor(hint, out_shape)
    opts = schema.ReducerOptionsT()
    opts.keepDims = True
    g.op(_Op.MEAN, [x, g.const(f"{hint}.axes", np.array([1, 2], dtype=np.int32))], [y], _Opt.ReducerOptions, opts)
    return y, out_shape


def _conv1x1_bias(
    g: _Graph, x: int, shape: Shape, weight: np.ndarray, bias: np.ndarray, fused: int, hint: str
) -> tuple[int, Shape]:
    out_shape = (shape[0], shape[1], shape[2], weight.shape[0])
    y = g.tensor(hint, out_shape)
    opts = schema.Conv2DOptionsT()
    opts.padding, opts.strideH, opts.strideW, opts.fusedActivationFunction = schema.Padding.VALID, 1, 1, fused
    w = g.const(f"{hint}.weight", weight.transpose(0, 2, 3, 1))
    g.op(_Op.CONV_2D, [x, w, g.const(f"{hint}.bias", bias)], [y], _Opt.Conv2DOptions, opts)
    return y, out_shape


def _mul(g: _Graph, a: int, b: int, out_shape: Shape, hint: str) -> int:
    y = g.tensor(hint, out_shape)
    g.op(_Op.MUL, [a, b], [y], _Opt.MulOptions, schema.MulOptionsT())
    return y


def _se(g: _Graph, x: int, shape: Shape, m: SqueezeExcite, hint: str) -> tuple[int, Shape]:
    s, s_shape = _mean_hw(g, x, shape, f"{hint}.squeeze")
    red_w = m.fc.reduce.weight.detach().numpy()
    red_b = m.fc.reduce.bias.detach().numpy()
    s, s_shape = _conv1x1_bias(g, s, s_shape, red_w, red_b, _Act.RELU, f"{hint}.reduce")
    exp_w = m.fc.expand.weight.detach().numpy()
    exp_b = m.fc.expand.bias.detach().numpy() + np.float32(3.0)  # relu6(z + 3) as the conv's fused RELU6
    s, s_shape = _conv1x1_bias(g, s, s_shape, exp_w, exp_b, _Act.RELU6, f"{hint}.excite")
    gate = _mul(g, s, g.const(f"{hint}.sixth", np.array([1.0 / 6.0], dtype=np.float32)), s_shape, f"{hint}.gate")
    return _mul(g, x, gate, shape, f"{hint}.scale"), shape


def _mbconv(g: _Graph, x: int, shape: Shape, block: ResidualBlock, hint: str) -> tuple[int, Shape]:
    m: MBConv = block.conv
    y, y_shape = (x, shape)
    if m.inverted_bottleneck is not None:
        y, y_shape = _conv(g, y, y_shape, m.inverted_bottleneck, f"{hint}.expand")
    y, y_shape = _conv(g, y, y_shape, m.depth_conv, f"{hint}.dw")
    if m.se is not None:
        y, y_shape = _se(g, y, y_shape, m.se, f"{hint}.se")
    y, y_shape = _conv(g, y, y_shape, m.point_linear, f"{hint}.project")
    if block.has_skip:
        y = _add(g, x, y, y_shape, f"{hint}.add")
    return y, y_shape


def _add(g: _Graph, a: int, b: int, shape: Shape, hint: str, fused: int = _Act.NONE) -> int:
    y = g.tensor(hint, shape)
    opts = schema.AddOptionsT()
    opts.fusedActivationFunction = fused
    g.op(_Op.ADD, [a, b], [y], _Opt.AddOptions, opts)
    return y


def _residual_conv(g: _Graph, x: int, shape: Shape, block: ResidualBlock, hint: str) -> tuple[int, Shape]:
    y, y_shape = _conv(g, x, shape, block.conv, hint)
    return (_add(g, x, y, y_shape, f"{hint}.add"), y_shape) if block.has_skip else (y, y_shape)


def _pool(g: _Graph, code: int, x: int, shape: Shape, kernel: int, stride: int, padding: int,
          hint: str) -> tuple[int, Shape]:
    n, h, w, c = shape
    if padding == schema.Padding.SAME:
        oh, ow = -(-h // stride), -(-w // stride)
    else:
        oh, ow = (h - kernel) // stride + 1, (w - kernel) // stride + 1
    out_shape = (n, oh, ow, c)
    y = g.tensor(hint, out_shape)
    opts = schema.Pool2DOptionsT()
    opts.padding, opts.strideH, opts.strideW = padding, stride, stride
    opts.filterHeight, opts.filterWidth = kernel, kernel
    g.op(code, [x], [y], _Opt.Pool2DOptions, opts)
    return y, out_shape


def _maxpool(g: _Graph, x: int, shape: Shape, m: MaxPool, hint: str) -> tuple[int, Shape]:
    n, h, w, c = shape
    k, s, p = m.kernel, m.pool_stride, m.kernel // 2
    if same_padding_matches(h, k, s) and same_padding_matches(w, k, s):
        return _pool(g, _Op.MAX_POOL_2D, x, shape, k, s, schema.Padding.SAME, f"{hint}.maxpool")
    oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    pad_h, pad_w = max((oh - 1) * s + k - h - p, 0), max((ow - 1) * s + k - w - p, 0)
    paddings = np.array([[0, 0], [p, pad_h], [p, pad_w], [0, 0]], dtype=np.int32)
    padded = (n, h + p + pad_h, w + p + pad_w, c)
    xp = g.tensor(f"{hint}.pad", padded)
    opts = schema.MirrorPadOptionsT()
    opts.mode = schema.MirrorPadMode.SYMMETRIC
    g.op(_Op.MIRROR_PAD, [x, g.const(f"{hint}.paddings", paddings)], [xp], _Opt.MirrorPadOptions, opts)
    return _pool(g, _Op.MAX_POOL_2D, xp, padded, k, s, schema.Padding.VALID, f"{hint}.maxpool")


def _bottleneck(g: _Graph, x: int, shape: Shape, m: Bottleneck, hint: str) -> tuple[int, Shape]:
    y, y_shape = _conv(g, x, shape, m.conv1, f"{hint}.conv1")
    y, y_shape = _conv(g, y, y_shape, m.conv2, f"{hint}.conv2")
    y, y_shape = _conv(g, y, y_shape, m.conv3, f"{hint}.conv3")
    shortcut = x
    if m.downsample is not None:
        s_shape = shape
        conv = m.downsample.conv
        if getattr(m.downsample, "avg_pool", None) is not None and m.stride > 1:
            shortcut, s_shape = _pool(g, _Op.AVERAGE_POOL_2D, shortcut, s_shape, m.stride, m.stride,
                                      schema.Padding.SAME, f"{hint}.down.pool")
        weight, bias = fold_conv_bn(conv, m.downsample.bn)
        shortcut, s_shape = _strided_1x1(g, shortcut, s_shape, weight, bias, conv.stride[0], f"{hint}.down")
    fused, hard_swish = _fused(m.act_name)
    if hard_swish:
        raise ValueError(f"a bottleneck's activation must be one TFLite fuses into ADD, got {m.act_name!r}")
    return _add(g, y, shortcut, y_shape, f"{hint}.add", fused), y_shape


def _strided_1x1(g: _Graph, x: int, shape: Shape, weight: np.ndarray, bias: np.ndarray, stride: int,
                 hint: str) -> tuple[int, Shape]:
    """A 1x1 conv with bias at ``stride`` (cells 0, s, 2s, ...: VALID equals torch's unpadded conv)."""
    n, h, w, _ = shape
    out_shape = (n, (h - 1) // stride + 1, (w - 1) // stride + 1, weight.shape[0])
    y = g.tensor(hint, out_shape)
    opts = schema.Conv2DOptionsT()
    opts.padding, opts.strideH, opts.strideW = schema.Padding.VALID, stride, stride
    w_idx = g.const(f"{hint}.weight", weight.transpose(0, 2, 3, 1))
    g.op(_Op.CONV_2D, [x, w_idx, g.const(f"{hint}.bias", bias)], [y], _Opt.Conv2DOptions, opts)
    return y, out_shape


def _classifier(g: _Graph, x: int, shape: Shape, m: Classifier, hint: str) -> tuple[int, Shape]:
    if m.pool:
        x, shape = _mean_hw(g, x, shape, f"{hint}.pool")
    out_shape = (shape[0], m.out_chs)
    y = g.tensor(hint, out_shape)
    w = g.const(f"{hint}.weight", m.linear.weight.detach().numpy())
    b = g.const(f"{hint}.bias", m.linear.bias.detach().numpy())
    g.op(_Op.FULLY_CONNECTED, [x, w, b], [y], _Opt.FullyConnectedOptions, schema.FullyConnectedOptionsT())
    return y, out_shape


def _emit(g: _Graph, x: int, shape: Shape, module: nn.Module, hint: str) -> tuple[int, Shape]:
    if isinstance(module, SubnetModel):
        for i, layer in enumerate(module.layers):
            x, shape = _emit(g, x, shape, layer, f"l{i}")
        return x, shape
    if isinstance(module, ResidualBlock) and isinstance(module.conv, MBConv):
        return _mbconv(g, x, shape, module, hint)
    if isinstance(module, ResidualBlock) and isinstance(module.conv, ConvBNAct) and module.conv.se is None:
        return _residual_conv(g, x, shape, module, hint)
    if isinstance(module, ConvBNAct) and module.se is None:
        return _conv(g, x, shape, module, hint)
    if isinstance(module, Bottleneck):
        return _bottleneck(g, x, shape, module, hint)
    if isinstance(module, MaxPool):
        return _maxpool(g, x, shape, module, hint)
    if isinstance(module, GlobalAvgPool):
        return _mean_hw(g, x, shape, f"{hint}.pool")
    if isinstance(module, Classifier):
        return _classifier(g, x, shape, module, hint)
    raise TypeError(
        f"cannot export module of type {type(module).__name__}; "
        "expected ConvBNAct, ResidualBlock(MBConv or ConvBNAct), Bottleneck, MaxPool, GlobalAvgPool, Classifier or "
        "SubnetModel"
    )


def _tensor_map(name: str, index: int) -> schema.TensorMapT:
    tm = schema.TensorMapT()
    tm.name, tm.tensorIndex = name, index
    return tm


def to_tflite_model(module: nn.Module, input_shape: Sequence[int]) -> schema.ModelT:
    """Write the LiteRT object-API model of a block module or a :class:`SubnetModel`.

    Args:
        module: A module made of :mod:`layers` in eval mode.
        input_shape: NCHW input shape of the torch module, e.g. ``(1, 40, 28, 28)``; the model takes its NHWC
            transpose.

    Returns:
        The ``ModelT``: one subgraph, input ``"input"`` (NHWC), output ``"output"`` (NHWC, or ``[1, classes]``).

    Raises:
        TypeError: The module (or one of its layers) is not a :mod:`layers` module.
    """
    n, c, h, w = input_shape
    g = _Graph()
    x = g.tensor(INPUT_NAME, (n, h, w, c))
    y, _ = _emit(g, x, (n, h, w, c), module, "b")
    if y == x:
        raise TypeError("module has no operations to export")
    g.tensors[y].name = OUTPUT_NAME
    expected = module_output_shape(module, input_shape)
    got = tuple(int(v) for v in g.tensors[y].shape)
    if len(expected) == 4:
        expected = (expected[0], expected[2], expected[3], expected[1])
    if got != expected:
        raise RuntimeError(f"exported output shape {got} differs from the module's {expected}")

    sub = schema.SubGraphT()
    sub.tensors, sub.operators = g.tensors, g.operators
    sub.inputs, sub.outputs = np.array([x], dtype=np.int32), np.array([y], dtype=np.int32)
    sub.name = "main"
    sig = schema.SignatureDefT()
    sig.inputs, sig.outputs = [_tensor_map(INPUT_NAME, x)], [_tensor_map(OUTPUT_NAME, y)]
    sig.signatureKey, sig.subgraphIndex = SIGNATURE_KEY, 0
    model = schema.ModelT()
    model.version = SCHEMA_VERSION
    model.description = f"lutnas {TFLITE_EXPORTER_VERSION}"
    model.operatorCodes, model.subgraphs, model.buffers = g.opcodes, [sub], g.buffers
    model.signatureDefs = [sig]
    return model


def export_tflite(module: nn.Module, input_shape: Sequence[int]) -> bytes:
    """Serialized ``.tflite`` bytes for a block module or a :class:`SubnetModel`; see :func:`to_tflite_model`."""
    model = to_tflite_model(module, input_shape)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=FILE_IDENTIFIER)
    data = bytes(builder.Output())
    logger.debug("tflite export: %d bytes, input %s", len(data), tuple(input_shape))
    return data
