"""Arch encodings: populations of subnets as fixed-length float feature matrices, derived from the space.

Two encodings, picked by name, for every space family. For kernel/expand-slot spaces (MobileNetV3,
ProxylessNAS, users' own):

* ``"ofa"``: OFA's accuracy-predictor input. For each slot a one-hot of the kernel, then for each
  slot a one-hot of the expand ratio; slots beyond a stage's depth are all zero; then a one-hot of
  the resolution over 8 bins, index ``(r - 112) // 16``. 128 floats for MobileNetV3 (20 slots,
  3 kernels, 3 ratios), exactly OFA's, so OFA's trained predictor reads it; 134 for ProxylessNAS.
* ``"lutnas"``: the same one-hots of kernel and expand, a one-hot of each stage's depth (a stage
  runs ``min(d, slots)`` blocks, so ProxylessNAS's one-slot last stage encodes as depth 1), the log
  of the subnet's MACs and of its parameter count (see :mod:`search.cost`), its per-stage log MACs
  and the resolution as OFA's 8 bins plus ``r / 224``. 151 floats for MobileNetV3.

For ResNet spaces (OFA's ResNet50):

* ``"ofa"``: a one-hot of each ``d`` entry (stem skip and each stage's extra depth), of each
  block's expand ratio (zero for blocks that do not run), of each width index, then the 8
  resolution bins. 95 floats for ResNet50.
* ``"lutnas"``: those one-hots plus the log of the subnet's MACs and parameters and ``r / 224``.

An encoding's ``width`` is a property of the space it was built for. All are vectorized over a
population (:class:`space.SubnetBatch`, :class:`search.genomes.ResNetBatch`); an encoding object is
built once per space (:func:`get_encoding`) and then called on populations.
"""

from __future__ import annotations

import numpy as np

from typing import Any

from search.cost import AdditiveTable, macs_table, params_table
from search.genomes import ResNetBatch, expand_indices
from space import ResNetSpace, SearchSpace, SubnetBatch, get_space
from space.batch import choice_index

__all__ = [
    "ENCODINGS", "OFA_R_BINS", "OFA_R_MIN", "Encoding", "LutnasEncoding", "OFAEncoding", "ResNetLutnasEncoding",
    "ResNetOFAEncoding", "encode", "get_encoding",
]

OFA_R_MIN = 112  # OFA's resolution one-hot starts here ...
OFA_R_STEP = 16  # ... with bins this wide ...
OFA_R_BINS = 8  # ... and this many of them (112..239)


def _indices(values: np.ndarray, lookup: np.ndarray, what: str, mask: np.ndarray | None = None) -> np.ndarray:
    """Choice indices of ``values``; ValueError naming the values that are not choices."""
    idx = lookup.take(values, mode="clip")
    bad_mask = idx < 0 if mask is None else (idx < 0) & mask
    if bad_mask.any():
        bad = sorted(set(values[bad_mask].tolist()))
        raise ValueError(f"{what} values {bad} are not among the choices {np.flatnonzero(lookup >= 0).tolist()}")
    return idx


def _scatter_one_hot(out: np.ndarray, offset: int, idx: np.ndarray, n_choices: int, active: np.ndarray) -> None:
    """Write per-slot one-hots of ``idx`` (n, n_slots) into ``out`` from column ``offset``; inactive slots stay 0."""
    n, n_slots = idx.shape
    cols = offset + np.arange(n_slots)[None, :] * n_choices + np.maximum(idx, 0)
    out[np.arange(n)[:, None], cols] = active


