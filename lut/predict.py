"""Vectorized subnet-latency prediction: compile a LUT for a space once, then one gather-sum per population.

For every resolution the LUT can price, a subnet's latency is

    fixed[r] + sum over active slots (j < d[stage]) of T[r, slot, ks, e]

where ``fixed[r]`` prices the stem (first conv, fixed first block) and the head (final expand,
pool, feature mix, classifier; ``SearchSpace.fixed_kinds``), and ``T[r, slot]`` holds the 3x3 kernel-by-expand latencies of
the block a slot runs (which depends only on the slot's position and the resolution). All
resolutions are stacked into one flat array indexed by (resolution, slot, ks * e_span + e), so a
whole :class:`~space.SubnetBatch` is priced with one advanced-indexing gather and a row dot
product with the depth mask (slots beyond a stage's depth weigh 0). Populations are processed in
cache-sized chunks. This covers every inverted-residual space (MobileNetV3, ProxylessNAS, users' own);
a ResNet space's subnets are priced block by block (:mod:`lut.blocksum`), which ``from_table`` picks.
"""

from __future__ import annotations

import logging
from collections import ChainMap
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from lut.errors import MissingBlocksError
from lut.keys import RESOLUTION_QUALIFIER, split_row_key
from space import Block, SearchSpace, Subnet, SubnetBatch, describe_resolutions, get_space
from space.search_space import MAX_RESOLUTION, MIN_RESOLUTION

if TYPE_CHECKING:
    from lut.calibration import Calibration
    from lut.store import LutStore, StoredSetting

__all__ = ["CompiledLut", "predict", "FIXED_KINDS"]

logger = logging.getLogger(__name__)

# Blocks outside the elastic slots of an OFA-MobileNetV3 space, in run order (the fixed first block is an
# mbconv); other spaces name theirs in ``SearchSpace.fixed_kinds``.
FIXED_KINDS: tuple[str, ...] = ("first_conv", "first_block", "final_expand", "avgpool", "feature_mix", "classifier")
# Subnets priced per pass: keeps the index arrays cache-resident (~2x faster than one pass for 1M).
_CHUNK = 8192
# How many missing keys an error message lists before "and N more".
_MAX_KEYS_IN_MESSAGE = 8


