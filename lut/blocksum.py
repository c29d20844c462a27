"""Pricing subnets block by block, for spaces whose subnets are not kernel/expand slots (ResNet50's).

A ResNet subnet's block at a slot depends on its stage's width and the previous stage's, so the
gather table of :class:`~lut.predict.CompiledLut` does not apply; here each subnet is decomposed
(``space.blocks``) and its blocks' latencies summed by key, the resolution's qualified rows first
(:mod:`lut.keys`). ``CompiledLut.from_table`` returns one of these for such a space, with the same
prediction methods.
"""

from __future__ import annotations

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

    @classmethod
    def from_table(cls, table: Mapping[str, float], space: Any, *, calibration: Calibration | None = None,
                   device: str | None = None, resolutions: Iterable[int] | None = None) -> BlockSumLut:
        """Compile ``{block_key: latency_ms}`` for a ResNet ``space`` (see ``CompiledLut.from_table``)."""
        if any(ms < 0 for ms in table.values()):
            raise ValueError("LUT has negative latencies; every block latency must be >= 0 ms")
        return cls(space, table, compile_resolutions(table, space, resolutions), calibration=calibration, device=device)

    def with_calibration(self, calibration: Calibration | None) -> BlockSumLut:
        """The same compiled LUT with another (or no) calibration attached."""
        return BlockSumLut(self.space, self._table, self.compiled_resolutions, calibration, self.device)

    # -- prediction ----------------------------------------------------------------------
    def predict(self, arch: Mapping[str, Any] | ResNetSubnet, calibrated: bool = True) -> float:  # type: ignore[override]
        """Predicted latency (ms) of one subnet (an arch dict or ResNetSubnet)."""
        return float(self.predict_many([arch], calibrated)[0])

    def predict_many(self, archs: Sequence[Mapping[str, Any] | ResNetSubnet], calibrated: bool = True) -> np.ndarray:
        """Predicted latencies (ms) of ``archs``.

        Raises:
            ValueError: an arch is not one of the space's.
            MissingBlocksError: a subnet needs blocks the LUT lacks; names the keys.
        """
        parts = self.components(archs)
        if not calibrated or self.calibration is None:
            return parts["raw_ms"]
        w = self.calibration.weights()
        out = np.full(len(parts["raw_ms"]), float(self.calibration.intercept_ms))
        for name, weight in w.items():
            if weight and name in parts:
                out += weight * parts[name]
        return out

    def predict_batch(self, batch: Any, calibrated: bool = True) -> np.ndarray:
        """Priced one subnet at a time: a sequence of arch dicts, as :meth:`predict_many`."""
        return self.predict_many(list(batch), calibrated)

    def components(self, batch: Any) -> dict[str, np.ndarray]:
        """Per-subnet latency parts (ms): ``fixed_ms`` (stem and classifier), ``stage1_ms`` .., ``raw_ms``, ``n_blocks``."""
        subs = [self.space.validate(a) for a in batch]
        n_stages = self.space.n_stages
        parts = {name: np.zeros(len(subs)) for name in ("fixed_ms", *(f"stage{s + 1}_ms" for s in range(n_stages)),
                                                         "raw_ms", "n_blocks")}
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


def _stem_resolutions(table: Mapping[str, float], space: ResNetSpace) -> set[int]:
    """Resolutions whose first stem conv (3 input channels, one of the space's stem widths) the table prices."""
    out = set()
    for key in table:
        if key.startswith("conv_bn_act-"):
            try:
                block = Block.from_key(key)
            except ValueError:
                continue
            if block.in_chs == 3 and block.out_chs in space.mid_stem_widths and MIN_RESOLUTION <= block.in_hw <= MAX_RESOLUTION:
                out.add(block.in_hw)
    return out