def _resolution_bin_index(r: np.ndarray) -> np.ndarray:
    # Resolutions outside OFA's bins (small-data supernets train at 12-48 px) share the end bins;
    # the lutnas encoding still tells them apart through r/224 and the MACs features, and OFA's
    # own predictor refuses them before encoding (see OFAAccuracyPredictor.predict_batch).
    return np.clip((r - OFA_R_MIN) // OFA_R_STEP, 0, OFA_R_BINS - 1)


def _as_arrays(space: SearchSpace, batch: SubnetBatch) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    ks, e, d, r = (np.asarray(a) for a in (batch.ks, batch.e, batch.d, batch.r))
    if ks.ndim != 2 or ks.shape[1] != space.n_slots or e.shape != ks.shape or d.shape[1:] != (space.n_stages,):
        raise ValueError(
            f"batch shapes ks {ks.shape}, e {e.shape}, d {d.shape} do not fit {space.name} "
            f"({space.n_slots} slots, {space.n_stages} stages)"
        )
    return ks, e, d, r


class Encoding:
    """Base class: turns a :class:`space.SubnetBatch` into a float32 matrix (n, width).

    Args:
        space: a space name or SearchSpace.
    """

    name = ""  # registry name

    def __init__(self, space: SearchSpace | str) -> None:
        self.space = get_space(space)
        if not isinstance(self.space, SearchSpace):
            raise ValueError(f"{type(self).__name__} encodes kernel/expand-slot spaces; {self.space.name} is not one")
        self._ks_lookup = choice_index(self.space.ks_choices)
        self._e_lookup = choice_index(self.space.expand_choices)
        # A stage with fewer slots than the largest depth runs all of them: its depths read as its slot count.
        self._slots = np.asarray(self.space.slots_per_stage, dtype=np.int64)
        self._d_choices = tuple(sorted({min(d, n) for s, n in enumerate(self.space.slots_per_stage)
                                        for d in self.space.stage_depth_choices(s)}))
        self._d_lookup = choice_index(self._d_choices)

    @property
    def width(self) -> int:
        """Floats per subnet."""
        raise NotImplementedError

    @property
    def _one_hot_width(self) -> int:
        return self.space.n_slots * (len(self.space.ks_choices) + len(self.space.expand_choices))

    def _genes(self, batch: SubnetBatch) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Checked choice indices (ks, e, d), the resolution bin index and the active-slot mask."""
        ks, e, d, r = _as_arrays(self.space, batch)
        d_idx = _indices(np.minimum(d, self._slots[None, :]), self._d_lookup, "depth")
        active = self.space.active_mask(d)
        ks_idx = _indices(ks, self._ks_lookup, "kernel", active)
        e_idx = _indices(e, self._e_lookup, "expand", active)
        return ks_idx, e_idx, d_idx, _resolution_bin_index(r), active

    def _one_hots(self, batch: SubnetBatch, extra: int) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        """A zero matrix (n, 2 * n_slots * 3 + extra) with kernel and expand one-hots written in."""
        ks_idx, e_idx, d_idx, r_bin, active = self._genes(batch)
        n_k, n_e, n_slots = len(self.space.ks_choices), len(self.space.expand_choices), self.space.n_slots
        out = np.zeros((len(r_bin), n_slots * (n_k + n_e) + extra), dtype=np.float32)
        _scatter_one_hot(out, 0, ks_idx, n_k, active)
        _scatter_one_hot(out, n_slots * n_k, e_idx, n_e, active)
        return out, (ks_idx, e_idx, d_idx, r_bin, active)

    def __call__(self, batch: SubnetBatch) -> np.ndarray:
        """Encode ``batch``; float32 array (n, width).

        Raises:
            ValueError: a gene value outside the space's choices or a resolution outside 112..239.
        """
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.space.name!r})"


class OFAEncoding(Encoding):
    """OFA's 128-float accuracy-predictor input (see the module docstring)."""

    name = "ofa"

    @property
    def width(self) -> int:
        """Floats per subnet: 128 for MobileNetV3."""
        return self._one_hot_width + OFA_R_BINS

    def __call__(self, batch: SubnetBatch) -> np.ndarray:
        out, (_, _, _, r_bin, _) = self._one_hots(batch, OFA_R_BINS)
        out[np.arange(len(r_bin)), out.shape[1] - OFA_R_BINS + r_bin] = 1.0
        return out


class LutnasEncoding(Encoding):
    """lutnas's 151-float encoding: OFA's one-hots plus depth, MACs, parameters and resolution."""

    name = "lutnas"

    @property
    def width(self) -> int:
        """Floats per subnet: 151 for MobileNetV3."""
        return self._one_hot_width + self._extra

    @property
    def _extra(self) -> int:
        n = self.space.n_stages
        return n * len(self._d_choices) + 2 + n + OFA_R_BINS + 1

    def __init__(self, space: SearchSpace | str) -> None:
        super().__init__(space)
        res = tuple(r for r in range(OFA_R_MIN, OFA_R_MIN + OFA_R_STEP * OFA_R_BINS)
                    if r in set(self.space.resolutions) | {224})
        self._macs: AdditiveTable = macs_table(self.space, res)
        self._params: AdditiveTable = params_table(self.space, res)

    def _cover(self, r: np.ndarray) -> None:
        """Extend the MACs/params tables to resolutions first seen in ``r`` (memoized per encoding)."""
        missing = {int(v) for v in np.unique(r)} - set(self._macs.resolutions)
        if missing:
            res = tuple(sorted(set(self._macs.resolutions) | missing))
            self._macs = macs_table(self.space, res)
            self._params = params_table(self.space, res)

    def __call__(self, batch: SubnetBatch) -> np.ndarray:
        self._cover(np.asarray(batch.r))
        space = self.space
        n_d = len(self._d_choices)
        extra = self._extra
        out, (ks_idx, e_idx, d_idx, r_bin, active) = self._one_hots(batch, extra)
        n = len(r_bin)
        rows = np.arange(n)
        col = out.shape[1] - extra
        out[rows[:, None], col + np.arange(space.n_stages)[None, :] * n_d + d_idx] = 1.0
        col += space.n_stages * n_d
        r = np.asarray(batch.r)
        out[:, col] = np.log(self._macs.predict_batch(batch) / 1e6)
        out[:, col + 1] = np.log(self._params.predict_batch(batch) / 1e6)
        col += 2
        t = self._macs
        n_e = t._slot.shape[3]
        flat = t._flat.reshape(len(t.resolutions), -1)
        ri = t._r_index[r]
        per_slot = flat[ri[:, None], t._slot_base[None, :] + ks_idx * n_e + e_idx]
        per_slot = np.where(active, per_slot, 0.0)
        stage_of_slot = np.repeat(np.arange(space.n_stages), space.slots_per_stage)  # stages may differ in slots
        out[:, col:col + space.n_stages] = np.log(per_slot @ np.eye(space.n_stages)[stage_of_slot] / 1e6)
        col += space.n_stages
        out[rows, col + r_bin] = 1.0
        out[:, col + OFA_R_BINS] = r / 224.0
        return out


class ResNetOFAEncoding:
    """One-hots of a ResNet subnet's ``d``, per-block ``e`` (zero where the block does not run) and ``w``, then
    OFA's 8 resolution bins (see the module docstring).

    Args:
        space: a ResNet space name or ResNetSpace.
    """

    name = "ofa"

    def __init__(self, space: ResNetSpace | str) -> None:
        self.space = get_space(space)
        if not isinstance(self.space, ResNetSpace):
            raise ValueError(f"{type(self).__name__} encodes ResNet spaces; {self.space.name} is not one")
        sp = self.space
        self._d_lookup = {v: i for i, v in enumerate(sp.depth_choices)}
        self._n = (len(sp.depth_choices), len(sp.expand_choices), len(sp.width_choices))

    @property
    def width(self) -> int:
        """Floats per subnet: 95 for ResNet50."""
        return self._one_hot_width + OFA_R_BINS

    @property
    def _one_hot_width(self) -> int:
        sp, (n_d, n_e, n_w) = self.space, self._n
        return (1 + sp.n_stages) * n_d + sp.n_slots * n_e + (2 + sp.n_stages) * n_w

    def _one_hots(self, batch: ResNetBatch, extra: int) -> np.ndarray:
        sp, (n_d, n_e, n_w) = self.space, self._n
        d, w, r = np.asarray(batch.d), np.asarray(batch.w), np.asarray(batch.r)
        if d.ndim != 2 or d.shape[1] != 1 + sp.n_stages or np.shape(batch.e)[1:] != (sp.n_slots,) \
                or w.shape[1:] != (2 + sp.n_stages,):
            raise ValueError(f"batch shapes d {d.shape}, e {np.shape(batch.e)}, w {w.shape} do not fit {sp.name}")
        bad = sorted({int(v) for v in np.unique(d)} - set(self._d_lookup))
        if bad:
            raise ValueError(f"depth values {bad} are not among the choices {list(sp.depth_choices)}")
        if w.size and (w.min() < 0 or w.max() >= n_w):
            raise ValueError(f"width indices must be in 0..{n_w - 1}, got {sorted(set(np.unique(w).tolist()))}")
        d_idx = np.vectorize(self._d_lookup.__getitem__, otypes=[np.int64])(d) if d.size else d
        e_idx = expand_indices(sp, batch.e)
        active = sp.active_mask(d)
        out = np.zeros((len(r), self._one_hot_width + extra), dtype=np.float32)
        _scatter_one_hot(out, 0, d_idx, n_d, np.ones_like(d_idx, dtype=bool))
        col = (1 + sp.n_stages) * n_d
        _scatter_one_hot(out, col, e_idx, n_e, active)
        col += sp.n_slots * n_e
        _scatter_one_hot(out, col, w, n_w, np.ones_like(w, dtype=bool))
        return out

    def __call__(self, batch: ResNetBatch) -> np.ndarray:
        """Encode ``batch``; float32 array (n, width)."""
        out = self._one_hots(batch, OFA_R_BINS)
        r_bin = _resolution_bin_index(np.asarray(batch.r))
        out[np.arange(len(r_bin)), self._one_hot_width + r_bin] = 1.0
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.space.name!r})"


