"""Inverted-residual search spaces (OFA's MobileNetV3 and ProxylessNAS families, and users' own of that shape):
widths, stage rules, and the subnet → blocks decomposition.

A space is data: ``space.spec`` builds one from a space file (the built-in ones are ``space/data/*.json``).
Its subnets are OFA's arch dicts ``{"ks": [n_slots], "e": [n_slots], "d": [n_stages], "r": int}``: a
kernel and expand ratio per block slot, a depth per stage. Stages may have fewer slots than the largest
depth (ProxylessNAS's last stage has one): such a stage runs ``min(d, slots)`` blocks, as OFA clips it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
import numpy as np

from space.batch import Genome, SubnetBatch
from space.block import Block
from space.subnet import ArchLike, Subnet

__all__ = ["SE_REDUCTION", "SearchSpace", "active_mask", "describe_resolutions", "make_divisible", "se_mid_chs",
           "stage_depth_choices", "MIN_RESOLUTION", "MAX_RESOLUTION"]

# Resolutions a subnet may be *evaluated* at (imported LUTs go from 96 to 256); sampling uses
# ``SearchSpace.resolutions``.
MIN_RESOLUTION = 8  # small-data supernets (e.g. digits) run at 12-48 px
MAX_RESOLUTION = 1024


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``value`` to a multiple of ``divisor``, never more than 10% below it (MobileNet's rule)."""
    min_value = divisor if min_value is None else min_value
    new_value = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new_value < 0.9 * value:
        new_value += divisor
    return new_value


#: OFA's squeeze-excite squeezes its channels by this factor (then rounds to a multiple of 8).
SE_REDUCTION = 4