class CompiledLut:
    """A LUT compiled for one search space: prices whole populations of subnets at once.

    Build with :meth:`from_table` (a ``{block_key: ms}`` dict) or :meth:`from_store`.

    Attributes:
        space: the search space the subnets come from.
        device: the device name the table came from (None for a plain dict).
        calibration: the calibration applied by ``calibrated=True`` predictions, or None.
        compiled_resolutions: every resolution with at least a stem price (some may lack blocks).
    """

    def __init__(self, space: SearchSpace, table: Mapping[str, float], compiled_resolutions: Sequence[int],
                 fixed_parts: np.ndarray, slot_table: np.ndarray, calibration: Calibration | None = None,
                 device: str | None = None) -> None:
        """Use :meth:`from_table`; this stores the compiled arrays."""
        self.space = space
        self.device = device
        self.calibration = calibration
        self.compiled_resolutions = tuple(int(r) for r in compiled_resolutions)
        self._table = dict(table)
        self._at_resolution = _qualified_values(self._table)  # r -> {block key: ms} timed for r (lut.keys)
        self._fixed_parts = fixed_parts  # (R, len(space.fixed_kinds)) ms, NaN where missing
        self._fixed = fixed_parts.sum(axis=1)  # (R,)
        self._slot_table = slot_table  # (R, n_slots, n_ks, n_e) ms, NaN where missing
        n_r, n_slots, n_k, n_e = slot_table.shape
        self._shape = (n_r, n_slots, n_k, n_e)
        # Resolution -> index into the stacked tables (-1: not compiled).
        self._r_index = np.full(MAX_RESOLUTION + 1, -1, dtype=np.int64)
        self._r_index[list(self.compiled_resolutions)] = np.arange(n_r)
        # Gene codes: (ks, e) -> ks * e_span + e. The gather table is indexed by
        # (resolution, slot, code); codes that are no choice hold -inf, missing blocks NaN.
        self._e_span = max(space.expand_choices) + 1
        self._n_codes = (max(space.ks_choices) + 1) * self._e_span
        by_code = np.full((n_r, n_slots, self._n_codes), -np.inf)
        for a, k in enumerate(space.ks_choices):
            for b, e in enumerate(space.expand_choices):
                by_code[:, :, k * self._e_span + e] = slot_table[:, :, a, b]
        self._by_code = by_code.reshape(-1)
        self._slot_base = (np.arange(n_slots, dtype=np.int64) * self._n_codes)[None, :]
        self._res_stride = n_slots * self._n_codes
        # Per stage, which depths are choices (a stage with fewer slots also takes its slot count).
        self._d_ok = np.zeros((space.n_stages, space.max_depth + 1), dtype=bool)
        for stage in range(space.n_stages):
            self._d_ok[stage, list(space.stage_depth_choices(stage))] = True
        self._stage_starts = np.cumsum((0, *space.slots_per_stage[:-1]))
        covered = ~np.isnan(self._fixed) & ~np.isnan(slot_table).reshape(n_r, -1).any(axis=1)
        self.resolutions = tuple(r for r, ok in zip(self.compiled_resolutions, covered) if ok)
        self._covered = covered

    # -- construction --------------------------------------------------------------------
    @classmethod
    def from_table(cls, table: Mapping[str, float], space: str | SearchSpace, *,
                   calibration: Calibration | None = None, device: str | None = None,
                   resolutions: Iterable[int] | None = None) -> CompiledLut:
        """Compile ``{block_key: latency_ms}`` for ``space``.

        Args:
            table: block key to latency (ms); keys of other spaces are ignored. A resolution-qualified
                key (:mod:`lut.keys`) prices its block for subnets of that resolution only.
            space: a space name or SearchSpace.
            calibration: optional correction applied by ``calibrated=True`` predictions.
            device: a name for messages.
            resolutions: the resolutions to compile (default: the space's resolutions plus every
                resolution whose stem the table prices).
        """
        space = get_space(space)
        if not isinstance(space, SearchSpace):
            from lut.blocksum import BlockSumLut

            return BlockSumLut.from_table(table, space, calibration=calibration, device=device, resolutions=resolutions)
        ordered = compile_resolutions(table, space, resolutions)
        fixed = np.full((len(ordered), len(space.fixed_kinds)), np.nan)
        slots = np.full((len(ordered), space.n_slots, len(space.ks_choices), len(space.expand_choices)), np.nan)
        at_resolution = _qualified_values(table)
        for i, r in enumerate(ordered):
            # A value timed for this very resolution (an OFA import's qualified row) wins over the plain key's.
            at_r = ChainMap(at_resolution[r], table) if r in at_resolution else table
            fixed_keys, slot_keys = _resolution_keys(space, r)
            fixed[i] = [at_r.get(k, np.nan) for k in fixed_keys]
            for slot, grid in enumerate(slot_keys):
                for a, row in enumerate(grid):
                    slots[i, slot, a] = [at_r.get(k, np.nan) for k in row]
        if np.any(fixed < 0) or np.any(slots < 0):
            raise ValueError("LUT has negative latencies; every block latency must be >= 0 ms")
        compiled = cls(space, table, ordered, fixed, slots, calibration=calibration, device=device)
        logger.debug("compiled LUT for %s: %d resolutions fully covered of %d", space.name,
                     len(compiled.resolutions), len(ordered))
        return compiled

    @classmethod
    def from_store(cls, store: LutStore, device: str | int | StoredSetting, space: str | SearchSpace, *,
                   calibrated: bool = True, stat: str = "median_ms") -> CompiledLut:
        """Compile a device's LUT from a store for ``space``.

        Args:
            store: The LUT store.
            device: A device name (must have one setting), an id, or a StoredSetting.
            space: A space name or SearchSpace.
            calibrated: Attach the newest calibration fitted for this space, when one exists.
            stat: Which statistic a block costs (default the median).
        """
        stored = store.setting(device)
        space = get_space(space)
        calibration = None
        docs = store.calibration_docs(stored.id, space.name) if calibrated else []
        if docs:  # the model's module (and pandas) load only for a calibrated LUT
            from lut.calibration import Calibration

            calibration = Calibration.from_json(docs[0])
        return cls.from_table(store.table(stored.id, stat), space, calibration=calibration, device=stored.name)

    def with_calibration(self, calibration: Calibration | None) -> CompiledLut:
        """The same compiled LUT with another (or no) calibration attached."""
        return CompiledLut(self.space, self._table, self.compiled_resolutions, self._fixed_parts,
                           self._slot_table, calibration=calibration, device=self.device)

    @property
    def table(self) -> dict[str, float]:
        """A copy of the ``{block_key: ms}`` table this was compiled from."""
        return dict(self._table)

    # -- prediction ----------------------------------------------------------------------
    def predict_batch(self, batch: SubnetBatch, calibrated: bool = True) -> np.ndarray:
        """Predicted latency (ms) of every subnet in ``batch``.

        Args:
            batch: the population (ks/e (n, n_slots), d (n, n_stages), r (n,)).
            calibrated: apply :attr:`calibration` when one is attached (raw block sums otherwise).

        Returns:
            A float64 array of shape (n,).

        Raises:
            ValueError: a gene value is not a choice of the space.
            MissingBlocksError: a subnet needs blocks the LUT lacks; names the keys.
        """
        n = len(batch)
        out = np.empty(n, dtype=np.float64)
        const, w_fixed, w_stage, w_blocks = self._linear_weights(calibrated)
        w_slot = np.repeat(w_stage, self.space.slots_per_stage)
        plain = const == 0.0 and w_fixed == 1.0 and w_blocks == 0.0 and np.all(w_slot == 1.0)
        for start in range(0, n, _CHUNK):
            chunk = _chunk(batch, start)
            ri, vals, mask = self._gather(chunk)
            if plain:
                part = np.einsum("ij,ij->i", vals, mask)
                part += self._fixed[ri]
            else:
                part = (np.einsum("ij,ij->i", vals, mask * w_slot) + w_fixed * self._fixed[ri] + const
                        + w_blocks * mask.sum(axis=1))
            bad = ~np.isfinite(part)
            if bad.any():  # an invalid gene, or NaN (missing) / -inf in a slot: redo those rows exactly
                active = self._active_values(vals[bad], mask[bad], chunk.take(np.flatnonzero(bad)))
                if plain:
                    part[bad] = active.sum(axis=1) + self._fixed[ri[bad]]
                else:
                    part[bad] = (active @ w_slot + w_fixed * self._fixed[ri[bad]] + const
                                 + w_blocks * mask[bad].sum(axis=1))
            out[start:start + _CHUNK] = part
        if np.isnan(out).any():
            self._raise_missing(batch, np.flatnonzero(np.isnan(out)))
        return out

    def predict(self, arch: Mapping[str, Any] | Subnet, calibrated: bool = True) -> float:
        """Predicted latency (ms) of one subnet (an arch dict or Subnet)."""
        sub = self.space.validate(arch)
        return float(self.predict_batch(SubnetBatch.from_subnets([sub]), calibrated=calibrated)[0])

    def predict_blocks(self, blocks: Sequence[Block], resolution: int | None = None) -> float:
        """Raw latency (ms) of an explicit block list (e.g. from ``space.read_net_config``): the sum by key.

        Args:
            blocks: the network's blocks in run order.
            resolution: the input resolution (default: the first conv's input side, when the list starts with it);
                values timed for it (resolution-qualified rows) win over the plain keys'.

        Raises:
            MissingBlocksError: naming the keys the table lacks.
        """
        return float(sum(self.block_latencies(blocks, resolution)))

    def block_latencies(self, blocks: Sequence[Block], resolution: int | None = None) -> list[float]:
        """Each block's latency (ms), priced as :meth:`predict_blocks` prices it.

        Raises:
            MissingBlocksError: naming the keys the table lacks.
        """
        if resolution is None and blocks and blocks[0].kind == "first_conv":
            resolution = blocks[0].in_hw
        at_r = ChainMap(self._at_resolution.get(int(resolution), {}) if resolution is not None else {}, self._table)
        keys = [b.key for b in blocks]
        missing = sorted({k for k in keys if k not in at_r})
        if missing:
            raise MissingBlocksError(
                f"{self._who()} has no latency for {len(missing)} block(s): {_list_keys(missing)}"
            )
        return [at_r[k] for k in keys]

    def components(self, batch: SubnetBatch) -> dict[str, np.ndarray]:
        """Per-subnet latency parts (ms): ``fixed_ms``, ``stage1_ms`` .. ``stageN_ms``, ``raw_ms``, and ``n_blocks``.

        ``fixed_ms`` covers the stem, the fixed first block and the head; ``raw_ms`` is the block sum.
        """
        self._check_shapes(batch)
        pieces = []
        for start in range(0, max(len(batch), 1), _CHUNK):
            chunk = _chunk(batch, start)
            ri, vals, mask = self._gather(chunk)
            pieces.append(self._parts_from(ri, self._active_values(vals, mask, chunk), chunk))
        parts = {k: np.concatenate([p[k] for p in pieces]) for k in pieces[0]}
        bad = np.isnan(parts["raw_ms"])
        if bad.any():
            self._raise_missing(batch, np.flatnonzero(bad))
        return parts

    def fixed_components(self, resolution: int) -> dict[str, float]:
        """The fixed blocks' latencies (ms) at ``resolution``, by kind (see ``SearchSpace.fixed_kinds``)."""
        i = self._res_index(resolution)
        return {kind: float(v) for kind, v in zip(self.space.fixed_kinds, self._fixed_parts[i])}

    def _parts_from(self, ri: np.ndarray, vals: np.ndarray, batch: SubnetBatch) -> dict[str, np.ndarray]:
        stage_ms = np.add.reduceat(vals, self._stage_starts, axis=1) if len(ri) else np.zeros((0, self.space.n_stages))
        parts: dict[str, np.ndarray] = {"fixed_ms": self._fixed[ri]}
        for s in range(stage_ms.shape[1]):
            parts[f"stage{s + 1}_ms"] = stage_ms[:, s]
        parts["raw_ms"] = stage_ms.sum(axis=1) + parts["fixed_ms"]
        n_active = self.space.active_mask(batch.d).sum(axis=1)
        parts["n_blocks"] = n_active.astype(np.float64) + len(self.space.fixed_kinds)
        return parts

    def _check_shapes(self, batch: SubnetBatch) -> None:
        if batch.ks.shape[1:] != (self._shape[1],) or batch.d.shape[1:] != (self.space.n_stages,):
            raise ValueError(
                f"SubnetBatch shapes ks {batch.ks.shape}, d {batch.d.shape} do not fit {self.space.name} "
                f"({self._shape[1]} slots, {self.space.n_stages} stages)"
            )

    def _gather(self, batch: SubnetBatch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Resolution indices (n,), every slot's table value (n, n_slots) and the active-slot mask (n, n_slots).

        Values are raw gathers: -inf marks a (ks, e) that is no choice, NaN a block the LUT lacks.
        """
        self._check_shapes(batch)
        ks, e, d, r = batch.ks, batch.e, batch.d, batch.r
        n_slots = self._shape[1]
        if len(r) == 0:
            return np.zeros(0, dtype=np.int64), np.zeros((0, n_slots)), np.zeros((0, n_slots))
        if r.min() < MIN_RESOLUTION or r.max() > MAX_RESOLUTION:
            raise ValueError(f"subnet r values {_bad_values(r, range(MIN_RESOLUTION, MAX_RESOLUTION + 1))} are out of "
                             f"range [{MIN_RESOLUTION}, {MAX_RESOLUTION}]")
        ri = self._r_index[r]
        if (ri < 0).any():
            bad = sorted({int(x) for x in r[ri < 0]})
            raise MissingBlocksError(
                f"{self._who()} has no blocks at resolution(s) {bad[:_MAX_KEYS_IN_MESSAGE]}; "
                f"fully covered: {describe_resolutions(self.resolutions)}"
            )
        if e.min() < 0 or e.max() >= self._e_span:
            raise ValueError(f"subnet e values {_bad_values(e, self.space.expand_choices)} are not in "
                             f"{list(self.space.expand_choices)}")
        code = ks * self._e_span
        code += e
        if code.min() < 0 or code.max() >= self._n_codes:  # with e in range, this bounds ks
            raise ValueError(f"subnet ks values {_bad_values(ks, self.space.ks_choices)} are not in "
                             f"{list(self.space.ks_choices)}")
        if d.min() < 0 or d.max() > self.space.max_depth or not self._d_ok[np.arange(d.shape[1]), d].all():
            raise ValueError(f"subnet d values {_bad_values(d, self.space.depth_choices)} are not in "
                             f"{list(self.space.depth_choices)}")
        code += self._slot_base
        code += (ri * self._res_stride)[:, None]
        mask = self.space.active_mask(d).astype(np.float64)
        return ri, self._by_code[code], mask

    def _active_values(self, vals: np.ndarray, mask: np.ndarray, batch: SubnetBatch) -> np.ndarray:
        """Slot values with inactive slots zeroed (NaN kept where an active block is missing).

        Raises:
            ValueError: a (ks, e) pair is no choice of the space (in any slot, as ``SearchSpace.validate`` rules).
        """
        if np.isneginf(vals).any():
            bad_k = _bad_values(batch.ks, self.space.ks_choices)
            name, bad, choices = (("ks", bad_k, self.space.ks_choices) if bad_k
                                  else ("e", _bad_values(batch.e, self.space.expand_choices), self.space.expand_choices))
            raise ValueError(f"subnet {name} values {bad} are not in {list(choices)}")
        return np.where(mask > 0, vals, 0.0)

    def _raise_missing(self, batch: SubnetBatch, rows: np.ndarray) -> None:
        missing: set[str] = set()
        for i in rows[:50]:
            missing.update(k for k in (b.key for b in self.space.blocks(batch[int(i)])) if k not in self._table)
        raise MissingBlocksError(
            f"{self._who()} lacks blocks for {len(rows)} of {len(batch)} subnet(s); missing keys: "
            f"{_list_keys(sorted(missing))}"
        )

    def _who(self) -> str:
        return f"LUT {self.device!r} ({self.space.name})" if self.device else f"LUT ({self.space.name})"

    def _res_index(self, resolution: int) -> int:
        r = int(resolution)
        if not 0 <= r < len(self._r_index) or self._r_index[r] < 0:
            raise MissingBlocksError(f"{self._who()} has no blocks at resolution {r}; "
                                     f"fully covered: {describe_resolutions(self.resolutions)}")
        return int(self._r_index[r])

    # -- coverage and range --------------------------------------------------------------
    def missing_keys(self, resolution: int) -> list[str]:
        """Keys a subnet at ``resolution`` may need that the table lacks (sorted; empty when covered)."""
        fixed_keys, slot_keys = _resolution_keys(self.space, int(resolution))
        keys = set(fixed_keys) | {k for grid in slot_keys for row in grid for k in row}
        at_r = self._at_resolution.get(int(resolution), {})
        return sorted(k for k in keys if k not in self._table and k not in at_r)

    def _linear_weights(self, calibrated: bool) -> tuple[float, float, np.ndarray, float]:
        """Prediction = const + w_fixed * fixed_ms + sum_s (w_stage[s] * stage_ms[s] + w_blocks * d[s]).

        Raw sums have const 0 and unit weights; a linear calibration folds into these weights.
        """
        n_stages = self.space.n_stages
        if not calibrated or self.calibration is None:
            return 0.0, 1.0, np.ones(n_stages), 0.0
        self.calibration.check_stages(n_stages, self.space.name)
        w = self.calibration.weights()
        const = self.calibration.intercept_ms + w["n_blocks"] * len(self.space.fixed_kinds)
        w_fixed = w["raw_ms"] + w["fixed_ms"]
        w_stage = np.array([w["raw_ms"] + w.get(f"stage{s + 1}_ms", 0.0) for s in range(n_stages)])
        return const, w_fixed, w_stage, w["n_blocks"]

    def additive_tables(self, resolutions: Iterable[int], calibrated: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """The prediction as ``fixed[r] + sum over active slots of slot[r, slot, ks, e]``.

        With a calibration, its weights are folded in (a stage's weight scales that stage's
        slots; the per-block weight is added to every slot), so the form is exact either way.
        A search prices candidates through these arrays without per-call checks.

        Args:
            resolutions: the resolutions to include, in this order.
            calibrated: fold in the calibration when one is attached.

        Returns:
            ``fixed`` (R,) and ``slot`` (R, n_slots, n_ks, n_e) in ms, NaN where a block is missing;
            kernel and expand axes follow the space's choice order.

        Raises:
            MissingBlocksError: a resolution the LUT has no stem for.
        """
        idx = [self._res_index(r) for r in resolutions]
        const, w_fixed, w_stage, w_blocks = self._linear_weights(calibrated)
        w_slot = np.repeat(w_stage, self.space.slots_per_stage)[None, :, None, None]
        return const + w_fixed * self._fixed[idx], self._slot_table[idx] * w_slot + w_blocks

    def value_range(self, resolutions: Iterable[int] | None = None,
                    calibrated: bool = True) -> tuple[float, float]:
        """Exact (min_ms, max_ms) of the predictions over every subnet of the space at ``resolutions``.

        The prediction's additive form (calibration folded in, see :meth:`additive_tables`) gives
        the bounds through ``SearchSpace.additive_range``.

        Args:
            resolutions: default all fully covered ones.
            calibrated: the range of calibrated predictions when a calibration is attached.

        Raises:
            MissingBlocksError: a requested resolution is not fully covered.
        """
        res = self.resolutions if resolutions is None else tuple(int(r) for r in resolutions)
        if not res:
            raise MissingBlocksError(f"{self._who()} covers no resolution fully")
        for r in res:
            if not self._covered[self._res_index(r)]:
                raise MissingBlocksError(
                    f"{self._who()} does not cover resolution {r}: missing {_list_keys(self.missing_keys(r))}"
                )
        return self.space.additive_range(*self.additive_tables(res, calibrated))

    def __repr__(self) -> str:
        cal = f", calibration={self.calibration.kind!r}" if self.calibration is not None else ""
        return (f"CompiledLut({self.device!r}, {self.space.name}, resolutions {describe_resolutions(self.resolutions)}{cal})")


def predict(source: LutStore | CompiledLut, device: str | int | StoredSetting | None,
            subnets: SubnetBatch | Sequence[Mapping[str, Any] | Subnet] | Mapping[str, Any] | Subnet,
            space: str | SearchSpace = "ofa-mbv3-w1.2", calibrated: bool = True) -> np.ndarray:
    """Predicted latencies (ms) of ``subnets`` on ``device``.

    Args:
        source: a LutStore (the device's LUT is compiled on each call; keep a CompiledLut for loops)
            or an already compiled LUT (``device`` is then ignored).
        device: the device name or setting id (store only).
        subnets: a SubnetBatch, one arch dict/Subnet, or a list of them.
        space: the space the subnets belong to.
        calibrated: apply the device's calibration when there is one.

    Returns:
        Latencies in ms, shape (n,).
    """
    if isinstance(source, CompiledLut):
        compiled = source
    else:
        if device is None:
            raise ValueError("predict from a LutStore needs a device name or id")
        compiled = CompiledLut.from_store(source, device, space, calibrated=calibrated)
    if isinstance(subnets, SubnetBatch):
        batch = subnets
    else:
        items = [subnets] if isinstance(subnets, (Mapping, Subnet)) else list(subnets)
        batch = SubnetBatch.from_subnets([compiled.space.validate(s) for s in items])
    return compiled.predict_batch(batch, calibrated=calibrated)


# -- helpers ---------------------------------------------------------------------------------
def _chunk(batch: SubnetBatch, start: int) -> SubnetBatch:
    stop = start + _CHUNK
    if start == 0 and len(batch) <= _CHUNK:
        return batch
    return SubnetBatch(batch.ks[start:stop], batch.e[start:stop], batch.d[start:stop], batch.r[start:stop])


def _bad_values(values: np.ndarray, choices: Sequence[int]) -> list[int]:
    return sorted(set(np.unique(values).tolist()) - set(choices))[:_MAX_KEYS_IN_MESSAGE]


def _qualified_values(table: Mapping[str, float]) -> dict[int, dict[str, float]]:
    """``{resolution: {block key: ms}}`` of the table's resolution-qualified rows (:mod:`lut.keys`).

    Raises:
        ValueError: a malformed qualifier.
    """
    out: dict[int, dict[str, float]] = {}
    for row_key, ms in table.items():
        if RESOLUTION_QUALIFIER in row_key:
            block_key, r = split_row_key(row_key)
            if r is not None:
                out.setdefault(r, {})[block_key] = ms
    return out


def compile_resolutions(table: Mapping[str, float], space: Any, resolutions: Iterable[int] | None) -> list[int]:
    """The sorted resolutions a LUT compiles: ``resolutions`` checked against the valid range, or by default the
    space's resolutions plus every resolution whose stem the table prices (any family).

    Raises:
        ValueError: ``resolutions`` is empty or has one out of range.
    """
    if resolutions is None:
        return sorted(set(space.resolutions) | _stem_resolutions(table, space))
    res = {int(r) for r in resolutions}
    if not res:
        raise ValueError(f"resolutions must be a non-empty list of ints in [{MIN_RESOLUTION}, {MAX_RESOLUTION}] "
                         "(or None for the default), got []")
    bad = [r for r in res if not MIN_RESOLUTION <= r <= MAX_RESOLUTION]
    if bad:
        raise ValueError(f"resolutions {sorted(bad)} out of range [{MIN_RESOLUTION}, {MAX_RESOLUTION}]")
    return sorted(res)


def _stem_resolutions(table: Mapping[str, float], space: Any) -> set[int]:
    """Resolutions whose first stem conv (3 input channels, one of this space's stem widths) the table prices."""
    if isinstance(space, SearchSpace):
        prefix, widths = "Conv-", (space.first_conv_chs,)
    else:  # a ResNetSpace: its stem starts with a conv_bn_act at one of the middle stem widths
        prefix, widths = "conv_bn_act-", space.mid_stem_widths
    out = set()
    for key in table:
        if key.startswith(prefix):
            try:
                block = Block.from_key(key)
            except ValueError:
                continue
            if block.in_chs == 3 and block.out_chs in widths and MIN_RESOLUTION <= block.in_hw <= MAX_RESOLUTION:
                out.add(block.in_hw)
    return out


def _resolution_keys(space: SearchSpace, r: int) -> tuple[list[str], list[list[list[str]]]]:
    """Keys of the fixed blocks (``space.fixed_kinds`` order) and of every slot's kernel x expand grid at ``r``."""
    stem, _ = space.stem_blocks(r)
    slots, side = space.slot_sides(r)
    slot_keys = [[[space.slot_block(stage, j, side_j, k, e).key for e in space.expand_choices]
                  for k in space.ks_choices] for stage, j, side_j in slots]
    head = space.head_blocks(side)
    return [b.key for b in stem] + [b.key for b in head], slot_keys


def _list_keys(keys: Sequence[str]) -> str:
    shown = ", ".join(keys[:_MAX_KEYS_IN_MESSAGE])
    more = len(keys) - _MAX_KEYS_IN_MESSAGE
    return shown + (f" (and {more} more)" if more > 0 else "")
