"""Pricing a ResNet space's subnets (OFA's ResNet50 family) from a LUT, whole populations at once.

A ResNet block's key depends on its slot, the resolution, its expand ratio and its stage's width, and a
stage's first block also on the width it reads (the previous stage's, or the stem's); the stem's blocks
depend on two width genes and whether its middle conv runs, the classifier on the last stage's width.
:class:`BlockSumLut` indexes every such block once per resolution into gather tables:

- ``slot[r, slot, w_in, w_out, e]`` (``w_in`` matters only for a stage's first slot),
- ``stem[r, w0, w1, keeps_middle]`` and ``head[r, w_last]``,

so a population's latencies are a few advanced-indexing gathers and a masked row sum (slots beyond a
stage's depth weigh 0), equal to the sum of its blocks' latencies by key. Rows the tables cannot price (a
gene that is no choice, a resolution not compiled, a missing block) go through the per-subnet path
(:meth:`BlockSumLut.components_by_blocks`: decompose with ``space.blocks``, sum by key), which names the
bad value or the missing keys. ``CompiledLut.from_table`` returns one of these for a ResNet space.
"""

from __future__ import annotations

import copy
from collections import ChainMap
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from lut.errors import MissingBlocksError
from lut.predict import CompiledLut, _qualified_values, compile_resolutions
from space import Block, ResNetSpace, ResNetSubnet, describe_resolutions
from space.search_space import MAX_RESOLUTION, MIN_RESOLUTION

if TYPE_CHECKING:
    from lut.calibration import Calibration

__all__ = ["BlockSumLut"]


