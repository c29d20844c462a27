"""MACs and parameter counts of subnets, vectorized over populations.

A subnet's MACs and parameters are sums of per-block terms, and each elastic slot's block
depends only on the slot, its kernel, its expand ratio and the resolution. So both are
compiled once into tables (resolution × slot × kernel × expand) and a whole population is
priced with one gather, exactly like a latency LUT. Counting follows OFA's profiler:
convolutions and linear layers (squeeze-excite included) count their multiply-adds; batch
norm and activations count none; parameters include batch-norm scale and shift.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import numpy as np

from space import Block, ResNetSpace, SearchSpace, SubnetBatch, get_space
from space.batch import choice_index
from space.counts import block_macs, block_params

__all__ = ["AdditiveTable", "block_macs", "block_params", "macs_table", "params_table"]

logger = logging.getLogger(__name__)


class AdditiveTable:
    """A per-slot cost table: cost = fixed[r] + Σ over active slots of slot[r, slot, ks, e].

    Exposes the same cost-model interface as a compiled latency LUT: ``predict_batch``,
    ``resolutions`` and ``value_range``.

    Args:
        space: the search space the table prices.
        resolutions: the resolutions the table covers, ascending.
        fixed: per-resolution cost of the non-elastic blocks, shape (R,).
        slot: per-slot costs, shape (R, n_slots, n_ks, n_e).
        name: what the table prices, for messages (e.g. ``"macs"``).
    """

    def __init__(self, space: SearchSpace, resolutions: Iterable[int], fixed: np.ndarray, slot: np.ndarray,
                 name: str) -> None:
        self.space = space
        self.resolutions = tuple(int(r) for r in resolutions)
        self.name = name
        self._fixed = np.asarray(fixed, dtype=np.float64)
        self._slot = np.asarray(slot, dtype=np.float64)
        _, n_slots, n_k, n_e = self._slot.shape
        self._flat = self._slot.reshape(-1)
        self._r_index = choice_index(self.resolutions)
        self._k_index = choice_index(space.ks_choices)
        self._e_index = choice_index(space.expand_choices)
        self._slot_base = np.arange(n_slots, dtype=np.int64) * (n_k * n_e)

    def predict_batch(self, batch: SubnetBatch) -> np.ndarray:
        """The cost of every subnet in ``batch``, shape (n,).

        Raises:
            ValueError: a resolution the table does not cover.
        """
        r = np.asarray(batch.r)
        if r.size and (r.max() >= self._r_index.size or r.min() < 0 or np.any(self._r_index[r] < 0)):
            bad = sorted({int(v) for v in np.unique(r)} - set(self.resolutions))
            raise ValueError(f"{self.name} table has no resolution {bad}; covered: {list(self.resolutions)}")
        ri = self._r_index[r]
        n_slots = self._slot.shape[1]
        n_per_r = n_slots * self._slot.shape[2] * self._slot.shape[3]
        idx = (ri[:, None] * n_per_r + self._slot_base[None, :]
               + self._k_index[batch.ks] * self._slot.shape[3] + self._e_index[batch.e])
        active = self.space.active_mask(batch.d)
        return self._fixed[ri] + np.where(active, self._flat[idx], 0.0).sum(axis=1)

    def value_range(self, resolutions: Iterable[int] | None = None) -> tuple[float, float]:
        """Exact (min, max) cost over every subnet at ``resolutions`` (default: all covered)."""
        res = self.resolutions if resolutions is None else tuple(int(r) for r in resolutions)
        return self.space.additive_range(*self.additive_tables(res))

    def additive_tables(self, resolutions: Iterable[int]) -> tuple[np.ndarray, np.ndarray]:
        """``fixed`` (R,) and ``slot`` (R, n_slots, n_ks, n_e) at ``resolutions``, in this order
        (the same form as ``CompiledLut.additive_tables``)."""
        idx = []
        for r in resolutions:
            if not 0 <= int(r) < self._r_index.size or self._r_index[int(r)] < 0:
                raise ValueError(f"{self.name} table has no resolution {r}; covered: {list(self.resolutions)}")
            idx.append(int(self._r_index[int(r)]))
        return self._fixed[idx], self._slot[idx]


def _build(space: SearchSpace | ResNetSpace | str, resolutions: Iterable[int] | None, cost, name: str) -> Any:
    space = get_space(space)
    res = tuple(sorted(set(space.resolutions if resolutions is None else (int(r) for r in resolutions))))
    if isinstance(space, ResNetSpace):
        return _block_sum(space, res, cost)
    n_k, n_e = len(space.ks_choices), len(space.expand_choices)
    fixed = np.zeros(len(res))
    slot = np.zeros((len(res), space.n_slots, n_k, n_e))
    for i, r in enumerate(res):
        stem, _ = space.stem_blocks(r)
        slots, last = space.slot_sides(r)
        fixed[i] = sum(cost(b) for b in stem) + sum(cost(b) for b in space.head_blocks(last))
        for index, (stage, j, side) in enumerate(slots):
            for a, k in enumerate(space.ks_choices):
                for b, e in enumerate(space.expand_choices):
                    slot[i, index, a, b] = cost(space.slot_block(stage, j, side, k, e))
    return AdditiveTable(space, res, fixed, slot, name)


def _block_sum(space: ResNetSpace, res: tuple[int, ...], cost: Any) -> Any:
    """A ResNet space's counts, summed block by block like its latency LUT (a block's width depends on the
    previous stage's, so there is no per-slot table)."""
    from lut.blocksum import BlockSumLut

    return BlockSumLut.from_table({b.key: float(cost(b)) for b in space.unique_blocks(res)}, space, resolutions=res)


def macs_table(space: SearchSpace | ResNetSpace | str, resolutions: Iterable[int] | None = None) -> Any:
    """A table pricing subnets of ``space`` in multiply-adds (MACs): an :class:`AdditiveTable`, or for a
    ResNet space a block-sum table with the same interface.

    Args:
        space: a space name or SearchSpace.
        resolutions: resolutions to cover (default: the space's).
    """
    return _build(space, resolutions, block_macs, "macs")


def params_table(space: SearchSpace | ResNetSpace | str, resolutions: Iterable[int] | None = None) -> Any:
    """A table counting the parameters of subnets of ``space`` (independent of resolution; see :func:`macs_table`).

    Args:
        space: a space name or SearchSpace.
        resolutions: resolutions to cover (default: the space's).
    """
    return _build(space, resolutions, block_params, "params")