class ResNetLutnasEncoding(ResNetOFAEncoding):
    """:class:`ResNetOFAEncoding`'s one-hots plus log MACs, log parameters, the 8 resolution bins and ``r / 224``."""

    name = "lutnas"

    def __init__(self, space: ResNetSpace | str) -> None:
        super().__init__(space)
        self._tables: dict[tuple[int, ...], tuple[Any, Any]] = {}

    @property
    def width(self) -> int:
        """Floats per subnet: 98 for ResNet50."""
        return self._one_hot_width + 2 + OFA_R_BINS + 1

    def _counts(self, r: np.ndarray) -> tuple[Any, Any]:
        """MACs and parameter tables covering the resolutions in ``r`` (memoized per resolution set)."""
        res = tuple(sorted({int(v) for v in np.unique(r)}))
        if res not in self._tables:
            self._tables[res] = (macs_table(self.space, res), params_table(self.space, res))
        return self._tables[res]

    def __call__(self, batch: ResNetBatch) -> np.ndarray:
        """Encode ``batch``; float32 array (n, width)."""
        out = self._one_hots(batch, 2 + OFA_R_BINS + 1)
        r = np.asarray(batch.r)
        macs, params = self._counts(r)
        col = self._one_hot_width
        out[:, col] = np.log(macs.predict_batch(batch, calibrated=False) / 1e6)
        out[:, col + 1] = np.log(params.predict_batch(batch, calibrated=False) / 1e6)
        col += 2
        out[np.arange(len(r)), col + _resolution_bin_index(r)] = 1.0
        out[:, col + OFA_R_BINS] = r / 224.0
        return out


ENCODINGS: dict[str, type[Encoding]] = {"ofa": OFAEncoding, "lutnas": LutnasEncoding}
RESNET_ENCODINGS: dict[str, type[ResNetOFAEncoding]] = {"ofa": ResNetOFAEncoding, "lutnas": ResNetLutnasEncoding}


def get_encoding(name: str, space: SearchSpace | ResNetSpace | str) -> Any:
    """The encoding called ``name`` for ``space`` (the space's family picks the class).

    Raises:
        ValueError: unknown encoding name (the message lists the known ones).
    """
    space = get_space(space)
    table: dict[str, Any] = RESNET_ENCODINGS if isinstance(space, ResNetSpace) else ENCODINGS
    try:
        cls = table[name]
    except KeyError:
        raise ValueError(f"unknown encoding {name!r}; known: {', '.join(sorted(table))}") from None
    return cls(space)


def encode(batch: SubnetBatch | ResNetBatch, name: str, space: SearchSpace | ResNetSpace | str) -> np.ndarray:
    """Encode ``batch`` once with the encoding called ``name`` (builds the encoding each call)."""
    return get_encoding(name, space)(batch)
