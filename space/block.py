"""Blocks: the concrete, shaped layer groups a LUT times, and their key strings.

A block is a value: two blocks with the same fields are the same measurement. Its ``key`` is the
LUT's row key, written in the grammar of the family the block belongs to (``docs/keys.md``):

- OFA's MobileNetV3 grammar (``../shared/data/README.md``): ``expanded_conv-...-expand:<mid
  channels>-...-se:0|1-hs:0|1`` for inverted residuals with ReLU or h-swish, and ``Conv``,
  ``Conv_1``, ``AvgPool2D``, ``Conv_2``, ``Logits`` for the fixed layers.
- OFA's ProxylessNAS grammar: ``expanded_conv-...-expand:<ratio>-kernel:K-stride:S-idskip:0|1``
  (no ``se``/``hs``) for inverted residuals with ReLU6, ``Conv`` (first conv), ``Conv_1`` (the 1x1
  feature mix on the last feature map) and ``Logits`` (global pooling and the linear layer, keyed
  by the feature map it pools).
- lutnas's grammar for kinds OFA never keyed (ResNet50's): ``conv_bn_act-input:HxWxC-output:HxWxC-
  kernel:K-stride:S-idskip:0|1-act:A``, ``MaxPool2D-input:..-output:..-kernel:K-stride:S`` and
  ``bottleneck-input:..-output:..-mid:M-kernel:K-stride:S-idskip:0|1-act:A``.

Two keys do not name their activation: ``Conv`` and ``Conv_1`` read as h-swish (MobileNetV3) unless
``from_key`` is told the family's activations (``SearchSpace.block_from_key`` does), so
``space.block_from_key(b.key) == b`` in every space and ``Block.from_key(b.key) == b`` wherever a
key names everything.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

__all__ = ["Block", "BlockKind", "Activation", "BLOCK_KINDS", "ACTIVATIONS", "UNNAMED_ACT_KINDS"]

BlockKind = Literal["first_conv", "mbconv", "final_expand", "avgpool", "feature_mix", "classifier",
                    "conv_bn_act", "maxpool", "bottleneck"]
Activation = Literal["relu", "h_swish", "none", "relu6"]

BLOCK_KINDS: tuple[str, ...] = ("first_conv", "mbconv", "final_expand", "avgpool", "feature_mix", "classifier",
                                "conv_bn_act", "maxpool", "bottleneck")
ACTIVATIONS: tuple[str, ...] = ("relu", "h_swish", "none", "relu6")

# OFA's names for the fixed layers, in key order.
_FIXED_PREFIX = {
    "first_conv": "Conv",
    "final_expand": "Conv_1",
    "avgpool": "AvgPool2D",
    "feature_mix": "Conv_2",
    "classifier": "Logits",
}
_PREFIX_KIND = {v: k for k, v in _FIXED_PREFIX.items()}

# The fixed kinds' kernel and stride never vary, and their activations are few: implied by the kind.
# first_conv and final_expand take h_swish (MobileNetV3) or relu6 (ProxylessNAS, where final_expand is
# the 1x1 "feature mix" conv on the last feature map); their keys do not say which.
_FIXED_ATTRS: dict[str, tuple[int, int, tuple[str, ...]]] = {
    "first_conv": (3, 2, ("h_swish", "relu6")),
    "final_expand": (1, 1, ("h_swish", "relu6")),
    "avgpool": (0, 1, ("none",)),
    "feature_mix": (1, 1, ("h_swish",)),
    "classifier": (0, 1, ("none",)),
}
#: Kinds whose key leaves the activation out; ``Block.from_key`` reads them as h_swish unless told otherwise.
UNNAMED_ACT_KINDS: tuple[str, ...] = ("first_conv", "final_expand")
_KEY_ACT_DEFAULT = "h_swish"

_SHAPES = r"-input:(\d+)x(\d+)x(\d+)-output:(\d+)x(\d+)x(\d+)"
_MBCONV_RE = re.compile(
    r"^expanded_conv" + _SHAPES + r"-expand:(\d+)-kernel:(\d+)-stride:(\d+)-idskip:([01])-se:([01])-hs:([01])$"
)
_PROXYLESS_RE = re.compile(r"^expanded_conv" + _SHAPES + r"-expand:(\d+)-kernel:(\d+)-stride:(\d+)-idskip:([01])$")
_FIXED_RE = re.compile(r"^(Conv|Conv_1|AvgPool2D|Conv_2)" + _SHAPES + "$")
_LOGITS_RE = re.compile(r"^Logits-input:(\d+)x(\d+)x(\d+)-output:(\d+)$")
_ACT_ALT = "|".join(a for a in ACTIVATIONS if a != "none")
_CONV_RE = re.compile(r"^conv_bn_act" + _SHAPES + rf"-kernel:(\d+)-stride:(\d+)-idskip:([01])-act:({_ACT_ALT})$")
_MAXPOOL_RE = re.compile(r"^MaxPool2D" + _SHAPES + r"-kernel:(\d+)-stride:(\d+)$")
_BOTTLENECK_RE = re.compile(
    r"^bottleneck" + _SHAPES + rf"-mid:(\d+)-kernel:(\d+)-stride:(\d+)-idskip:([01])-act:({_ACT_ALT})$"
)
_GRAMMARS = (
    "expanded_conv-input:HxWxC-output:HxWxC-expand:M-kernel:K-stride:S-idskip:0|1-se:0|1-hs:0|1 (MobileNetV3), "
    "expanded_conv-...-expand:RATIO-kernel:K-stride:S-idskip:0|1 (ProxylessNAS), "
    "Conv|Conv_1|AvgPool2D|Conv_2|Logits-input:...-output:..., conv_bn_act|bottleneck|MaxPool2D-input:...-output:..."
)


def _side(in_hw: int, stride: int) -> int:
    """Output side of a same-padded op with ``stride`` (OFA's ``(h - 1) // s + 1``)."""
    return (in_hw - 1) // stride + 1


@dataclass(frozen=True)
class Block:
    """One concrete layer group with shapes (square feature maps, batch 1).

    Build fixed layers with the ``first_conv``/``fixed`` constructors, inverted residuals with
    ``mbconv``, ResNet layers with ``conv_bn_act``/``maxpool``/``bottleneck``; they fill the
    kind-implied fields.

    A ``classifier`` whose input is larger than 1x1 pools globally first (ProxylessNAS and ResNet
    key their classifier by the feature map it pools).
    """

    kind: str  # one of BLOCK_KINDS
    in_hw: int  # input side (feature maps are square)
    in_chs: int
    out_hw: int
    out_chs: int
    mid_chs: int = 0  # mbconv: expanded channels (== in_chs when expand is 1); bottleneck: inner width; 0 otherwise
    kernel: int = 0  # first_conv 3, mbconv depthwise k, 1x1 convs 1, pool/classifier 0
    stride: int = 1
    skip: bool = False  # identity residual (mbconv, bottleneck, conv_bn_act)
    se: bool = False  # squeeze-and-excite (mbconv only)
    act: str = "none"  # one of ACTIVATIONS

    def __post_init__(self) -> None:
        if self.kind not in BLOCK_KINDS:
            raise ValueError(f"Block kind {self.kind!r} is unknown; valid kinds: {', '.join(BLOCK_KINDS)}")
        if self.act not in ACTIVATIONS:
            raise ValueError(f"Block act {self.act!r} is unknown; valid: {', '.join(ACTIVATIONS)}")
        for name in ("in_hw", "in_chs", "out_hw", "out_chs", "stride"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Block {name} must be a positive int, got {value!r}")
        check = _CHECKS.get(self.kind, Block._check_fixed)
        check(self)

    def _check_mbconv(self) -> None:
        if self.mid_chs < 1 or self.kernel not in (1, 3, 5, 7, 9) or self.stride not in (1, 2):
            raise ValueError(f"mbconv needs mid_chs >= 1, odd kernel and stride 1|2, got {self}")
        self._check_skip()
        if self.act == "none":
            raise ValueError(f"mbconv needs an activation, got {self}")
        if self.act == "relu6" and (self.se or self.mid_chs % self.in_chs):
            # OFA's ProxylessNAS grammar keys the expand ratio as an int and has no SE field.
            raise ValueError(f"a relu6 mbconv (ProxylessNAS key grammar) needs no SE and mid_chs a multiple of "
                             f"in_chs, got {self}")

    def _check_resnet(self) -> None:
        if self.kernel < 1 or self.kernel % 2 == 0 or self.se:
            raise ValueError(f"{self.kind} needs an odd kernel and no SE, got {self}")
        if self.kind == "maxpool":
            if self.act != "none" or self.mid_chs or self.skip or self.in_chs != self.out_chs:
                raise ValueError(f"maxpool keeps its channels and has no activation, mid or skip, got {self}")
        elif self.act == "none":
            raise ValueError(f"{self.kind} needs an activation, got {self}")
        elif self.kind == "conv_bn_act" and self.mid_chs:
            raise ValueError(f"conv_bn_act has no mid_chs, got {self}")
        elif self.kind == "bottleneck" and self.mid_chs < 1:
            raise ValueError(f"bottleneck needs mid_chs >= 1, got {self}")
        if self.out_hw != _side(self.in_hw, self.stride):
            raise ValueError(f"{self.kind} output side must be (in - 1) // stride + 1, got {self}")
        self._check_skip()

    def _check_skip(self) -> None:
        if self.skip and (self.stride != 1 or self.in_chs != self.out_chs):
            raise ValueError(f"identity skip needs stride 1 and in_chs == out_chs, got {self}")

    def _check_fixed(self) -> None:
        kernel, stride, acts = _FIXED_ATTRS[self.kind]
        if (self.kernel, self.stride) != (kernel, stride) or self.act not in acts or self.mid_chs or self.skip or self.se:
            raise ValueError(f"{self.kind} block has non-canonical fields: {self}")

    # -- constructors -------------------------------------------------------------------
    @classmethod
    def first_conv(cls, resolution: int, out_chs: int, act: str = "h_swish") -> Block:
        """The 3x3 stride-2 stem; output side ``(r + 1) // 2`` as OFA's LUT counts it."""
        return cls.fixed("first_conv", resolution, 3, (resolution + 1) // 2, out_chs, act=act)

    @classmethod
    def mbconv(
        cls, in_hw: int, in_chs: int, out_chs: int, mid_chs: int, kernel: int, stride: int,
        skip: bool, se: bool, act: str,
    ) -> Block:
        """An inverted residual; output side ``(in_hw - 1) // stride + 1``."""
        return cls(
            kind="mbconv", in_hw=in_hw, in_chs=in_chs, out_hw=_side(in_hw, stride), out_chs=out_chs,
            mid_chs=mid_chs, kernel=kernel, stride=stride, skip=skip, se=se, act=act,
        )

    @classmethod
    def fixed(cls, kind: str, in_hw: int, in_chs: int, out_hw: int, out_chs: int, act: str | None = None) -> Block:
        """A fixed (non-elastic) layer of ``kind`` with its kind-implied attributes (``act``: the kind's first)."""
        if kind not in _FIXED_ATTRS:
            raise ValueError(f"fixed block kind {kind!r} is unknown; valid: {', '.join(_FIXED_ATTRS)}")
        kernel, stride, acts = _FIXED_ATTRS[kind]
        return cls(kind=kind, in_hw=in_hw, in_chs=in_chs, out_hw=out_hw, out_chs=out_chs,
                   kernel=kernel, stride=stride, act=acts[0] if act is None else act)

    @classmethod
    def conv_bn_act(cls, in_hw: int, in_chs: int, out_chs: int, kernel: int, stride: int, act: str,
                    skip: bool = False) -> Block:
        """A same-padded kxk conv, BN and activation (ResNet's input stem), optionally with an identity skip."""
        return cls(kind="conv_bn_act", in_hw=in_hw, in_chs=in_chs, out_hw=_side(in_hw, stride), out_chs=out_chs,
                   kernel=kernel, stride=stride, skip=skip, act=act)

    @classmethod
    def maxpool(cls, in_hw: int, chs: int, kernel: int = 3, stride: int = 2) -> Block:
        """Max pooling with padding ``kernel // 2`` (ResNet's 3x3/2 after the stem)."""
        return cls(kind="maxpool", in_hw=in_hw, in_chs=chs, out_hw=_side(in_hw, stride), out_chs=chs,
                   kernel=kernel, stride=stride)

    @classmethod
    def bottleneck(cls, in_hw: int, in_chs: int, mid_chs: int, out_chs: int, stride: int, kernel: int = 3,
                   act: str = "relu") -> Block:
        """A ResNet bottleneck; the shortcut is the identity when it keeps its shape, else avg-pool + 1x1 conv."""
        return cls(kind="bottleneck", in_hw=in_hw, in_chs=in_chs, out_hw=_side(in_hw, stride), out_chs=out_chs,
                   mid_chs=mid_chs, kernel=kernel, stride=stride, skip=stride == 1 and in_chs == out_chs, act=act)

    # -- derived ------------------------------------------------------------------------
    @property
    def expand_ratio(self) -> float:
        """mid / in channels for an mbconv, mid / out for a bottleneck (1.0 for other kinds)."""
        if self.kind == "mbconv":
            return self.mid_chs / self.in_chs
        if self.kind == "bottleneck":
            return self.mid_chs / self.out_chs
        return 1.0

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        """NCHW input shape at batch 1."""
        return (1, self.in_chs, self.in_hw, self.in_hw)

    @property
    def key(self) -> str:
        """This block's LUT key in its family's grammar (see the module docstring)."""
        shapes = f"input:{self.in_hw}x{self.in_hw}x{self.in_chs}-output:{self.out_hw}x{self.out_hw}x{self.out_chs}"
        if self.kind == "mbconv":
            if self.act == "relu6":  # ProxylessNAS: the ratio, no se/hs
                return (f"expanded_conv-{shapes}-expand:{self.mid_chs // self.in_chs}-kernel:{self.kernel}"
                        f"-stride:{self.stride}-idskip:{int(self.skip)}")
            return (
                f"expanded_conv-{shapes}-expand:{self.mid_chs}-kernel:{self.kernel}-stride:{self.stride}"
                f"-idskip:{int(self.skip)}-se:{int(self.se)}-hs:{int(self.act == 'h_swish')}"
            )
        if self.kind == "classifier":
            return f"Logits-input:{self.in_hw}x{self.in_hw}x{self.in_chs}-output:{self.out_chs}"
        if self.kind == "conv_bn_act":
            return (f"conv_bn_act-{shapes}-kernel:{self.kernel}-stride:{self.stride}-idskip:{int(self.skip)}"
                    f"-act:{self.act}")
        if self.kind == "maxpool":
            return f"MaxPool2D-{shapes}-kernel:{self.kernel}-stride:{self.stride}"
        if self.kind == "bottleneck":
            return (f"bottleneck-{shapes}-mid:{self.mid_chs}-kernel:{self.kernel}-stride:{self.stride}"
                    f"-idskip:{int(self.skip)}-act:{self.act}")
        return f"{_FIXED_PREFIX[self.kind]}-{shapes}"

    @classmethod
    def from_key(cls, key: str, acts: Mapping[str, str] | None = None) -> Block:
        """Parse a LUT key; ``Block.from_key(b.key, acts) == b``.

        Args:
            key: the key.
            acts: the activation of each kind in :data:`UNNAMED_ACT_KINDS` (its key does not say);
                missing kinds read as h_swish, OFA MobileNetV3's.

        Raises:
            ValueError: the key follows no grammar lutnas knows.
        """
        key = key.strip()
        for pattern, parse in _PARSERS:
            if m := pattern.match(key):
                block = parse(m.groups())
                break
        else:
            raise ValueError(f"not an OFA block key: {key!r} (expected {_GRAMMARS})")
        _check_square(key, block)
        if acts and block.kind in acts and block.kind in UNNAMED_ACT_KINDS:
            return cls.fixed(block.kind, block.in_hw, block.in_chs, block.out_hw, block.out_chs, act=acts[block.kind])
        return block


_CHECKS = {
    "mbconv": Block._check_mbconv,
    "conv_bn_act": Block._check_resnet,
    "maxpool": Block._check_resnet,
    "bottleneck": Block._check_resnet,
}


def _shaped(kind: str, g: tuple[str, ...], **fields: object) -> Block:
    h, _, cin, oh, _, cout = (int(x) for x in g[:6])
    return Block(kind=kind, in_hw=h, in_chs=cin, out_hw=oh, out_chs=cout, **fields)  # type: ignore[arg-type]


_PARSERS = (
    (_MBCONV_RE, lambda g: _shaped("mbconv", g, mid_chs=int(g[6]), kernel=int(g[7]), stride=int(g[8]),
                                   skip=g[9] == "1", se=g[10] == "1", act="h_swish" if g[11] == "1" else "relu")),
    (_PROXYLESS_RE, lambda g: _shaped("mbconv", g, mid_chs=int(g[2]) * int(g[6]), kernel=int(g[7]),
                                      stride=int(g[8]), skip=g[9] == "1", act="relu6")),
    (_FIXED_RE, lambda g: _shaped(_PREFIX_KIND[g[0]], g[1:], kernel=_FIXED_ATTRS[_PREFIX_KIND[g[0]]][0],
                                  stride=_FIXED_ATTRS[_PREFIX_KIND[g[0]]][1],
                                  act=_FIXED_ATTRS[_PREFIX_KIND[g[0]]][2][0])),
    (_LOGITS_RE, lambda g: Block.fixed("classifier", int(g[0]), int(g[2]), 1, int(g[3]))),
    (_CONV_RE, lambda g: _shaped("conv_bn_act", g, kernel=int(g[6]), stride=int(g[7]), skip=g[8] == "1", act=g[9])),
    (_MAXPOOL_RE, lambda g: _shaped("maxpool", g, kernel=int(g[6]), stride=int(g[7]))),
    (_BOTTLENECK_RE, lambda g: _shaped("bottleneck", g, mid_chs=int(g[6]), kernel=int(g[7]), stride=int(g[8]),
                                       skip=g[9] == "1", act=g[10])),
)


def _check_square(key: str, block: Block) -> None:
    """Refuse a key whose maps are not square (the parsed block keeps only H; W is checked here)."""
    for h, w in re.findall(r"(?:input|output):(\d+)x(\d+)x", key):
        if h != w:
            raise ValueError(f"block key {key!r} has a non-square feature map; lutnas blocks are square")
