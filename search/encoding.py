"""Arch encodings: populations of subnets as fixed-length float feature matrices.

Two encodings, picked by name:

* ``"ofa"`` (128 floats): OFA's accuracy-predictor input. For each of the 20 slots a one-hot
  of the kernel (3, 5, 7), then for each slot a one-hot of the expand ratio (3, 4, 6); slots
  beyond a stage's depth are all zero; then a one-hot of the resolution over 8 bins,
  index ``(r - 112) // 16``.
* ``"lutnas"`` (151 floats): the OFA one-hots of kernel and expand, a one-hot of each stage's
  depth (15), the log of the subnet's MACs and of its parameter count (computed from the
  arch, see :mod:`search.cost`), its per-stage log MACs (5) and the resolution as OFA's 8
  bins plus ``r / 224``.

Both are vectorized over a :class:`space.SubnetBatch`; an encoding object is built once per
space (:func:`get_encoding`) and then called on populations.
"""

from __future__ import annotations

import numpy as np

from search.cost import AdditiveTable, macs_table, params_table
from space import SearchSpace, SubnetBatch, get_space
from space.batch import choice_index

__all__ = ["ENCODINGS", "OFA_R_BINS", "OFA_R_MIN", "Encoding", "LutnasEncoding", "OFAEncoding", "encode", "get_encoding"]

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
    width = 0  # floats per subnet

    def __init__(self, space: SearchSpace | str) -> None:
        self.space = get_space(space)
        self._ks_lookup = choice_index(self.space.ks_choices)
        self._e_lookup = choice_index(self.space.expand_choices)
        self._d_lookup = choice_index(self.space.depth_choices)

    def _genes(self, batch: SubnetBatch) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Checked choice indices (ks, e, d), the resolution bin index and the active-slot mask."""
        ks, e, d, r = _as_arrays(self.space, batch)
        d_idx = _indices(d, self._d_lookup, "depth")
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
    width = 128

    def __call__(self, batch: SubnetBatch) -> np.ndarray:
        out, (_, _, _, r_bin, _) = self._one_hots(batch, OFA_R_BINS)
        out[np.arange(len(r_bin)), out.shape[1] - OFA_R_BINS + r_bin] = 1.0
        return out


class LutnasEncoding(Encoding):
    """lutnas's 151-float encoding: OFA's one-hots plus depth, MACs, parameters and resolution."""

    name = "lutnas"
    width = 151

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
        n_d = len(space.depth_choices)
        extra = space.n_stages * n_d + 2 + space.n_stages + OFA_R_BINS + 1
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
        out[:, col:col + space.n_stages] = np.log(per_slot.reshape(n, space.n_stages, -1).sum(axis=2) / 1e6)
        col += space.n_stages
        out[rows, col + r_bin] = 1.0
        out[:, col + OFA_R_BINS] = r / 224.0
        return out


ENCODINGS: dict[str, type[Encoding]] = {"ofa": OFAEncoding, "lutnas": LutnasEncoding}


def get_encoding(name: str, space: SearchSpace | str) -> Encoding:
    """The encoding called ``name`` for ``space``.

    Raises:
        ValueError: unknown encoding name (the message lists the known ones).
    """
    try:
        cls = ENCODINGS[name]
    except KeyError:
        raise ValueError(f"unknown encoding {name!r}; known: {', '.join(sorted(ENCODINGS))}") from None
    return cls(space)


def encode(batch: SubnetBatch, name: str, space: SearchSpace | str) -> np.ndarray:
    """Encode ``batch`` once with the encoding called ``name`` (builds the encoding each call)."""
    return get_encoding(name, space)(batch)
