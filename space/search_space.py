"""The OFA-MobileNetV3 search space: widths, stage rules, and the subnet → blocks decomposition."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
import numpy as np

from space.batch import Genome, SubnetBatch
from space.block import Block
from space.subnet import ArchLike, Subnet

__all__ = ["SE_REDUCTION", "SearchSpace", "active_mask", "describe_resolutions", "make_divisible", "se_mid_chs", "MIN_RESOLUTION", "MAX_RESOLUTION"]

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


def active_mask(d: np.ndarray, max_depth: int) -> np.ndarray:
    """Which slots a population runs: (n, n_stages * max_depth) bool, True where slot
    ``stage * max_depth + j`` has ``j < d[stage]``, for stage depths ``d`` (n, n_stages)."""
    d = np.asarray(d)
    return np.repeat(d, max_depth, axis=1) > _slot_positions(d.shape[1], max_depth)


@functools.lru_cache(maxsize=8)
def _slot_positions(n_stages: int, max_depth: int) -> np.ndarray:
    """Each slot's position in its stage (read-only; built once, the search asks thousands of times)."""
    pos = np.tile(np.arange(max_depth), n_stages)
    pos.setflags(write=False)
    return pos


@dataclass(frozen=True)
class SearchSpace:
    """An OFA-MobileNetV3 elastic space at one width multiplier."""

    name: str  # registry name, e.g. "ofa-mbv3-w1.2"
    width_mult: float  # 1.0 or 1.2
    first_conv_chs: int  # stem output channels
    first_block_chs: int  # the fixed expand-1 block's output channels
    stage_chs: tuple[int, ...]  # output channels of the five elastic stages
    final_expand_chs: int  # 1x1 conv after the last stage
    feature_mix_chs: int  # 1x1 conv after global pooling
    n_classes: int = 1000
    stage_strides: tuple[int, ...] = (2, 2, 2, 1, 2)
    stage_acts: tuple[str, ...] = ("relu", "relu", "h_swish", "h_swish", "h_swish")
    stage_se: tuple[bool, ...] = (False, True, False, True, True)
    ks_choices: tuple[int, ...] = (3, 5, 7)
    expand_choices: tuple[int, ...] = (3, 4, 6)
    depth_choices: tuple[int, ...] = (2, 3, 4)
    resolutions: tuple[int, ...] = field(default_factory=lambda: tuple(range(128, 225, 4)))

    @property
    def n_stages(self) -> int:
        return len(self.stage_chs)

    @property
    def max_depth(self) -> int:
        return max(self.depth_choices)

    @property
    def n_slots(self) -> int:
        return self.n_stages * self.max_depth

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
                raise ValueError(f"subnet {name} must have {n} entries for {self.name}, got {len(values)}")
            for i, v in enumerate(values):
                if v not in choices:
                    raise ValueError(f"subnet {name}[{i}] = {v} is not one of {list(choices)} in {self.name}")
        if not MIN_RESOLUTION <= sub.r <= MAX_RESOLUTION:
            raise ValueError(f"subnet r = {sub.r} is out of range [{MIN_RESOLUTION}, {MAX_RESOLUTION}]")
        return sub

    def active_slots(self, arch: ArchLike | Subnet) -> list[int]:
        """Slot indices a subnet runs (stage * max_depth + j for j < d[stage])."""
        sub = self.validate(arch)
        return [s * self.max_depth + j for s in range(self.n_stages) for j in range(sub.d[s])]

    # -- blocks -------------------------------------------------------------------------
    def stem_blocks(self, resolution: int) -> tuple[list[Block], int]:
        """The stem (first conv + fixed first block) at ``resolution`` and the side after it."""
        stem = Block.first_conv(resolution, self.first_conv_chs)
        side = stem.out_hw
        first = Block.mbconv(side, self.first_conv_chs, self.first_block_chs, self.first_conv_chs,
                             kernel=3, stride=1, skip=self.first_conv_chs == self.first_block_chs,
                             se=False, act="relu")
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
            slots += [(stage, j, in_side if j == 0 else side) for j in range(self.max_depth)]
        return slots, side

    def head_blocks(self, side: int) -> list[Block]:
        """Final expand, pool, feature mix and classifier after the last stage at ``side``."""
        last = self.stage_chs[-1]
        return [
            Block.fixed("final_expand", side, last, side, self.final_expand_chs),
            Block.fixed("avgpool", side, self.final_expand_chs, 1, self.final_expand_chs),
            Block.fixed("feature_mix", 1, self.final_expand_chs, 1, self.feature_mix_chs),
            Block.fixed("classifier", 1, self.feature_mix_chs, 1, self.n_classes),
        ]

    def blocks(self, arch: ArchLike | Subnet) -> list[Block]:
        """The ordered blocks a subnet runs, exactly as OFA's LUT counts them."""
        sub = self.validate(arch)
        out, side = self.stem_blocks(sub.r)
        for stage in range(self.n_stages):
            for j in range(sub.d[stage]):
                slot = stage * self.max_depth + j
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
        return active_mask(d, self.max_depth)

    def additive_range(self, fixed: np.ndarray, slot: np.ndarray) -> tuple[float, float]:
        """Exact (min, max) over every subnet of a cost ``fixed[r] + sum over active slots of slot[r, slot, ks, e]``.

        Slots are independent given the depths, so each stage's extreme is the best depth's sum
        of per-slot extremes.

        Args:
            fixed: (R,) per-resolution cost.
            slot: (R, n_slots, n_ks, n_e) per-slot costs.
        """
        depths = np.asarray(self.depth_choices)
        per = np.asarray(slot).reshape(len(fixed), self.n_stages, self.max_depth, -1)
        lo = np.cumsum(per.min(axis=3), axis=2)[:, :, depths - 1].min(axis=2).sum(axis=1)
        hi = np.cumsum(per.max(axis=3), axis=2)[:, :, depths - 1].max(axis=2).sum(axis=1)
        return float((fixed + lo).min()), float((fixed + hi).max())

    # -- populations ----------------------------------------------------------------------
    def sample(self, n: int, rng: np.random.Generator, resolutions: tuple[int, ...] | list[int] | None = None) -> SubnetBatch:
        """``n`` uniformly random subnets as integer arrays (the space's resolutions unless given).

        The one way to draw subnets; mutation and crossover work on :class:`space.Genome` rows.
        """
        genome = Genome(self, resolutions)
        return genome.to_batch(genome.sample(n, rng))