class BlockSumLut(CompiledLut):
    """A LUT compiled for a ResNet space: a subnet's latency is the sum of its blocks' latencies.

    ``predict_batch`` and ``components`` take a population as arrays (anything with ``d``, ``e``, ``w``
    and ``r``, e.g. ``search.genomes.ResNetBatch``) or as a sequence of arch dicts or ResNetSubnets.

    Attributes:
        space: the space.
        device: the device name the table came from (None for a plain dict).
        calibration: the calibration applied by ``calibrated=True`` predictions, or None.
        compiled_resolutions: the space's resolutions and every one whose stem the table prices.
        resolutions: those at which the table prices every block a subnet may run.
    """

    def __init__(self, space: ResNetSpace, table: Mapping[str, float], compiled_resolutions: Sequence[int],
                 calibration: Calibration | None = None, device: str | None = None) -> None:
        """Use :meth:`from_table`."""
        self.space = space  # type: ignore[assignment]
        self.device = device
        self.calibration = calibration
        self.compiled_resolutions = tuple(int(r) for r in compiled_resolutions)
        self._table = dict(table)
        self._at_resolution = _qualified_values(self._table)
        self.resolutions = tuple(r for r in self.compiled_resolutions if not self.missing_keys(r))
        self._index = _GatherIndex(space, self._table, self._at_resolution, self.compiled_resolutions)

    @classmethod
    def from_table(cls, table: Mapping[str, float], space: Any, *, calibration: Calibration | None = None,
                   device: str | None = None, resolutions: Iterable[int] | None = None) -> BlockSumLut:
        """Compile ``{block_key: latency_ms}`` for a ResNet ``space`` (see ``CompiledLut.from_table``)."""
        if any(ms < 0 for ms in table.values()):
            raise ValueError("LUT has negative latencies; every block latency must be >= 0 ms")
        return cls(space, table, compile_resolutions(table, space, resolutions), calibration=calibration, device=device)

    def with_calibration(self, calibration: Calibration | None) -> BlockSumLut:
        """The same compiled LUT with another (or no) calibration attached (sharing the gather tables)."""
        out = copy.copy(self)
        out.calibration = calibration
        return out

    # -- prediction ----------------------------------------------------------------------
    def predict(self, arch: Mapping[str, Any] | ResNetSubnet, calibrated: bool = True) -> float:  # type: ignore[override]
        """Predicted latency (ms) of one subnet (an arch dict or ResNetSubnet)."""
        return float(self.predict_batch([arch], calibrated)[0])

    def predict_many(self, archs: Sequence[Mapping[str, Any] | ResNetSubnet], calibrated: bool = True) -> np.ndarray:
        """Predicted latencies (ms) of ``archs`` (see :meth:`predict_batch`)."""
        return self.predict_batch(archs, calibrated)

    def predict_batch(self, batch: Any, calibrated: bool = True) -> np.ndarray:
        """Predicted latencies (ms) of a population (arrays ``d``, ``e``, ``w``, ``r``, or arch dicts).

        Raises:
            ValueError: a subnet is not one of the space's.
            MissingBlocksError: a subnet needs blocks the LUT lacks; names the keys.
        """
        parts = self.components(batch)
        if not calibrated or self.calibration is None:
            return parts["raw_ms"]
        self.calibration.check_stages(self.space.n_stages, self.space.name)
        out = np.full(len(parts["raw_ms"]), float(self.calibration.intercept_ms))
        for name, weight in self.calibration.weights().items():
            if weight:
                out += weight * parts[name]
        return out

    def components(self, batch: Any) -> dict[str, np.ndarray]:
        """Per-subnet latency parts (ms): ``fixed_ms`` (stem and classifier), ``stage1_ms`` .., ``raw_ms``, ``n_blocks``."""
        d, e, w, r = self._arrays(batch)
        parts, ok = self._index.components(d, e, w, r)
        bad = np.flatnonzero(~ok)
        if len(bad):  # names the bad gene or the missing keys, as pricing block by block does
            slow = self.components_by_blocks(
                [ResNetSubnet(d=tuple(int(x) for x in d[i]), e=tuple(float(x) for x in e[i]),
                              w=tuple(int(x) for x in w[i]), r=int(r[i])) for i in bad])
            for name, values in parts.items():
                values[bad] = slow[name]
        return parts

    def components_by_blocks(self, archs: Sequence[Mapping[str, Any] | ResNetSubnet]) -> dict[str, np.ndarray]:
        """:meth:`components` one subnet at a time: each decomposed into blocks (``space.blocks``) and summed by key.

        The reference the gathered tables reproduce; slow (a population of 10,000 takes seconds).
        """
        subs = [self.space.validate(a) for a in archs]
        parts = {name: np.zeros(len(subs)) for name in self._part_names()}
        for i, sub in enumerate(subs):
            blocks = self.space.blocks(sub)
            latencies = np.asarray(self.block_latencies(blocks, sub.r))
            # Stem blocks, then each stage's base + extra bottlenecks, then the classifier.
            n_stem = len(blocks) - 1 - sum(b + x for b, x in zip(self.space.base_depths, sub.d[1:]))
            start = n_stem
            for s, (base, extra) in enumerate(zip(self.space.base_depths, sub.d[1:])):
                parts[f"stage{s + 1}_ms"][i] = latencies[start:start + base + extra].sum()
                start += base + extra
            parts["fixed_ms"][i] = latencies[:n_stem].sum() + latencies[-1]
            parts["raw_ms"][i] = latencies.sum()
            parts["n_blocks"][i] = len(blocks)
        return parts

    def _part_names(self) -> tuple[str, ...]:
        return ("fixed_ms", *(f"stage{s + 1}_ms" for s in range(self.space.n_stages)), "raw_ms", "n_blocks")

    def _arrays(self, batch: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``d``, ``e``, ``w``, ``r`` of a population (arch dicts and subnets are validated first)."""
        n_d, n_e, n_w = 1 + self.space.n_stages, self.space.n_slots, 2 + self.space.n_stages  # genes per subnet
        if all(hasattr(batch, f) for f in ("d", "e", "w", "r")) and not isinstance(batch, Mapping):
            d, e, w, r = (np.asarray(getattr(batch, f)) for f in ("d", "e", "w", "r"))
            if d.shape != (len(r), n_d) or e.shape != (len(r), n_e) or w.shape != (len(r), n_w) or r.ndim != 1:
                raise ValueError(f"subnet arrays d {d.shape}, e {e.shape}, w {w.shape}, r {r.shape} do not fit "
                                 f"{self.space.name} (d: {n_d}, e: {n_e}, w: {n_w} per subnet)")
            return d, e, w, r
        subs = [self.space.validate(a) for a in batch]
        if not subs:
            return (np.zeros((0, n_d), np.int64), np.zeros((0, n_e)), np.zeros((0, n_w), np.int64),
                    np.zeros(0, np.int64))
        return (np.array([s.d for s in subs], dtype=np.int64), np.array([s.e for s in subs], dtype=np.float64),
                np.array([s.w for s in subs], dtype=np.int64), np.array([s.r for s in subs], dtype=np.int64))

    # -- coverage ------------------------------------------------------------------------
    def missing_keys(self, resolution: int) -> list[str]:
        """Keys a subnet at ``resolution`` may need that the table lacks (sorted; empty when covered)."""
        at_r = self._at_resolution.get(int(resolution), {})
        keys = {b.key for b in self.space.unique_blocks(int(resolution))}
        return sorted(k for k in keys if k not in self._table and k not in at_r)

    def _res_index(self, resolution: int) -> int:
        if int(resolution) not in self.compiled_resolutions:
            raise MissingBlocksError(f"{self._who()} has no blocks at resolution {int(resolution)}; "
                                     f"fully covered: {describe_resolutions(self.resolutions)}")
        return self.compiled_resolutions.index(int(resolution))

    def value_range(self, resolutions: Iterable[int] | None = None, calibrated: bool = True) -> tuple[float, float]:
        """(min_ms, max_ms) of raw predictions over the space's extreme subnets (every entry smallest or largest)."""
        res = self.resolutions if resolutions is None else tuple(int(r) for r in resolutions)
        if not res:
            raise MissingBlocksError(f"{self._who()} covers no resolution fully")
        sp = self.space
        n_w = len(sp.width_choices)
        lo = [{"d": [min(sp.depth_choices)] * (1 + sp.n_stages), "e": [min(sp.expand_choices)] * sp.n_slots,
               "w": [0] * (2 + sp.n_stages), "r": r} for r in res]
        hi = [{"d": [sp.max_depth] * (1 + sp.n_stages), "e": [max(sp.expand_choices)] * sp.n_slots,
               "w": [n_w - 1] * (2 + sp.n_stages), "r": r} for r in res]
        return float(self.predict_many(lo, calibrated).min()), float(self.predict_many(hi, calibrated).max())

    def __repr__(self) -> str:
        return f"BlockSumLut({self.device!r}, {self.space.name}, resolutions {describe_resolutions(self.resolutions)})"


class _GatherIndex:
    """Every block a ResNet subnet may run, per compiled resolution, as gather tables (NaN: not in the LUT)."""

    def __init__(self, space: ResNetSpace, table: Mapping[str, float], at_resolution: Mapping[int, Mapping[str, float]],
                 resolutions: Sequence[int]) -> None:
        self.space = space
        n_w, n_e, n_slots = len(space.width_choices), len(space.expand_choices), space.n_slots
        self._depth_ok = np.zeros(max(space.depth_choices) + 1, dtype=bool)
        self._depth_ok[list(space.depth_choices)] = True
        self._expand = np.asarray(space.expand_choices, dtype=np.float64)
        self._r_index = np.full(MAX_RESOLUTION + 1, -1, dtype=np.int64)
        self._r_index[list(resolutions)] = np.arange(len(resolutions))
        self._stage_starts = np.cumsum((0, *space.slots_per_stage[:-1]))
        # Per slot, the w gene columns of its output width (its stage's, 2 + stage) and of its input width: a
        # stage's first slot reads the column before (the stem's output width, or the previous stage's).
        self._out_col = 2 + np.repeat(np.arange(space.n_stages), space.slots_per_stage)
        self._in_col = self._out_col.copy()
        self._in_col[self._stage_starts] -= 1
        # Every stage runs its first slot (base depth >= 1), so a stage's first block reads the previous stage.
        self.usable = min(space.base_depths) >= 1
        slot = np.full((len(resolutions), n_slots, n_w, n_w, n_e), np.nan)
        stem = np.full((len(resolutions), n_w, n_w, 2), np.nan)
        head = np.full((len(resolutions), n_w), np.nan)
        for i, r in enumerate(resolutions):
            at_r = ChainMap(dict(at_resolution.get(r, {})), table)
            self._fill(int(r), at_r, slot[i], stem[i], head[i])
        self._slot = slot.reshape(-1)
        self._slot_strides = np.array(slot.strides) // slot.itemsize
        self._stem, self._head = stem, head

    def _fill(self, r: int, at_r: Mapping[str, float], slot: np.ndarray, stem: np.ndarray, head: np.ndarray) -> None:
        """One resolution's tables (in place)."""
        space = self.space
        n_w = len(space.width_choices)

        def price(blocks: Sequence[Block]) -> float:
            return sum(at_r.get(b.key, np.nan) for b in blocks)  # NaN when one is missing

        for w0 in range(n_w):
            for w1 in range(n_w):
                for keep in (0, 1):
                    stem[w0, w1, keep] = price(space.stem_blocks(r, w0, w1, skip_middle=not keep)[0])
        for stage, w_in, w_out, k, block in space.stage_blocks(r):
            first = self._stage_starts[stage]
            if w_in is not None:  # the stage's first slot
                slot[first, w_in, w_out, k] = price([block])
            else:  # its later slots, whatever the previous width
                slot[first + 1:first + space.slots_per_stage[stage], :, w_out, k] = price([block])
        side = space.head_side(r)
        for w_last, chs in enumerate(space.stage_widths(space.n_stages - 1)):
            head[w_last] = price(space.head_blocks(side, chs))

    def components(self, d: np.ndarray, e: np.ndarray, w: np.ndarray, r: np.ndarray
                   ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The parts of every row the tables price, and which rows those are (the others hold zeros)."""
        sp = self.space
        n = len(r)
        d = d.astype(np.int64, copy=False)
        w = w.astype(np.int64, copy=False)
        r = r.astype(np.int64, copy=False)
        ok = np.full(n, self.usable)
        ok &= (r >= MIN_RESOLUTION) & (r <= MAX_RESOLUTION)
        ri = self._r_index[np.clip(r, 0, MAX_RESOLUTION)]
        ok &= ri >= 0
        ok &= ((d >= 0) & (d < len(self._depth_ok))).all(axis=1)
        ok[ok] &= self._depth_ok[d[ok]].all(axis=1)
        ok &= ((w >= 0) & (w < len(sp.width_choices))).all(axis=1)
        e_idx = np.abs(e[..., None] - self._expand).argmin(axis=-1)
        ok &= np.isclose(self._expand[e_idx], e, rtol=1e-9, atol=1e-12).all(axis=1)
        # Rows that are not ok are priced with safe indices here, then replaced by the caller.
        ri, d, w, e_idx = (np.where(ok[:, None] if x.ndim == 2 else ok, x, 0) for x in (ri, d, w, e_idx))
        s_r, s_slot, s_in, s_out, s_e = self._slot_strides
        idx = (ri * s_r)[:, None] + np.arange(sp.n_slots) * s_slot
        idx += w[:, self._in_col] * s_in
        idx += w[:, self._out_col] * s_out
        idx += e_idx * s_e
        active = sp.active_mask(d)
        vals = np.where(active, self._slot[idx], 0.0)
        keep = (d[:, 0] == sp.max_depth).astype(np.int64)
        parts: dict[str, np.ndarray] = {}
        parts["fixed_ms"] = self._stem[ri, w[:, 0], w[:, 1], keep] + self._head[ri, w[:, 1 + sp.n_stages]]
        stage_ms = np.add.reduceat(vals, self._stage_starts, axis=1) if n else np.zeros((0, sp.n_stages))
        for s in range(sp.n_stages):
            parts[f"stage{s + 1}_ms"] = stage_ms[:, s]
        parts["raw_ms"] = stage_ms.sum(axis=1) + parts["fixed_ms"]
        parts["n_blocks"] = (active.sum(axis=1) + 4 + keep).astype(np.float64)  # 3 or 4 stem blocks, classifier
        ok &= np.isfinite(parts["raw_ms"])
        return parts, ok
