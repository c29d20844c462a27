"""Bottleneck search spaces (OFA's ResNet50 family): widths, stage rules, and the subnet → blocks decomposition.

A subnet is OFA's ResNet50 arch dict ``{"d": [1 + n_stages], "e": [n_blocks], "w": [2 + n_stages], "r": int}``:

- ``d[0]`` keeps the input stem's middle conv when it is ``max(depth_choices)`` and skips it otherwise;
  ``d[1:]`` are the blocks each stage runs beyond its base depth.
- ``e``: one expand ratio per block slot (a block's middle width is ``make_divisible(round(out * e), 8)``);
  slots beyond a stage's depth are ignored.
- ``w``: indices into the width multipliers, for the stem's first two convs, its last conv and each stage.

Blocks, in run order: the stem's convs (``conv_bn_act``; the middle one has an identity skip), a 3x3/2
max pool, the bottlenecks, and a classifier that pools the last feature map.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from space.block import Block
from space.bounds import quoted
from space.choices import matching_choice
from space.search_space import MAX_RESOLUTION, MIN_RESOLUTION, active_mask, make_divisible

__all__ = ["ResNetSpace", "ResNetSubnet"]


@dataclass(frozen=True)
class ResNetSubnet:
    """One ResNet subnet: stem skip and extra depths ``d``, per-block expand ratios ``e``, width indices ``w``, ``r``."""

    d: tuple[int, ...]
    e: tuple[float, ...]
    w: tuple[int, ...]
    r: int

    def to_arch(self) -> dict[str, Any]:
        """OFA's arch dict (plain lists and numbers; JSON-serializable)."""
        return {"d": list(self.d), "e": list(self.e), "w": list(self.w), "r": self.r}

    def to_dict(self) -> dict[str, Any]:
        """Alias of :meth:`to_arch` for serializers."""
        return self.to_arch()