def se_mid_chs(chs: int) -> int:
    """Squeezed channels of OFA's squeeze-excite on ``chs`` channels."""
    return make_divisible(chs // SE_REDUCTION, 8)


def describe_resolutions(values: Iterable[int]) -> str:
    """A resolution list for messages: ``128..224 step 4`` when evenly spaced, else ``160, 176, 224``."""
    vals = sorted({int(v) for v in values})
    if not vals:
        return "none"
    steps = {b - a for a, b in zip(vals, vals[1:])}
    if len(vals) > 2 and len(steps) == 1:
        return f"{vals[0]}..{vals[-1]} step {steps.pop()}"
    return ", ".join(map(str, vals))


def active_mask(d: np.ndarray, slots: int | tuple[int, ...]) -> np.ndarray:
    """Which slots a population runs: (n, n_slots) bool, True where slot ``j`` of a stage has ``j < d[stage]``,
    for stage depths ``d`` (n, n_stages) and ``slots`` per stage (an int: every stage has that many)."""
    d = np.asarray(d)
    per_stage = (slots,) * d.shape[1] if isinstance(slots, (int, np.integer)) else tuple(slots)
    return np.repeat(d, per_stage, axis=1) > _slot_positions(per_stage)


def stage_depth_choices(depth_choices: tuple[int, ...], slots: int) -> tuple[int, ...]:
    """Depths a stage with ``slots`` block slots may take: ``depth_choices``, and in a stage with fewer slots
    also its slot count (every depth runs all of its slots there, as OFA clips it)."""
    if slots >= max(depth_choices):
        return depth_choices
    return tuple(sorted({*depth_choices, slots}))


@functools.lru_cache(maxsize=8)
def _slot_positions(per_stage: tuple[int, ...]) -> np.ndarray:
    """Each slot's position in its stage (read-only; built once, the search asks thousands of times)."""
    pos = np.concatenate([np.arange(n) for n in per_stage])
    pos.setflags(write=False)
    return pos


@dataclass(frozen=True)
class SearchSpace:
    """An elastic inverted-residual space at one width multiplier (defaults: OFA-MobileNetV3's rules).

    Blocks: the first conv, a fixed first block (expand 1), the elastic stages' slots, then the head: a
    1x1 conv-BN-act on the last feature map (``final_expand``; ProxylessNAS's "feature mix"), and either
    global pooling, a 1x1 conv without BN (``feature_mix``) and the classifier (MobileNetV3), or, when
    ``feature_mix_chs`` is 0, a classifier that pools (ProxylessNAS).
    """

    name: str  # registry name, e.g. "ofa-mbv3-w1.2"
    width_mult: float  # 1.0 or 1.2
    first_conv_chs: int  # stem output channels
    first_block_chs: int  # the fixed expand-1 block's output channels
    stage_chs: tuple[int, ...]  # output channels of the elastic stages
    final_expand_chs: int  # 1x1 conv after the last stage
    feature_mix_chs: int  # 1x1 conv after global pooling (0: none, the classifier pools)
    n_classes: int = 1000
    stage_strides: tuple[int, ...] = (2, 2, 2, 1, 2)
    stage_acts: tuple[str, ...] = ("relu", "relu", "h_swish", "h_swish", "h_swish")
    stage_se: tuple[bool, ...] = (False, True, False, True, True)
    ks_choices: tuple[int, ...] = (3, 5, 7)
    expand_choices: tuple[int, ...] = (3, 4, 6)
    depth_choices: tuple[int, ...] = (2, 3, 4)
    resolutions: tuple[int, ...] = field(default_factory=lambda: tuple(range(128, 225, 4)))
    family: str = "ofa-mbv3"  # the family the space belongs to (names its supernet and key grammar)
    stage_slots: tuple[int, ...] = ()  # block slots per stage (empty: max(depth_choices) each)
    stem_act: str = "h_swish"  # first conv's activation
    first_block_act: str = "relu"  # the fixed first block's activation
    first_block_skip: bool | None = None  # its identity skip (None: when its input and output widths agree)
    head_act: str = "h_swish"  # final_expand's (and feature_mix's) activation
    base_widths: tuple[int, ...] = ()  # the space file's widths at multiplier 1.0 (stem, first block, stages, head)

    @property
    def n_stages(self) -> int:
        return len(self.stage_chs)

    @property
    def max_depth(self) -> int:
        return max(self.depth_choices)

    @property
    def slots_per_stage(self) -> tuple[int, ...]:
        """Block slots of each stage."""
        return self.stage_slots or (self.max_depth,) * self.n_stages

    @property
    def n_slots(self) -> int:
        return sum(self.slots_per_stage)

    @property
    def arch_shape(self) -> str:
        """The lengths of this space's arch dict, for messages: ``ks 20, e 20, d 5 and r``."""
        return f"ks {self.n_slots}, e {self.n_slots}, d {self.n_stages} and r"

    @property
    def uniform_stages(self) -> bool:
        """Whether every stage has ``max_depth`` slots (slot ``stage * max_depth + j``)."""
        return all(n == self.max_depth for n in self.slots_per_stage)

    def slot_index(self, stage: int, j: int) -> int:
        """Index of slot ``j`` of ``stage`` among all slots."""
        return sum(self.slots_per_stage[:stage]) + j

    def stage_depth_choices(self, stage: int) -> tuple[int, ...]:
        """Depths ``d[stage]`` may take: see :func:`stage_depth_choices`."""
        return stage_depth_choices(self.depth_choices, self.slots_per_stage[stage])

    @property
    def fixed_acts(self) -> dict[str, str]:
        """Activations of the kinds whose keys do not name one (for :meth:`Block.from_key`)."""
        return {"first_conv": self.stem_act, "final_expand": self.head_act}

    def block_from_key(self, key: str) -> Block:
        """The block of this space a key names (``space.block_from_key(b.key) == b``).

        Raises:
            ValueError: not a block key.
        """
        return Block.from_key(key, self.fixed_acts)

    # -- subnets ------------------------------------------------------------------------
    def validate(self, arch: ArchLike | Subnet) -> Subnet:
        """Check an arch dict against this space and return it as a :class:`Subnet`.

        Raises:
            ValueError: naming the bad field, its value and the valid choices.
        """
        sub = Subnet.parse(arch)
        for name, values, n, choices in (
            ("ks", sub.ks, self.n_slots, self.ks_choices),
            ("e", sub.e, self.n_slots, self.expand_choices),
            ("d", sub.d, self.n_stages, self.depth_choices),
        ):
            if len(values) != n:
                raise ValueError(f"subnet {name} must have {n} entries for {self.name} (its arch: {self.arch_shape}), "
                                 f"got {len(values)}")
            for i, v in enumerate(values):
                allowed = self.stage_depth_choices(i) if name == "d" else choices
                if v not in allowed:
                    raise ValueError(f"subnet {name}[{i}] = {v} is not one of {list(allowed)} in {self.name}")
        if not MIN_RESOLUTION <= sub.r <= MAX_RESOLUTION:
            raise ValueError(f"subnet r = {sub.r} is out of range [{MIN_RESOLUTION}, {MAX_RESOLUTION}]")
        return sub

    def active_slots(self, arch: ArchLike | Subnet) -> list[int]:
        """Slot indices a subnet runs (slot j of each stage for j < d[stage])."""
        sub = self.validate(arch)
        return [self.slot_index(s, j) for s in range(self.n_stages) for j in range(self._depth(sub, s))]

    def _depth(self, sub: Subnet, stage: int) -> int:
        return min(sub.d[stage], self.slots_per_stage[stage])

    # -- blocks -------------------------------------------------------------------------
    def stem_blocks(self, resolution: int) -> tuple[list[Block], int]:
        """The stem (first conv + fixed first block) at ``resolution`` and the side after it."""
        stem = Block.first_conv(resolution, self.first_conv_chs, act=self.stem_act)
        side = stem.out_hw
        skip = self.first_conv_chs == self.first_block_chs if self.first_block_skip is None else self.first_block_skip
        first = Block.mbconv(side, self.first_conv_chs, self.first_block_chs, self.first_conv_chs,
                             kernel=3, stride=1, skip=skip, se=False, act=self.first_block_act)
        return [stem, first], first.out_hw

    def slot_block(self, stage: int, j: int, in_hw: int, kernel: int, expand: int) -> Block:
        """The block slot ``j`` of ``stage`` runs for a given input side, kernel and expand ratio."""
        if j > 0:
            in_chs = self.stage_chs[stage]
        else:
            in_chs = self.stage_chs[stage - 1] if stage > 0 else self.first_block_chs
        stride = self.stage_strides[stage] if j == 0 else 1
        return Block.mbconv(in_hw, in_chs, self.stage_chs[stage], round(in_chs * expand), kernel=kernel,
                            stride=stride, skip=j > 0, se=self.stage_se[stage], act=self.stage_acts[stage])

    def stage_input_sides(self, resolution: int) -> list[int]:
        """Input side of each stage's first block at ``resolution``."""
        _, side = self.stem_blocks(resolution)
        sides = []
        for stride in self.stage_strides:
            sides.append(side)
            side = (side - 1) // stride + 1
        return sides

    def slot_sides(self, resolution: int) -> tuple[list[tuple[int, int, int]], int]:
        """``(stage, j, input side)`` of every slot at ``resolution``, and the side after the last stage."""
        slots, side = [], 0
        for stage, in_side in enumerate(self.stage_input_sides(resolution)):
            side = (in_side - 1) // self.stage_strides[stage] + 1
            slots += [(stage, j, in_side if j == 0 else side) for j in range(self.slots_per_stage[stage])]
        return slots, side

    def head_blocks(self, side: int) -> list[Block]:
        """The head after the last stage at ``side``: final expand, then pool, feature mix and classifier
        (or a classifier that pools, when the space has no feature mix)."""
        final = Block.fixed("final_expand", side, self.stage_chs[-1], side, self.final_expand_chs, act=self.head_act)
        if not self.feature_mix_chs:
            return [final, Block.fixed("classifier", side, self.final_expand_chs, 1, self.n_classes)]
        return [
            final,
            Block.fixed("avgpool", side, self.final_expand_chs, 1, self.final_expand_chs),
            Block.fixed("feature_mix", 1, self.final_expand_chs, 1, self.feature_mix_chs),
            Block.fixed("classifier", 1, self.feature_mix_chs, 1, self.n_classes),
        ]

    @property
    def fixed_kinds(self) -> tuple[str, ...]:
        """Kinds of the blocks outside the elastic slots, in run order (the fixed first block is ``first_block``)."""
        head = ("final_expand", "classifier") if not self.feature_mix_chs else (
            "final_expand", "avgpool", "feature_mix", "classifier")
        return ("first_conv", "first_block", *head)

    def blocks(self, arch: ArchLike | Subnet) -> list[Block]:
        """The ordered blocks a subnet runs, exactly as OFA's LUT counts them."""
        sub = self.validate(arch)
        out, side = self.stem_blocks(sub.r)
        for stage in range(self.n_stages):
            for j in range(self._depth(sub, stage)):
                slot = self.slot_index(stage, j)
                block = self.slot_block(stage, j, side, sub.ks[slot], sub.e[slot])
                out.append(block)
                side = block.out_hw
        out.extend(self.head_blocks(side))
        return out

    def unique_blocks(self, resolutions: int | list[int] | tuple[int, ...]) -> list[Block]:
        """Every distinct block any subnet of this space can run at ``resolutions``, in run order."""
        if isinstance(resolutions, int):
            resolutions = [resolutions]
        seen: dict[Block, None] = {}
        for r in resolutions:
            stem, _ = self.stem_blocks(r)
            seen.update(dict.fromkeys(stem))
            slots, last_side = self.slot_sides(r)
            for stage, j, side in slots:
                for k in self.ks_choices:
                    for e in self.expand_choices:
                        seen[self.slot_block(stage, j, side, k, e)] = None
            seen.update(dict.fromkeys(self.head_blocks(last_side)))
        return list(seen)

    # -- per-slot costs ------------------------------------------------------------------
    def active_mask(self, d: np.ndarray) -> np.ndarray:
        """:meth:`active_slots` for a population: see :func:`active_mask`."""
        return active_mask(d, self.slots_per_stage)

    def additive_range(self, fixed: np.ndarray, slot: np.ndarray) -> tuple[float, float]:
        """Exact (min, max) over every subnet of a cost ``fixed[r] + sum over active slots of slot[r, slot, ks, e]``.

        Slots are independent given the depths, so each stage's extreme is the best depth's sum
        of per-slot extremes.

        Args:
            fixed: (R,) per-resolution cost.
            slot: (R, n_slots, n_ks, n_e) per-slot costs.
        """
        flat = np.asarray(slot).reshape(len(fixed), self.n_slots, -1)
        lo = np.zeros(len(fixed))
        hi = np.zeros(len(fixed))
        start = 0
        for stage, n in enumerate(self.slots_per_stage):
            per = flat[:, start:start + n]
            runs = np.minimum(np.asarray(self.stage_depth_choices(stage)), n) - 1  # a stage runs min(d, slots)
            lo += np.cumsum(per.min(axis=2), axis=1)[:, runs].min(axis=1)
            hi += np.cumsum(per.max(axis=2), axis=1)[:, runs].max(axis=1)
            start += n
        return float((fixed + lo).min()), float((fixed + hi).max())

    # -- populations ----------------------------------------------------------------------
    def sample(self, n: int, rng: np.random.Generator, resolutions: tuple[int, ...] | list[int] | None = None) -> SubnetBatch:
        """``n`` uniformly random subnets as integer arrays (the space's resolutions unless given).

        The one way to draw subnets; mutation and crossover work on :class:`space.Genome` rows.
        """
        genome = Genome(self, resolutions)
        return genome.to_batch(genome.sample(n, rng))
