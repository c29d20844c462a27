"""Accuracy data sets: (subnet, top-1 accuracy) pairs read from CSV files.

Two formats are read, detected from the header row:

* DyNAS-T's CSV: a ``Sub-network`` column holding a Python-literal dict
  (``{'wid': None, 'ks': [...], 'e': [...], 'd': [...], 'r': [224]}``) and a
  ``Top-1 Acc (%)`` column.
* A plain CSV with the columns ``arch,accuracy``: the arch as a JSON object and the
  top-1 accuracy in percent. ``supernet collect`` adds ``macs``, ``params``, ``precision``
  and ``space`` (the registered search space of the supernet, empty when it has none).

Subnets that occur more than once (DyNAS-T evaluates some subnets in several runs)
are merged into one row holding the mean accuracy. Slots beyond a stage's depth are
ignored when deciding whether two subnets are the same.

Archs are read as their space's family writes them: a file whose ``space`` column names a
ProxylessNAS space holds its 21-slot archs, one naming a ResNet space ``{d, e, w, r}`` archs
(validated by the space; ``AccuracyData.w`` holds the width indices and ``ks`` is empty). A file
without a space column holds OFA-MobileNetV3 archs.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from search.cost import macs_table
from space import AnySpace, ResNetSpace, SubnetBatch, active_mask, get_space, list_spaces

__all__ = [
    "AccuracyData",
    "DataFormatError",
    "arch_arrays",
    "infer_space",
    "load_accuracy_data",
]

logger = logging.getLogger(__name__)

PathLike = str | Path

_DYNAST_ARCH = "Sub-network"
_DYNAST_ACC = "Top-1 Acc (%)"
_DYNAST_MACS = "MACs"
_PLAIN_ARCH = "arch"
_PLAIN_ACC = "accuracy"
_PLAIN_MACS = "macs"
_SPACE = "space"
_N_SLOTS = 20
_N_STAGES = 5
_MAX_DEPTH = 4


class DataFormatError(ValueError):
    """An accuracy data file could not be read (bad header, row or arch)."""


@dataclass(frozen=True)
class AccuracyData:
    """Unique subnets with their measured top-1 accuracy.

    Attributes:
        ks: kernel sizes, int array of shape (n, 20).
        e: expand ratios, int array of shape (n, 20).
        d: stage depths, int array of shape (n, 5).
        r: input resolutions, int array of shape (n,).
        accuracy_pct: top-1 accuracy in percent, float array of shape (n,).
        sources: the files the rows came from, in the order given.
        macs: MACs of each subnet when the files list them (DyNAS-T's ``MACs``), else None.
        fingerprint: a short hash of the (subnet, accuracy) rows, independent of row order.
        precision: the precision the accuracies were measured at (a ``precision`` column, as
            ``supernet collect`` writes; files without one, like DyNAS-T's, are fp32).
        space: the search space the files declare (a ``space`` column, as ``supernet collect``
            writes), else None.
        w: ResNet spaces' width indices, int array of shape (n, 2 + n_stages) (``e`` then holds
            float expand ratios per block and ``ks`` has no columns); None for MBConv spaces.
    """

    ks: np.ndarray
    e: np.ndarray
    d: np.ndarray
    r: np.ndarray
    accuracy_pct: np.ndarray
    sources: tuple[str, ...]
    fingerprint: str
    macs: np.ndarray | None = None
    precision: str = "fp32"
    space: str | None = None
    w: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.r.shape[0])

    @property
    def resolutions(self) -> tuple[int, ...]:
        """The distinct resolutions in the data, ascending."""
        return tuple(int(v) for v in np.unique(self.r))

    def subset(self, index: np.ndarray) -> AccuracyData:
        """The rows selected by an integer or boolean index (fingerprint recomputed)."""
        ks, e, d, r, acc = (a[index] for a in (self.ks, self.e, self.d, self.r, self.accuracy_pct))
        macs = None if self.macs is None else self.macs[index]
        w = None if self.w is None else self.w[index]
        return AccuracyData(ks, e, d, r, acc, self.sources, _fingerprint(ks, e, d, r, acc, w), macs, self.precision,
                            self.space, w)

    def to_batch(self) -> Any:
        """The subnets as a :class:`space.SubnetBatch` (a :class:`search.genomes.ResNetBatch` for ResNet data)."""
        return _batch(self)

    def archs(self) -> list[dict[str, Any]]:
        """The subnets as OFA arch dicts."""
        if self.w is not None:
            return [sub.to_arch() for sub in _batch(self)]
        return [
            {"ks": self.ks[i].tolist(), "e": self.e[i].tolist(), "d": self.d[i].tolist(), "r": int(self.r[i])}
            for i in range(len(self))
        ]


def arch_arrays(archs: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Turn OFA arch dicts into int arrays ``(ks, e, d, r)``.

    Args:
        archs: dicts with ``ks`` (20 ints), ``e`` (20 ints), ``d`` (5 ints) and ``r``
            (an int or a one-element list); an extra ``wid`` key is ignored.

    Returns:
        ks (n, 20), e (n, 20), d (n, 5), r (n,) as int64 arrays.

    Raises:
        DataFormatError: a field is missing or has the wrong length.
    """
    n = len(archs)
    ks = np.zeros((n, _N_SLOTS), dtype=np.int64)
    e = np.zeros((n, _N_SLOTS), dtype=np.int64)
    d = np.zeros((n, _N_STAGES), dtype=np.int64)
    r = np.zeros(n, dtype=np.int64)
    for i, arch in enumerate(archs):
        try:
            ks[i] = arch["ks"]
            e[i] = arch["e"]
            d[i] = arch["d"]
            res = arch["r"]
            if isinstance(res, (list, tuple)):
                if len(res) != 1:
                    raise ValueError(f"'r' should be an int or a one-element list, got {res!r}")
                res = res[0]
            r[i] = int(res)
        except (KeyError, ValueError, TypeError) as err:
            raise DataFormatError(f"arch {i}: {err}; expected keys ks (20), e (20), d (5), r") from err
    return ks, e, d, r


def load_accuracy_data(paths: PathLike | Iterable[PathLike], space: str | AnySpace | None = None) -> AccuracyData:
    """Read one or more accuracy CSV files into unique (subnet, accuracy) rows.

    Args:
        paths: a path or several; each a DyNAS-T CSV or a plain ``arch,accuracy`` CSV.
        space: the space the archs belong to (a name, a space file or a space), for files whose ``space``
            column is empty or names it; a user's own space is registered nowhere, so its files need it.

    Returns:
        The merged, de-duplicated data.

    Raises:
        DataFormatError: a file has an unknown header or a row cannot be parsed.
        FileNotFoundError: a file does not exist.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("load_accuracy_data needs at least one path, got none")
    archs: list[Mapping[str, Any]] = []
    accs: list[float] = []
    macs: list[float] = []
    precisions: dict[str, str] = {}
    spaces: set[str] = set()
    given = get_space(space) if space is not None else None
    for path in paths:
        file_archs, file_accs, file_macs, file_precisions, file_spaces = _read_file(path, given)
        archs.extend(file_archs)
        accs.extend(file_accs)
        macs.extend(file_macs)
        precisions.update({p: str(path) for p in file_precisions})
        spaces |= file_spaces
    if len(precisions) > 1:
        raise DataFormatError(f"accuracies measured at different precisions ({', '.join(sorted(precisions))}) "
                              "cannot train one predictor; give files of one precision")
    if len(spaces) > 1:
        raise DataFormatError(f"the files come from different search spaces ({', '.join(sorted(spaces))}); "
                              "give files of one space")
    if not archs:
        raise DataFormatError(f"no rows in {', '.join(str(p) for p in paths)}")
    space_name = next(iter(spaces), None)
    # The given space reads the archs unless the files name another (the caller names that mismatch).
    read_in = given if given is not None and space_name in (None, given.name) else space_name
    ks, e, d, r, w, slots = _space_arrays(archs, read_in)
    acc = np.asarray(accs, dtype=np.float64)
    pick, acc = _merge_duplicates(ks, e, d, r, acc, w, slots)
    ks, e, d, r = ks[pick], e[pick], d[pick], r[pick]
    w = None if w is None else w[pick]
    macs_arr = np.asarray(macs, dtype=np.float64)[pick]
    logger.debug("read %d rows, %d unique subnets from %d files", len(accs), len(r), len(paths))
    return AccuracyData(ks, e, d, r, acc, tuple(str(p) for p in paths), _fingerprint(ks, e, d, r, acc, w, slots),
                        None if np.isnan(macs_arr).any() else macs_arr, next(iter(precisions), "fp32"),
                        space_name, w)


def _space_arrays(
    archs: list[Mapping[str, Any]], space_name: str | AnySpace | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, Any]:
    """``(ks, e, d, r, w, slots per stage)`` of the archs as their space reads them (MobileNetV3's 20 slots when
    neither the files nor the caller name a space)."""
    space = get_space(space_name) if space_name else None
    if space is None or (not isinstance(space, ResNetSpace) and space.slots_per_stage == (_MAX_DEPTH,) * _N_STAGES):
        ks, e, d, r = arch_arrays(archs)
        return ks, e, d, r, None, _MAX_DEPTH
    from search.genomes import as_batch

    try:
        batch = as_batch(archs, space)
    except (ValueError, TypeError, KeyError) as err:
        raise DataFormatError(f"an arch is not a subnet of {space.name}: {err}") from None
    if isinstance(space, ResNetSpace):
        n = len(batch)
        return np.zeros((n, 0), dtype=np.int64), batch.e, batch.d, batch.r, batch.w, None
    return batch.ks, batch.e, batch.d, batch.r, None, space.slots_per_stage


def _read_file(path: Path, given: AnySpace | None = None
               ) -> tuple[list[Mapping[str, Any]], list[float], list[float], set[str], set[str]]:
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        if _DYNAST_ARCH in header and _DYNAST_ACC in header:
            arch_col, acc_col, parse = _DYNAST_ARCH, _DYNAST_ACC, ast.literal_eval
        elif _PLAIN_ARCH in header and _PLAIN_ACC in header:
            arch_col, acc_col, parse = _PLAIN_ARCH, _PLAIN_ACC, json.loads
        else:
            raise DataFormatError(
                f"{path}: unknown header {header!r}; expected DyNAS-T columns "
                f"'{_DYNAST_ARCH}' and '{_DYNAST_ACC}', or 'arch,accuracy'"
            )
        archs: list[Mapping[str, Any]] = []
        accs: list[float] = []
        macs: list[float] = []
        macs_col = next((c for c in (_DYNAST_MACS, _PLAIN_MACS) if c in header), None)
        precisions: set[str] = set()
        spaces: set[str] = set()
        for line_no, row in enumerate(reader, start=2):
            if "precision" in header:
                precisions.add(row["precision"] or "fp32")
            if row.get(_SPACE):
                spaces.add(_known_space(path, line_no, row[_SPACE], given))
            try:
                arch = parse(row[arch_col])
                acc = float(row[acc_col])
                mac = float(row[macs_col]) if macs_col and row[macs_col] not in ("", None) else float("nan")
            except (ValueError, SyntaxError, TypeError) as err:
                raise DataFormatError(f"{path}:{line_no}: cannot parse row: {err}") from err
            if not isinstance(arch, Mapping):
                raise DataFormatError(f"{path}:{line_no}: arch should be a dict, got {type(arch).__name__}")
            archs.append(arch)
            accs.append(acc)
            macs.append(mac)
    return archs, accs, macs, precisions or {"fp32"}, spaces


def _known_space(path: Path, line_no: int, name: str, given: AnySpace | None = None) -> str:
    if given is not None and name == given.name:  # a user's space: registered nowhere, given by the caller
        return name
    try:
        return get_space(name).name
    except ValueError as err:
        raise DataFormatError(f"{path}:{line_no}: column space: {err}") from None


def _canonical(ks: np.ndarray, e: np.ndarray, d: np.ndarray, slots: Any = _MAX_DEPTH) -> tuple[np.ndarray, np.ndarray]:
    if slots is None:  # ResNet: every entry is kept (its archs come canonical from the supernet or the space)
        return ks, e
    mask = active_mask(d, slots)
    return np.where(mask, ks, 0), np.where(mask, e, 0)


def _merge_duplicates(
    ks: np.ndarray, e: np.ndarray, d: np.ndarray, r: np.ndarray, acc: np.ndarray, w: np.ndarray | None = None,
    slots: Any = _MAX_DEPTH,
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of the first occurrence of each subnet and each subnet's mean accuracy."""
    cks, ce = _canonical(ks, e, d, slots)
    extra = [] if w is None else [w]
    rows = np.concatenate([cks, ce, d, *extra, r[:, None]], axis=1)
    _, first, inverse = np.unique(rows, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    order = np.argsort(first)  # keep the order in which subnets first appear
    sums = np.bincount(inverse, weights=acc)
    counts = np.bincount(inverse)
    mean = sums / counts
    pick = first[order]
    return pick, mean[order]


def _fingerprint(
    ks: np.ndarray, e: np.ndarray, d: np.ndarray, r: np.ndarray, acc: np.ndarray, w: np.ndarray | None = None,
    slots: Any = _MAX_DEPTH,
) -> str:
    if slots == _MAX_DEPTH and w is None and ks.shape[1] != _N_SLOTS:
        slots = _slots_of(ks, d)
    cks, ce = _canonical(ks, e, d, None if w is not None else slots)
    rows = sorted(
        (tuple(cks[i].tolist()), tuple(ce[i].tolist()), tuple(d[i].tolist()), int(r[i]), round(float(acc[i]), 6))
        + (() if w is None else (tuple(w[i].tolist()),))
        for i in range(len(r))
    )
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()[:16]


def _slots_of(ks: np.ndarray, d: np.ndarray) -> Any:
    # A subset's fingerprint: ProxylessNAS's 21 slots are 4 per stage and 1 in the last.
    n_slots, n_stages = ks.shape[1], d.shape[1]
    if n_slots == _MAX_DEPTH * (n_stages - 1) + 1:
        return (_MAX_DEPTH,) * (n_stages - 1) + (1,)
    return _MAX_DEPTH


def infer_space(data: AccuracyData, candidates: Sequence[str] | None = None) -> str | None:
    """The space the data declares (its ``space`` column), else the registered space whose MACs
    count matches the data's MACs column exactly (DyNAS-T's ``MACs``, or ``macs`` of older
    ``supernet collect`` files).

    Args:
        data: accuracy data.
        candidates: space names to try by MACs (default: every registered space).

    Returns:
        The space name, or None when the data declares none and has no MACs or no single space matches.
    """
    if data.space is not None:
        return data.space
    if data.macs is None:
        return None
    matches = []
    batch = _batch(data)
    for name in candidates or list_spaces():
        space = get_space(name)
        if getattr(space, "n_slots", None) != batch.ks.shape[1] or space.n_stages != batch.d.shape[1]:
            continue  # another family's arch shape
        try:
            table = macs_table(name, data.resolutions)
        except ValueError:
            continue
        if np.array_equal(table.predict_batch(batch), data.macs):
            matches.append(name)
    return matches[0] if len(matches) == 1 else None


def _batch(data: AccuracyData) -> Any:
    if data.w is not None:
        from search.genomes import ResNetBatch

        return ResNetBatch(data.d, data.e, data.w, data.r)
    return SubnetBatch(data.ks, data.e, data.d, data.r)