@dataclass(frozen=True)
class ResNetSpace:
    """An elastic ResNet space (defaults: OFA-ResNet50's rules)."""

    name: str  # registry name, e.g. "ofa-resnet50"
    stem_chs: int = 64  # the stem's output width at multiplier 1.0 (its first two convs have half)
    stage_chs: tuple[int, ...] = (256, 512, 1024, 2048)  # block outputs per stage at multiplier 1.0
    base_depths: tuple[int, ...] = (2, 2, 4, 2)  # blocks per stage at d = 0
    stage_strides: tuple[int, ...] = (1, 2, 2, 2)
    width_mult: float = 1.0  # fixed multiplier under the elastic ones
    width_choices: tuple[float, ...] = (0.65, 0.8, 1.0)  # elastic width multipliers (w are indices)
    expand_choices: tuple[float, ...] = (0.2, 0.25, 0.35)
    depth_choices: tuple[int, ...] = (0, 1, 2)
    n_classes: int = 1000
    act: str = "relu"
    resolutions: tuple[int, ...] = field(default_factory=lambda: tuple(range(128, 225, 4)))
    family: str = "ofa-resnet50"

    # -- widths and slots -------------------------------------------------------------------
    @property
    def n_stages(self) -> int:
        return len(self.stage_chs)

    @property
    def max_depth(self) -> int:
        return max(self.depth_choices)

    @property
    def slots_per_stage(self) -> tuple[int, ...]:
        """Block slots of each stage (base depth plus the largest extra depth)."""
        return tuple(b + self.max_depth for b in self.base_depths)

    @property
    def n_slots(self) -> int:
        return sum(self.slots_per_stage)

    @property
    def arch_shape(self) -> str:
        """The lengths of this space's arch dict, for messages: ``d 5, e 18, w 6 and r``."""
        return f"d {1 + self.n_stages}, e {self.n_slots}, w {2 + self.n_stages} and r"

    @property
    def stem_widths(self) -> tuple[int, ...]:
        """The stem's output width per width choice."""
        return tuple(make_divisible(self.stem_chs * self.width_mult * w, 8) for w in self.width_choices)

    @property
    def mid_stem_widths(self) -> tuple[int, ...]:
        """The stem's first two convs' width per width choice."""
        return tuple(make_divisible(c // 2, 8) for c in self.stem_widths)

    def stage_widths(self, stage: int) -> tuple[int, ...]:
        """A stage's block output width per width choice."""
        return tuple(make_divisible(self.stage_chs[stage] * self.width_mult * w, 8) for w in self.width_choices)

    @staticmethod
    def mid_chs(out_chs: int, expand: float) -> int:
        """A bottleneck's middle width (OFA's rounding)."""
        return make_divisible(round(out_chs * expand), 8)

    @property
    def fixed_acts(self) -> dict[str, str]:
        """Activations of the kinds whose keys do not name one (none here: every ResNet key names it)."""
        return {}

    def block_from_key(self, key: str) -> Block:
        """The block a key names (``space.block_from_key(b.key) == b``)."""
        return Block.from_key(key)

    # -- subnets ------------------------------------------------------------------------------
    def validate(self, arch: Mapping[str, Any] | ResNetSubnet) -> ResNetSubnet:
        """Check an arch dict against this space and return it as a :class:`ResNetSubnet`.

        Accepts ``r`` as an int or a one-element list and ignores a ``wid`` key.

        Raises:
            ValueError: naming the bad field, its value and the valid choices.
        """
        if isinstance(arch, ResNetSubnet):
            arch = arch.to_arch()
        if not isinstance(arch, Mapping):
            raise ValueError(f"a subnet must be a dict with keys d, e, w, r; got {type(arch).__name__}")
        unknown = set(arch) - {"d", "e", "w", "r", "wid"}
        if unknown:
            raise ValueError(f"subnet has unknown keys {sorted(unknown)}; expected d, e, w, r for {self.name}")
        missing = [k for k in ("d", "e", "w", "r") if k not in arch]
        if missing:
            raise ValueError(f"subnet is missing {', '.join(missing)}; expected keys d, e, w, r for {self.name}")
        d = _values(self, "d", arch["d"], 1 + self.n_stages, self.depth_choices)
        e = _values(self, "e", arch["e"], self.n_slots, self.expand_choices)
        w = _values(self, "w", arch["w"], 2 + self.n_stages, tuple(range(len(self.width_choices))))
        r = arch["r"]
        if isinstance(r, Sequence) and not isinstance(r, str) and len(r) == 1:
            r = r[0]
        if isinstance(r, bool) or not isinstance(r, (int, float)) or int(r) != r:
            raise ValueError(f"subnet r must be an int, got {quoted(r)}")
        if not MIN_RESOLUTION <= r <= MAX_RESOLUTION:
            raise ValueError(f"subnet r = {r} is out of range [{MIN_RESOLUTION}, {MAX_RESOLUTION}]")
        return ResNetSubnet(d=tuple(int(v) for v in d), e=tuple(float(v) for v in e), w=tuple(int(v) for v in w),
                            r=int(r))

    # -- blocks ---------------------------------------------------------------------------------
    def stem_blocks(self, resolution: int, w0: int | None = None, w1: int | None = None,
                    skip_middle: bool = False) -> tuple[list[Block], int]:
        """The stem (convs and max pool) at ``resolution`` for width indices ``w0``, ``w1`` (default widest)."""
        top = len(self.width_choices) - 1
        mid = self.mid_stem_widths[top if w0 is None else w0]
        out = self.stem_widths[top if w1 is None else w1]
        first = Block.conv_bn_act(resolution, 3, mid, 3, 2, self.act)
        blocks = [first]
        if not skip_middle:
            blocks.append(Block.conv_bn_act(first.out_hw, mid, mid, 3, 1, self.act, skip=True))
        blocks.append(Block.conv_bn_act(first.out_hw, mid, out, 3, 1, self.act))
        blocks.append(Block.maxpool(first.out_hw, out))
        return blocks, blocks[-1].out_hw

    def stage_input_sides(self, resolution: int) -> list[int]:
        """Input side of each stage's first block at ``resolution``."""
        _, side = self.stem_blocks(resolution)
        sides = []
        for stride in self.stage_strides:
            sides.append(side)
            side = (side - 1) // stride + 1
        return sides

    def head_blocks(self, side: int, in_chs: int) -> list[Block]:
        """The classifier, pooling the last feature map."""
        return [Block.fixed("classifier", side, in_chs, 1, self.n_classes)]

    def blocks(self, arch: Mapping[str, Any] | ResNetSubnet) -> list[Block]:
        """The ordered blocks a subnet runs."""
        sub = self.validate(arch)
        out, side = self.stem_blocks(sub.r, sub.w[0], sub.w[1], skip_middle=sub.d[0] != self.max_depth)
        in_chs = out[-1].out_chs
        slot = 0
        for stage, slots in enumerate(self.slots_per_stage):
            out_chs = self.stage_widths(stage)[sub.w[2 + stage]]
            for j in range(self.base_depths[stage] + sub.d[1 + stage]):
                stride = self.stage_strides[stage] if j == 0 else 1
                block = Block.bottleneck(side, in_chs, self.mid_chs(out_chs, sub.e[slot + j]), out_chs, stride,
                                         act=self.act)
                out.append(block)
                side, in_chs = block.out_hw, out_chs
            slot += slots
        return out + self.head_blocks(side, in_chs)

    def stage_blocks(self, resolution: int) -> Iterator[tuple[int, int | None, int, int, Block]]:
        """Every bottleneck a stage may run at ``resolution``, in run order, as ``(stage, w_in, w_out, e, block)``
        (width and expand indices): the stage's first block once per input width ``w_in`` (the stem's widths,
        or the previous stage's), then its later blocks, which read their own width (``w_in`` None)."""
        for stage, in_side in enumerate(self.stage_input_sides(resolution)):
            stride = self.stage_strides[stage]
            side = (in_side - 1) // stride + 1
            in_widths = self.stem_widths if stage == 0 else self.stage_widths(stage - 1)
            for w_out, out_chs in enumerate(self.stage_widths(stage)):
                for k, e in enumerate(self.expand_choices):
                    mid = self.mid_chs(out_chs, e)
                    for w_in, in_chs in enumerate(in_widths):
                        yield stage, w_in, w_out, k, Block.bottleneck(in_side, in_chs, mid, out_chs, stride,
                                                                      act=self.act)
                    yield stage, None, w_out, k, Block.bottleneck(side, out_chs, mid, out_chs, 1, act=self.act)

    def head_side(self, resolution: int) -> int:
        """The side of the last stage's output at ``resolution`` (the map the classifier pools)."""
        return (self.stage_input_sides(resolution)[-1] - 1) // self.stage_strides[-1] + 1

    def unique_blocks(self, resolutions: int | list[int] | tuple[int, ...]) -> list[Block]:
        """Every distinct block any subnet of this space can run at ``resolutions``, in run order."""
        if isinstance(resolutions, int):
            resolutions = [resolutions]
        n_w = len(self.width_choices)
        seen: dict[Block, None] = {}
        for r in resolutions:
            for w0 in range(n_w):
                for w1 in range(n_w):
                    for skip in (False, True):
                        seen.update(dict.fromkeys(self.stem_blocks(r, w0, w1, skip)[0]))
            seen.update(dict.fromkeys(block for *_, block in self.stage_blocks(r)))
            side = self.head_side(r)
            for chs in self.stage_widths(self.n_stages - 1):
                seen.update(dict.fromkeys(self.head_blocks(side, chs)))
        return list(seen)

    def active_mask(self, d: np.ndarray) -> np.ndarray:
        """Which block slots a population runs: (n, n_slots) bool for its depth genes ``d`` (n, 1 + n_stages),
        True where slot ``j`` of stage ``s`` has ``j < base_depths[s] + d[1 + s]``."""
        return active_mask(np.asarray(d)[:, 1:] + np.asarray(self.base_depths), self.slots_per_stage)

    def sample_archs(self, n: int, rng: np.random.Generator,
                     resolutions: Sequence[int] | None = None) -> list[ResNetSubnet]:
        """``n`` random subnets drawn as OFA draws them (stem kept or skipped, every other entry uniform)."""
        res = np.asarray(self.resolutions if resolutions is None else resolutions)
        out = []
        for _ in range(n):
            d = [int(rng.choice([min(self.depth_choices), self.max_depth]))]
            d += [int(v) for v in rng.choice(self.depth_choices, size=self.n_stages)]
            out.append(ResNetSubnet(
                d=tuple(d), e=tuple(float(v) for v in rng.choice(self.expand_choices, size=self.n_slots)),
                w=tuple(int(v) for v in rng.integers(0, len(self.width_choices), size=2 + self.n_stages)),
                r=int(rng.choice(res))))
        return out


def _values(space: ResNetSpace, name: str, value: Any, n: int, choices: Sequence[float]) -> tuple[float, ...]:
    """``value`` as ``n`` entries, each one of ``choices`` (floats compared with a tolerance: 0.35 read as text)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ValueError(f"subnet {name} must be a list of {n} numbers, got {quoted(value)}")
    if len(value) != n:
        raise ValueError(f"subnet {name} must have {n} entries for {space.name} (its arch: {space.arch_shape}), "
                         f"got {len(value)}")
    out = []
    for i, v in enumerate(value):
        match = matching_choice(v, choices)
        if match is None:
            raise ValueError(f"subnet {name}[{i}] = {quoted(v)} is not one of {list(choices)} in {space.name}")
        out.append(match)
    return tuple(out)
