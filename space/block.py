"""Blocks: the concrete, shaped layer groups a LUT times, and their OFA key strings.

A block is a value: two blocks with the same fields are the same measurement. Its
``key`` is OFA's LUT key (``../shared/data/README.md`` has the grammar), so LUTs
written by OFA's tools and by lutnas index the same rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

__all__ = ["Block", "BlockKind", "Activation", "BLOCK_KINDS", "ACTIVATIONS"]

BlockKind = Literal["first_conv", "mbconv", "final_expand", "avgpool", "feature_mix", "classifier"]
Activation = Literal["relu", "h_swish", "none"]

BLOCK_KINDS: tuple[str, ...] = ("first_conv", "mbconv", "final_expand", "avgpool", "feature_mix", "classifier")
ACTIVATIONS: tuple[str, ...] = ("relu", "h_swish", "none")

# OFA's names for the fixed layers, in key order.
_FIXED_PREFIX = {
    "first_conv": "Conv",
    "final_expand": "Conv_1",
    "avgpool": "AvgPool2D",
    "feature_mix": "Conv_2",
    "classifier": "Logits",
}
_PREFIX_KIND = {v: k for k, v in _FIXED_PREFIX.items()}

# The fixed kinds' kernel, stride and activation never vary: they are implied by the kind.
_FIXED_ATTRS = {
    "first_conv": (3, 2, "h_swish"),
    "final_expand": (1, 1, "h_swish"),
    "avgpool": (0, 1, "none"),
    "feature_mix": (1, 1, "h_swish"),
    "classifier": (0, 1, "none"),
}

_MBCONV_RE = re.compile(
    r"^expanded_conv-input:(\d+)x(\d+)x(\d+)-output:(\d+)x(\d+)x(\d+)-expand:(\d+)-kernel:(\d+)"
    r"-stride:(\d+)-idskip:([01])-se:([01])-hs:([01])$"
)
_FIXED_RE = re.compile(r"^(Conv|Conv_1|AvgPool2D|Conv_2)-input:(\d+)x(\d+)x(\d+)-output:(\d+)x(\d+)x(\d+)$")
_LOGITS_RE = re.compile(r"^Logits-input:(\d+)x(\d+)x(\d+)-output:(\d+)$")


@dataclass(frozen=True)
class Block:
    """One concrete layer group with shapes (square feature maps, batch 1).

    Build fixed layers with the ``first_conv``/``final_expand``/... constructors and
    inverted residuals with ``mbconv``; they fill the kind-implied fields.
    """

    kind: str  # one of BLOCK_KINDS
    in_hw: int  # input side (feature maps are square)
    in_chs: int
    out_hw: int
    out_chs: int
    mid_chs: int = 0  # mbconv: expanded channels (== in_chs when expand is 1); 0 otherwise
    kernel: int = 0  # first_conv 3, mbconv depthwise k, 1x1 convs 1, pool/classifier 0
    stride: int = 1
    skip: bool = False  # identity residual (mbconv only)
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
        if self.kind == "mbconv":
            if self.mid_chs < 1 or self.kernel not in (1, 3, 5, 7, 9) or self.stride not in (1, 2):
                raise ValueError(f"mbconv needs mid_chs >= 1, odd kernel and stride 1|2, got {self}")
            if self.skip and (self.stride != 1 or self.in_chs != self.out_chs):
                raise ValueError(f"identity skip needs stride 1 and in_chs == out_chs, got {self}")
        elif (self.kernel, self.stride, self.act) != _FIXED_ATTRS[self.kind] or self.mid_chs or self.skip or self.se:
            raise ValueError(f"{self.kind} block has non-canonical fields: {self}")

    # -- constructors -------------------------------------------------------------------
    @classmethod
    def first_conv(cls, resolution: int, out_chs: int) -> Block:
        """The 3x3 stride-2 stem; output side ``(r + 1) // 2`` as OFA's LUT counts it."""
        return cls.fixed("first_conv", resolution, 3, (resolution + 1) // 2, out_chs)

    @classmethod
    def mbconv(
        cls, in_hw: int, in_chs: int, out_chs: int, mid_chs: int, kernel: int, stride: int,
        skip: bool, se: bool, act: str,
    ) -> Block:
        """An inverted residual; output side ``(in_hw - 1) // stride + 1``."""
        return cls(
            kind="mbconv", in_hw=in_hw, in_chs=in_chs, out_hw=(in_hw - 1) // stride + 1, out_chs=out_chs,
            mid_chs=mid_chs, kernel=kernel, stride=stride, skip=skip, se=se, act=act,
        )

    @classmethod
    def fixed(cls, kind: str, in_hw: int, in_chs: int, out_hw: int, out_chs: int) -> Block:
        """A fixed (non-elastic) layer of ``kind`` with its kind-implied attributes."""
        if kind not in _FIXED_ATTRS:
            raise ValueError(f"fixed block kind {kind!r} is unknown; valid: {', '.join(_FIXED_ATTRS)}")
        kernel, stride, act = _FIXED_ATTRS[kind]
        return cls(kind=kind, in_hw=in_hw, in_chs=in_chs, out_hw=out_hw, out_chs=out_chs,
                   kernel=kernel, stride=stride, act=act)

    # -- derived ------------------------------------------------------------------------
    @property
    def expand_ratio(self) -> float:
        """mid / in channels for an mbconv (1.0 for other kinds)."""
        return self.mid_chs / self.in_chs if self.kind == "mbconv" else 1.0

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        """NCHW input shape at batch 1."""
        return (1, self.in_chs, self.in_hw, self.in_hw)

    @property
    def key(self) -> str:
        """OFA's LUT key string for this block."""
        shape_in = f"input:{self.in_hw}x{self.in_hw}x{self.in_chs}"
        if self.kind == "mbconv":
            return (
                f"expanded_conv-{shape_in}-output:{self.out_hw}x{self.out_hw}x{self.out_chs}"
                f"-expand:{self.mid_chs}-kernel:{self.kernel}-stride:{self.stride}"
                f"-idskip:{int(self.skip)}-se:{int(self.se)}-hs:{int(self.act == 'h_swish')}"
            )
        if self.kind == "classifier":
            return f"Logits-{shape_in}-output:{self.out_chs}"
        return f"{_FIXED_PREFIX[self.kind]}-{shape_in}-output:{self.out_hw}x{self.out_hw}x{self.out_chs}"

    @classmethod
    def from_key(cls, key: str) -> Block:
        """Parse an OFA LUT key; ``Block.from_key(b.key) == b``.

        Raises:
            ValueError: the key does not follow OFA's grammar.
        """
        key = key.strip()
        if m := _MBCONV_RE.match(key):
            h, w, cin, oh, ow, cout, mid, k, s, skip, se, hs = (int(x) for x in m.groups())
            _check_square(key, h, w, oh, ow)
            return cls(kind="mbconv", in_hw=h, in_chs=cin, out_hw=oh, out_chs=cout, mid_chs=mid, kernel=k,
                       stride=s, skip=bool(skip), se=bool(se), act="h_swish" if hs else "relu")
        if m := _FIXED_RE.match(key):
            prefix, *dims = m.groups()
            h, w, cin, oh, ow, cout = (int(x) for x in dims)
            _check_square(key, h, w, oh, ow)
            return cls.fixed(_PREFIX_KIND[prefix], h, cin, oh, cout)
        if m := _LOGITS_RE.match(key):
            h, w, cin, cout = (int(x) for x in m.groups())
            _check_square(key, h, w, 1, 1)
            return cls.fixed("classifier", h, cin, 1, cout)
        raise ValueError(
            f"not an OFA block key: {key!r} (expected expanded_conv-input:HxWxC-output:HxWxC-expand:M-kernel:K-"
            "stride:S-idskip:0|1-se:0|1-hs:0|1, or Conv|Conv_1|AvgPool2D|Conv_2|Logits-input:...-output:...)"
        )


def _check_square(key: str, h: int, w: int, oh: int, ow: int) -> None:
    if h != w or oh != ow:
        raise ValueError(f"block key {key!r} has a non-square feature map; lutnas blocks are square")
