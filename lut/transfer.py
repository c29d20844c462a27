"""Few-shot LUT transfer: a new setting's LUT from K timed blocks plus other settings' full LUTs.

A block's latency on a new device setting is predicted, in log space, as a non-negative mix of
the same block's latency in source settings (other devices, runtimes, thread counts, precisions,
imported tables), optionally with signed block features (kind, kernel, expand, channels, side,
MACs, memory traffic):

    log t(b) = c + Σ_s w_s · z_s(b) + Σ_f v_f · f(b),      w_s >= 0,  Σ_s w_s ≈ 1

where ``z_s`` is either the source's own log latency or a *smoothed* version of it (the source's
log latency regressed on the block features over every item, which removes timing noise from
the source but also its block-specific cliffs). A last candidate works in ms instead: ``t(b) = c + Σ w_s · t_s(b)`` with ``c, w_s >= 0``,
which holds a fixed per-block cost no log-linear mix can. In the log-space designs without feature terms the
weights are pulled toward summing to 1 (a penalty on (Σ w - 1) as strong as a residual of that size on every
measured item): latency is homogeneous across settings, so a block twice as slow on every source should be
about twice as slow on the target. Feature terms can carry part of the scaling, so designs with them are not
pulled. Which columns enter and how hard the weights
are shrunk is chosen by leave-one-out cross-validation on the K measured items; the chosen
candidate's CV error is reported with the prediction so that every reader of the LUT knows what
to expect. Measured items weigh in by the square root of their latency, and the CV error is
latency-weighted too: a subnet's latency is a sum dominated by its slow blocks. The same estimator works on any items (blocks of a LUT, whole subnets).

Which K items to time matters as much as the fit: :func:`select_items` picks items that stand for
the latency mass (blocks weighted by how often a random subnet runs them, :func:`block_usage`, and
how slow the sources say they are), spreads them over the given strata (stage, resolution) and the
feature space, and steers toward items where the sources disagree most (a cliff one runtime has and
another lacks).
"""

from __future__ import annotations

import itertools
import json
import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy.optimize import nnls
from scipy.spatial.distance import cdist

from lut.errors import LutError
from lut.schema import PREDICTED_SOURCE
from space import BLOCK_KINDS, Block, ResNetSpace, SearchSpace, get_space
from space.counts import block_macs, block_params

if TYPE_CHECKING:
    from lut.store import LutStore, StoredSetting

__all__ = [
    "CANDIDATES",
    "MODEL_NAME",
    "PREDICTED_SOURCE",
    "PredictedRows",
    "TransferError",
    "TransferModel",
    "TransferResult",
    "UselessFitError",
    "best_proxy",
    "block_descriptors",
    "block_strata",
    "block_usage",
    "fill_from_sources",
    "load_sources",
    "measured_keys",
    "plan_few_shot",
    "predicted_rows",
    "select_items",
    "store_transfer",
    "transfer_table",
]

logger = logging.getLogger(__name__)

MODEL_NAME = "lutnas-transfer-v6"  # stored with every predicted row; bump when the model changes meaning

# Candidate designs, preferred first: (use raw sources, use smoothed sources, use features), all in
# log space, and "affine": the target as a non-negative mix of source latencies plus a per-item
# constant, in ms. Smoothed sources come first (unless the sources share what smoothing removes, see
# _SHARED_RESIDUALS): with few measured items, leave-one-out often favours
# raw sources by chance, while their timing noise then costs rank fidelity on every unmeasured item
# (on HELP's data, 10 subnets: mean Spearman 0.918 smoothed-first vs 0.899 for plain CV choice). A
# source's real block-specific cliffs (a runtime's slow 7x7 depthwise) show up as a large CV gap
# instead. The affine design holds what a log-linear one cannot: a fixed per-block cost (a phone's
# per-operator overhead on top of a desktop's compute time) and the blocks a source prices at ~0 ms.
CANDIDATES: dict[str, tuple[bool, bool, bool]] = {
    "smoothed": (False, True, False),
    "sources+smoothed": (True, True, False),
    "sources": (True, False, False),
    "sources+features": (True, False, True),
    "affine": (True, False, False),
}
_AFFINE = "affine"
_SMOOTHED = "smoothed"  # the candidate moved last when the sources share what smoothing removes
# Smoothing is preferred only while what it removes from the sources is their own: the median correlation,
# over pairs of sources, of their residuals from the smoothing (every item) must stay below this. Residuals
# that the sources share are real item structure (a runtime family's slow 7x7 depthwise, a block every
# setting finds slow) that the target likely has too. HELP's subnets: 0.02-0.03 (timing noise of each GPU
# setting; smoothed-first helps there, mean Spearman 0.918 vs 0.899); this host's block LUTs: 0.34-0.53.
# With smoothed last on the block LUTs (two profiles of each of 8 settings, lower median, each held out):
# K = 20 91.0% of subnet sums within ±10% (smoothed first 90.4%), K = 40 94.3% (93.9%), K = 10 87.5% (87.8%),
# K = 5 59.3% (59.2%); on the earlier references K = 20 86.7% (84.7%), K = 10 80.6% (75.9%).
_SHARED_RESIDUALS = 0.2
# Ridge strengths tried for each candidate (per measured item; log sources centered, features standardized).
_ALPHAS = (0.0, 1e-3, 1e-2, 1e-1, 1.0)
# A later candidate must beat the earlier ones' best CV error by this factor to be chosen.
_PREFER_EARLIER = 1.25
# Strength of the pull of the log-space source weights toward summing to 1: a penalty of this times the
# number of measured items times (Σ w - 1)^2 (0: off).
# Without it a few diverse picks let a fit shrink the weights (a slope below 1 in log space) and trade
# the slope for the intercept: on this host's LUTs at K = 5, one held-out onnxruntime fit's weights summed
# to 0.62 and 6% of subnet sums came within ±10% (the best single source: 92%). With it (8 held-out
# settings of this host, 2-thread ones timed with one core per thread, references keeping each block's
# lower median of two profiles), K = 5 went from 43% to 68% of subnet sums within ±10% (Spearman 0.936 to
# 0.986), K = 10 from 71% to 76%, and K = 20 stayed at 85%; HELP's end-to-end transfer (part b) stayed at 0.918.
_HOMOGENEITY = 1.0
# Ridge strength of the source smoothing (features -> a source's log latency), over all items.
_SMOOTH_ALPHA = 1.0
# Fit weights are latency**this: sums of many items are dominated by the slow ones, so a fit that
# weighs a 20 ms block like a 0.02 ms one mis-prices subnets (0: plain log-space least squares).
# 0.5 here: on this machine's LUTs it lifted a held-out onnxruntime LUT from 76% to 90% of subnet
# sums within ±10% (K = 20) and left HELP's end-to-end transfer unchanged (1 overweights a few blocks).
_LATENCY_WEIGHT = 0.5
# The affine design's predictions are floored at this fraction of a typical measured item (its
# constant may fit to 0 and a source may price an item at 0 ms).
_AFFINE_FLOOR = 1e-3
# Weights of the selection's terms (see select_items), beside disagreement and strata novelty at 1.
_MASS_WEIGHT = 1.0
_SPREAD_WEIGHT = 1.0
# A fit this good (CV error, a fraction) is kept even when one constant predicts the measured items
# as well: representative picks resemble each other, so a constant looks better on them than it is
# on the items they stand for.
_ALWAYS_USEFUL = 0.15
# Fewest measured items a fit accepts: leave-one-out needs a few to mean anything.
MIN_MEASURED = 4
# A design with signed feature terms is tried only with at least this many measured items per feature
# (19 features: K >= 19): with fewer, leave-one-out cannot rank it. On this host's LUTs (faithful 2-thread
# ones among them) at K = 10 it won leave-one-out on a held-out onnxruntime 2-thread LUT (CV 24%, the next
# best 38%) and ranked subnets at Spearman 0.81 (the best single source: 0.98); without it, 0.96. From
# K = 20 on it earns its place: a target that is a power law of its source is recovered through it.
_ITEMS_PER_FEATURE = 1


class TransferError(LutError, ValueError):
    """A few-shot transfer cannot be made: bad sources, too few or too many measured items, or a useless fit."""


class UselessFitError(TransferError):
    """The sources do not predict the measured items well enough: more of them, or closer sources, may."""


# -- features -------------------------------------------------------------------------------
def block_descriptors(blocks: Sequence[Block]) -> pd.DataFrame:
    """Numeric descriptors of blocks, one row per block (index: block keys).

    Columns: a one-hot of the kind, kernel, expand ratio, stride, SE, h-swish, log2 of the input and
    output side and of the input, mid and output channels, log of MACs, parameters and memory traffic
    (activation elements read and written plus weights: a proxy of bytes moved at any precision).
    """
    rows = []
    # One-hot columns for the kinds present only: a column that is 0 for every block carries nothing.
    kinds = [k for k in BLOCK_KINDS if any(b.kind == k for b in blocks)]
    for b in blocks:
        mid = b.mid_chs or b.out_chs
        traffic = b.in_hw**2 * b.in_chs + b.out_hw**2 * b.out_chs + block_params(b)
        if b.kind == "mbconv":
            expanded = 0 if b.mid_chs == b.in_chs else 2 * b.in_hw**2 * mid  # 1x1 expand writes, depthwise reads
            traffic += expanded + 2 * b.out_hw**2 * mid  # depthwise writes, 1x1 project reads
        row = {f"kind_{k}": float(b.kind == k) for k in kinds}
        row.update(
            kernel=float(b.kernel), expand=float(b.expand_ratio), stride=float(b.stride), se=float(b.se),
            hs=float(b.act == "h_swish"), log_in_hw=math.log2(b.in_hw), log_out_hw=math.log2(b.out_hw),
            log_in_chs=math.log2(b.in_chs), log_mid_chs=math.log2(mid), log_out_chs=math.log2(b.out_chs),
            log_macs=math.log1p(block_macs(b)), log_params=math.log1p(block_params(b)), log_traffic=math.log1p(traffic),
        )
        rows.append(row)
    return pd.DataFrame(rows, index=[b.key for b in blocks])


def block_strata(space: SearchSpace | ResNetSpace | str, resolutions: Sequence[int]) -> pd.DataFrame:
    """Where each distinct block of ``space`` at ``resolutions`` sits: kind, stage and resolution.

    Index: block keys, in run order. ``stage`` is -1 for the stem and head; a block that several
    resolutions (or stages of equal width) share is filed under the first. ``select_items`` spreads its
    picks over these.
    """
    space = get_space(space)
    out: dict[str, tuple[str, int, int]] = {}
    for r in resolutions:
        stages = _stage_of_keys(space, r)
        if isinstance(space, SearchSpace):
            for b in space.stem_blocks(r)[0]:
                out.setdefault(b.key, (b.kind if b.kind != "mbconv" else "first_block", -1, r))
        for b in space.unique_blocks(r):
            out.setdefault(b.key, (b.kind, stages.get(b.key, -1), r))
    return pd.DataFrame.from_dict(out, orient="index", columns=["kind", "stage", "resolution"])


def _stage_of_keys(space: SearchSpace | ResNetSpace, r: int) -> dict[str, int]:
    """The stage of every elastic block key at ``r``, from the space's slots (the first stage when two share one)."""
    out: dict[str, int] = {}
    for stage, key, _ in _slot_blocks(space, r):
        out.setdefault(key, stage)
    return out


def _slot_blocks(space: SearchSpace | ResNetSpace, r: int) -> Iterator[tuple[int, str, float]]:
    """``(stage, key, probability)`` of every block an elastic slot may run at ``r``: the probability that a
    uniformly random subnet at ``r`` (``SearchSpace.sample``, ``ResNetSpace.sample_archs``) runs it there."""
    if isinstance(space, ResNetSpace):
        yield from _resnet_slot_blocks(space, r)
        return
    depths = np.asarray(space.depth_choices)
    per_config = 1.0 / (len(space.ks_choices) * len(space.expand_choices))
    for stage, j, side in space.slot_sides(r)[0]:
        p_slot = float(np.mean(depths > j)) * per_config
        for k in space.ks_choices:
            for e in space.expand_choices:
                yield stage, space.slot_block(stage, j, side, k, e).key, p_slot


def _resnet_slot_blocks(space: ResNetSpace, r: int) -> Iterator[tuple[int, str, float]]:
    """:func:`_slot_blocks` of a ResNet space: a stage's first block reads the previous stage's width (or the
    stem's), later ones their own; every width index and expand ratio is equally likely."""
    n_w, n_e = len(space.width_choices), len(space.expand_choices)
    depths = np.asarray(space.depth_choices)
    for stage, variants in itertools.groupby(space.stage_blocks(r), key=lambda v: v[0]):
        firsts: list[str] = []  # the first slot's blocks, one per input width
        laters: list[str] = []  # the blocks every later slot may run
        for _, w_in, _, _, block in variants:
            (laters if w_in is None else firsts).append(block.key)
        runs = space.base_depths[stage] + depths  # the stage's possible block counts
        p_first = float(np.mean(runs > 0)) / (n_w * n_w * n_e)
        yield from ((stage, key, p_first) for key in firsts)
        for j in range(1, space.slots_per_stage[stage]):
            p_later = float(np.mean(runs > j)) / (n_w * n_e)
            yield from ((stage, key, p_later) for key in laters)


def _fixed_blocks(space: SearchSpace | ResNetSpace, r: int) -> Iterator[tuple[str, float]]:
    """``(key, probability)`` of the stem and head blocks a uniformly random subnet at ``r`` runs."""
    if isinstance(space, SearchSpace):
        stem, _ = space.stem_blocks(r)
        for b in stem + space.head_blocks(space.slot_sides(r)[1]):
            yield b.key, 1.0
        return
    n_w = len(space.width_choices)
    for w0 in range(n_w):
        for w1 in range(n_w):
            for skip in (False, True):  # the stem's middle conv is kept or skipped alike (OFA's sampling)
                for b in space.stem_blocks(r, w0, w1, skip_middle=skip)[0]:
                    yield b.key, 1.0 / (2 * n_w * n_w)
    side = space.head_side(r)
    for chs in space.stage_widths(space.n_stages - 1):
        for b in space.head_blocks(side, chs):
            yield b.key, 1.0 / n_w


def block_usage(space: SearchSpace | ResNetSpace | str, resolutions: Sequence[int]) -> pd.Series:
    """How many times a uniformly random subnet of ``space`` at ``resolutions`` runs each block, on average.

    Exact (no sampling): every resolution, depth, kernel, expand ratio (and width, for a ResNet space) is
    equally likely, as in :meth:`space.SearchSpace.sample` and :meth:`space.ResNetSpace.sample_archs`. A block
    several resolutions or slots share adds up (the head blocks shared by every resolution count 1).
    Index: block keys, in :meth:`unique_blocks` order.
    """
    space = get_space(space)
    resolutions = list(resolutions)
    usage: dict[str, float] = {b.key: 0.0 for b in space.unique_blocks(resolutions)}
    p_r = 1.0 / len(resolutions)
    for r in resolutions:
        for key, p in _fixed_blocks(space, r):
            usage[key] += p_r * p
        for _, key, p in _slot_blocks(space, r):
            usage[key] += p_r * p
    return pd.Series(usage, name="usage")


# -- the estimator --------------------------------------------------------------------------
def _log_sources(x: np.ndarray) -> np.ndarray:
    """Log latencies, each source floored at 1% of its median: imported tables hold 0 ms rows (a pool
    the i7 table prices at 0), whose log would dominate any linear fit."""
    floor = np.maximum(0.01 * np.median(x, axis=0, keepdims=True), 1e-6)
    return np.log(np.maximum(x, floor))


def _typical_error(log_err: np.ndarray, weight_ms: np.ndarray) -> float:
    """Typical relative error (a fraction) of log-space errors: their RMS, each item weighted by its
    latency (what a sum of many items, a subnet, inherits; a 0.01 ms pool's error barely moves one),
    as a ratio minus one (an RMS log error of 0.2 is 22%).

    Symmetric in over- and under-pricing. The RMS of ms-space relative errors (expm1 of each log error)
    was not: one 0.03 ms pool over-priced 5x (+415%) outweighed a dozen multi-ms blocks 40% off, so a
    held-out LUT's model was chosen by how it priced the cheapest block (onnxruntime 2 threads timed on
    one core, K=20: 49% vs 97% of subnet sums within ±10%)."""
    rms = math.sqrt(float(np.average(np.square(log_err), weights=weight_ms)))
    return math.expm1(min(rms, 20.0))


def _shared_residuals(residuals: np.ndarray) -> float:
    """Median correlation over pairs of columns (sources) of their smoothing residuals; 0 with one source."""
    sd = residuals.std(axis=0)
    keep = sd > 1e-12 * (1.0 + np.abs(residuals).max())
    if keep.sum() < 2:
        return 0.0
    corr = np.corrcoef(residuals[:, keep].T)
    return float(np.median(corr[np.triu_indices(len(corr), 1)]))


def _nnls_fit(Z: np.ndarray, y: np.ndarray, n_pos: int, alpha: float,
              weight: np.ndarray) -> tuple[np.ndarray, float]:
    """Weighted ridge NNLS on centered columns: the first ``n_pos`` weights >= 0, the rest signed.

    When every column is non-negative (no feature terms, which can carry part of the scaling), their
    weights are also pulled toward summing to 1 (``_HOMOGENEITY``).

    Returns:
        (column weights, intercept).
    """
    weight = weight / weight.mean()
    mu, ym = np.average(Z, axis=0, weights=weight), np.average(y, weights=weight)
    Zc = Z - mu
    signed = Zc[:, n_pos:]
    A = np.hstack([Zc[:, :n_pos], signed, -signed])  # a signed weight is the difference of two >= 0 ones
    n_cols = A.shape[1]
    root = np.sqrt(weight)[:, None]
    A = np.vstack([A * root, math.sqrt(alpha * len(y)) * np.eye(n_cols)])
    b = np.concatenate([(y - ym) * root[:, 0], np.zeros(n_cols)])
    if n_pos == Z.shape[1] and n_pos and _HOMOGENEITY > 0:  # one more row: pull * (Σ w_pos - 1)
        pull = math.sqrt(_HOMOGENEITY * len(y))
        row = np.zeros((1, n_cols))
        row[0, :n_pos] = pull
        A, b = np.vstack([A, row]), np.append(b, pull)
    sol, _ = nnls(A, b, maxiter=50 * n_cols)
    n_signed = Z.shape[1] - n_pos
    w = np.concatenate([sol[:n_pos], sol[n_pos:n_pos + n_signed] - sol[n_pos + n_signed:]])
    return w, float(ym - mu @ w)


def _affine_fit(S: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, float]:
    """Ridge NNLS of ``y ≈ c + S @ w`` with ``c, w >= 0``, each item's squared error divided by its ``y``.

    The weighting makes the loss the latency-weighted squared relative error (for small errors, the
    latency-weighted squared log error the CV metric takes). Units
    are a typical item's latency (the caller divides by it), so one ridge grid fits every table.
    """
    root = 1.0 / np.sqrt(y)
    A = np.hstack([np.ones((len(y), 1)), S]) * root[:, None]
    n_cols = A.shape[1]
    pen = math.sqrt(alpha * len(y)) * np.eye(n_cols)
    pen[0, 0] = 0.0  # the constant is not shrunk
    sol, _ = nnls(np.vstack([A, pen]), np.concatenate([y * root, np.zeros(n_cols)]), maxiter=50 * n_cols)
    return sol[1:], float(sol[0])


class TransferModel:
    """Predicts a target setting's latencies from source settings' latencies and item features.

    Semi-supervised, scikit-learn style: ``X`` holds every item (the first ``n_sources`` columns
    are source latencies in ms, the rest numeric features), ``y`` the target latency in ms with NaN
    for items not measured. The unmeasured items still teach the source smoothing.

    Args:
        n_sources: how many leading columns of ``X`` are source latencies (ms).
        candidates: names from ``CANDIDATES`` to choose among by leave-one-out CV (None: all).
        max_cv_error: the fit is refused (TransferError) when the chosen candidate's CV typical relative
            error exceeds this fraction, or when it is no better than predicting one constant.

    Attributes (after fit):
        model_: the chosen candidate's name.
        alpha_: its ridge strength.
        cv_error_: its leave-one-out typical relative error (a fraction; see _typical_error).
        cv_errors_: ``{candidate: CV error}`` of every candidate tried (best alpha each).
        n_measured_: how many items were measured.
        source_weights_: the non-negative weight of each source column (raw + smoothed).
        shared_residuals_: median correlation between sources of their smoothing residuals; above
            _SHARED_RESIDUALS the smoothed candidate is tried last instead of first.
    """

    def __init__(self, n_sources: int = 1, candidates: Sequence[str] | None = None,
                 max_cv_error: float = 0.5) -> None:
        self.n_sources = n_sources
        self.candidates = candidates
        self.max_cv_error = max_cv_error

    def _check(self, X: Any) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] < self.n_sources:
            raise TransferError(f"X must be 2-D with at least n_sources={self.n_sources} columns, got shape {X.shape}")
        if not np.all(np.isfinite(X)):
            raise TransferError("X has NaN or infinite values; every item needs every source latency and feature")
        if np.any(X[:, :self.n_sources] < 0):
            raise TransferError("source latencies must be >= 0 ms")
        return X

    def _design(self, X: np.ndarray, name: str) -> tuple[np.ndarray, int]:
        """(columns, number of non-negative ones) of candidate ``name`` for items ``X``."""
        if name == _AFFINE:
            return X[:, :self.n_sources] / self.scale_, self.n_sources
        raw, smooth, feats = CANDIDATES[name]
        z = _log_sources(X[:, :self.n_sources])
        F = (X[:, self.n_sources:] - self.feat_mu_) / self.feat_sd_
        pos = []
        if raw:
            pos.append(z)
        if smooth:
            pos.append(np.hstack([F, np.ones((len(F), 1))]) @ self.smooth_coef_)
        signed = [F] if feats else []
        return np.hstack(pos + signed), sum(p.shape[1] for p in pos)

    def _fit_design(self, Z: np.ndarray, y_ms: np.ndarray, n_pos: int, alpha: float,
                    name: str) -> tuple[np.ndarray, float]:
        """(weights, intercept) of candidate ``name`` on design ``Z`` and measured latencies ``y_ms``."""
        if name == _AFFINE:
            return _affine_fit(Z, y_ms / self.scale_, alpha)
        return _nnls_fit(Z, np.log(y_ms), n_pos, alpha, y_ms ** _LATENCY_WEIGHT)

    def _loo(self, Z: np.ndarray, y_ms: np.ndarray, n_pos: int, alpha: float, name: str) -> np.ndarray:
        """Leave-one-out log errors of candidate ``name``."""
        idx = np.arange(len(y_ms))
        out = np.empty(len(y_ms))
        for i in idx:
            keep = idx != i
            w, c = self._fit_design(Z[keep], y_ms[keep], n_pos, alpha, name)
            out[i] = self._link(Z[i:i + 1] @ w + c, name)[0] - math.log(y_ms[i])
        return out

    def _link(self, eta: np.ndarray, name: str) -> np.ndarray:
        """Log latency from a candidate's linear predictor."""
        if name == _AFFINE:
            return np.log(np.maximum(eta * self.scale_, _AFFINE_FLOOR * self.scale_))
        return eta

    def fit(self, X: Any, y: Any) -> TransferModel:
        """Fit on the measured items of ``y`` (NaN: not measured); every row of ``X`` feeds the smoothing.

        Raises:
            TransferError: bad shapes or values, fewer than MIN_MEASURED measured items, an unknown
                candidate, or a fit whose CV error says it is useless.
        """
        X = self._check(X)
        y = np.asarray(y, dtype=np.float64)
        if y.shape != (len(X),):
            raise TransferError(f"y must have one value per row of X ({len(X)}), got shape {y.shape}")
        names = list(CANDIDATES) if self.candidates is None else list(self.candidates)
        unknown = [n for n in names if n not in CANDIDATES]
        if unknown or not names:
            raise TransferError(f"candidates {unknown or names} unknown; valid: {', '.join(CANDIDATES)}")
        measured = np.isfinite(y)
        if np.any(y[measured] <= 0):
            raise TransferError("measured latencies must be > 0 ms")
        self.n_measured_ = int(measured.sum())
        if self.n_measured_ < MIN_MEASURED:
            raise TransferError(f"a transfer needs at least {MIN_MEASURED} measured items, got {self.n_measured_}")
        self.n_features_in_ = X.shape[1]
        F = X[:, self.n_sources:]
        self.feat_mu_, self.feat_sd_ = F.mean(axis=0), F.std(axis=0)
        self.feat_sd_[self.feat_sd_ == 0] = 1.0
        Fs = np.hstack([(F - self.feat_mu_) / self.feat_sd_, np.ones((len(F), 1))])
        ridge = _SMOOTH_ALPHA * np.eye(Fs.shape[1])
        ridge[-1, -1] = 0.0  # the intercept is not shrunk
        z = _log_sources(X[:, :self.n_sources])
        self.smooth_coef_ = np.linalg.solve(Fs.T @ Fs + ridge, Fs.T @ z)
        self.shared_residuals_ = _shared_residuals(z - Fs @ self.smooth_coef_)
        if self.candidates is None and self.shared_residuals_ > _SHARED_RESIDUALS:
            names.sort(key=lambda n: n == _SMOOTHED)  # stable: the others keep CANDIDATES' order
        ylog = np.log(y[measured])
        self.scale_ = float(np.median(y[measured]))  # the affine design works in units of a typical item
        self.cv_errors_: dict[str, float] = {}
        best: tuple[float, str, float] | None = None
        for name in names:
            _, smooth, feats = CANDIDATES[name]
            if (smooth or feats) and X.shape[1] == self.n_sources:
                continue  # smoothing and feature terms need item features
            if feats and self.n_measured_ < _ITEMS_PER_FEATURE * (X.shape[1] - self.n_sources):
                continue
            Z, n_pos = self._design(X[measured], name)
            err, alpha = min((_typical_error(self._loo(Z, y[measured], n_pos, a, name), y[measured]), a)
                             for a in _ALPHAS)
            self.cv_errors_[name] = err
            if best is None or err < best[0] / _PREFER_EARLIER:
                best = (err, name, alpha)
        if best is None:
            raise TransferError(f"candidates {names} cannot be fitted here: smoothing and feature terms need item "
                                f"features, feature terms {_ITEMS_PER_FEATURE} measured items per feature; add \"sources\"")
        self.cv_error_, self.model_, self.alpha_ = best
        # leave-one-out error of predicting every item by the mean of the others
        self.constant_cv_error_ = _typical_error((ylog.mean() - ylog) * len(ylog) / (len(ylog) - 1), y[measured])
        Z, n_pos = self._design(X[measured], self.model_)
        self.coef_, self.intercept_ = self._fit_design(Z, y[measured], n_pos, self.alpha_, self.model_)
        self.source_weights_ = self.coef_[:n_pos]
        useless = self.cv_error_ >= max(self.constant_cv_error_, _ALWAYS_USEFUL)
        if self.cv_error_ > self.max_cv_error or useless:
            raise UselessFitError(
                f"the sources do not predict this setting: cross-validated error {100 * self.cv_error_:.0f}% "
                f"(limit {100 * self.max_cv_error:.0f}%, one constant for every item: "
                f"{100 * self.constant_cv_error_:.0f}%); time more blocks or pick closer sources"
            )
        logger.info("transfer fit: %s (alpha %g) on %d measured items, CV error %.1f%%", self.model_, self.alpha_,
                    self.n_measured_, 100 * self.cv_error_)
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Predicted target latency (ms) of every row of ``X``."""
        if not hasattr(self, "coef_"):
            raise TransferError("this TransferModel is not fitted yet; call fit first")
        X = self._check(X)
        if X.shape[1] != self.n_features_in_:
            raise TransferError(f"X has {X.shape[1]} columns, the model was fitted with {self.n_features_in_}")
        Z, _ = self._design(X, self.model_)
        return np.exp(self._link(Z @ self.coef_ + self.intercept_, self.model_))


def best_proxy(sources_ms: np.ndarray, measured: np.ndarray, y_ms: np.ndarray) -> tuple[np.ndarray, int]:
    """The baseline: the one source whose linear fit (a + b·source, in ms) best matches the measured items.

    Args:
        sources_ms: (n_items, n_sources) latencies.
        measured: indices of the measured items.
        y_ms: their target latencies.

    Returns:
        (predictions for every item, index of the chosen source).
    """
    best: tuple[float, int, np.ndarray] | None = None
    for s in range(sources_ms.shape[1]):
        A = np.column_stack([sources_ms[measured, s], np.ones(len(measured))])
        coef, *_ = np.linalg.lstsq(A, y_ms, rcond=None)
        sse = float(np.sum((A @ coef - y_ms) ** 2))
        if best is None or sse < best[0]:
            best = (sse, s, coef)
    if best is None:
        raise TransferError("best_proxy needs at least one source")
    _, s, coef = best
    return sources_ms[:, s] * coef[0] + coef[1], s


# -- which items to time --------------------------------------------------------------------
def select_items(sources_ms: np.ndarray, features: np.ndarray, k: int, strata: pd.DataFrame | None = None,
                 random_state: int | None = 0, mass: np.ndarray | None = None) -> np.ndarray:
    """K informative items to measure: representative of the latency mass, spread, and where sources disagree.

    Greedy: each pick maximizes the sum of (how much of the items' mass it brings close to a pick: the
    gain of a mass-weighted facility-location objective in standardized log-source and feature space),
    (its distance to the nearest pick), (how much the sources disagree on it, after each is scaled to
    the others) and (how many of its strata values no pick covers yet). Ties break by a seeded shuffle.
    The mass term keeps a small K on items like the many that make up a subnet's latency instead of
    on outliers (the fixed head layers, a block a source prices at 0 ms), which a pure spread favours.

    Args:
        sources_ms: (n_items, n_sources) latencies.
        features: (n_items, n_features) numeric descriptors.
        k: how many items to pick (1 <= k <= n_items).
        strata: optional categorical columns (e.g. kind, stage, resolution), one row per item.
        random_state: seed of the tie-breaking shuffle.
        mass: optional (n_items,) weight of each item in what is predicted (for blocks: how often a
            subnet runs it times its typical latency); None: no mass term (items that are whole
            networks, e.g. subnets, where spread matters more than representativeness).

    Returns:
        The indices of the picked items, in pick order.
    """
    n = len(sources_ms)
    if not 1 <= k <= n:
        raise TransferError(f"k must be between 1 and the number of items ({n}), got {k}")
    z = _log_sources(np.asarray(sources_ms, dtype=np.float64))
    space = np.hstack([z, np.asarray(features, dtype=np.float64)]) if np.size(features) else z
    sd = space.std(axis=0)
    space = (space - space.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    space /= math.sqrt(space.shape[1])
    shifted = z - np.median(z - z.mean(axis=1, keepdims=True), axis=0)  # each source on the others' scale
    disagreement = shifted.std(axis=1) if z.shape[1] > 1 else np.zeros(n)
    if disagreement.max() > 0:
        disagreement = disagreement / disagreement.max()
    weight = np.zeros(n) if mass is None else np.asarray(mass, dtype=np.float64)
    if weight.shape != (n,) or not np.all(np.isfinite(weight)) or np.any(weight < 0):
        raise TransferError(f"mass must hold one finite value >= 0 per item ({n})")
    # the mass term's pairwise distances: (n, n), 200 MB at 5,000 items, so only built when it is used
    d2 = cdist(space, space, "sqeuclidean") if mass is not None else None
    codes = [] if strata is None else [pd.factorize(strata[c])[0] for c in strata.columns]
    covered = [np.zeros(c.max() + 1, dtype=bool) for c in codes]
    rng = np.random.default_rng(random_state)
    jitter = rng.uniform(0, 1e-9, n)
    dist = np.full(n, np.inf)  # squared distance of each item to its nearest pick
    picked: list[int] = []
    for _ in range(k):
        gain = np.zeros(n)
        if d2 is not None:  # facility location: distances capped at the largest (nothing picked yet)
            gain = weight @ np.maximum(np.minimum(dist, d2.max())[:, None] - d2, 0.0)
            gain = gain / gain.max() if gain.max() > 0 else gain
        spread = np.where(np.isfinite(dist), dist, 0.0)
        spread = spread / spread.max() if spread.max() > 0 else spread
        new = sum((~cov[c]).astype(float) for cov, c in zip(covered, codes)) / max(len(codes), 1)
        score = _MASS_WEIGHT * gain + _SPREAD_WEIGHT * spread + disagreement + new + jitter
        score[picked] = -np.inf
        i = int(np.argmax(score))
        picked.append(i)
        dist = np.minimum(dist, np.sum((space - space[i]) ** 2, axis=1))
        for cov, c in zip(covered, codes):
            cov[c[i]] = True
    return np.array(picked)


# -- whole tables ---------------------------------------------------------------------------
def _source_matrix(sources: Mapping[str, Mapping[str, float]], keys: Sequence[str]) -> np.ndarray:
    """(n_keys, n_sources) latencies; TransferError naming the first source lacking keys."""
    if not sources:
        raise TransferError("a few-shot transfer needs at least one source LUT (--from)")
    cols = []
    for name, table in sources.items():
        missing = [k for k in keys if table.get(k) is None]
        if missing:
            raise TransferError(
                f"source {name!r} lacks {len(missing)} of the {len(keys)} blocks needed (e.g. {missing[0]}); "
                "a source must have measured (not predicted) rows for the same space and resolutions"
            )
        cols.append([float(table[k]) for k in keys])
    return np.array(cols, dtype=np.float64).T


def plan_few_shot(sources: Mapping[str, Mapping[str, float]], space: SearchSpace | ResNetSpace | str, resolutions: Sequence[int],
                k: int, random_state: int | None = 0) -> list[str]:
    """The K block keys to time for a few-shot LUT of ``space`` at ``resolutions``.

    Raises:
        TransferError: a source lacks blocks, or K is not in [MIN_MEASURED, number of blocks].
    """
    blocks = get_space(space).unique_blocks(list(resolutions))
    keys = [b.key for b in blocks]
    if not MIN_MEASURED <= k <= len(keys):
        raise TransferError(f"--few-shot K must be between {MIN_MEASURED} and the number of blocks "
                            f"({len(keys)} for {get_space(space).name} at {len(resolutions)} resolution(s)), got {k}")
    S = _source_matrix(sources, keys)
    # Spread over stages and resolutions; kinds spread through the features (a strata bonus per kind
    # would spend a small K on the six fixed layers, the least informative blocks).
    strata = block_strata(space, resolutions).loc[keys, ["stage", "resolution"]]
    # An item's mass: how often a random subnet runs it times its typical latency over the sources
    # (each source scaled to its median first, so that no one source's units dominate).
    z = _log_sources(S)
    typical = np.exp(np.mean(z - np.median(z, axis=0), axis=1))
    mass = block_usage(space, resolutions).loc[keys].to_numpy() * typical
    picked = select_items(S, block_descriptors(blocks).to_numpy(), k, strata, random_state=random_state, mass=mass)
    return [keys[i] for i in picked]


@dataclass(frozen=True)
class TransferResult:
    """A full predicted table and how it was made."""

    predicted_ms: dict[str, float]  # every key the transfer predicted (measured keys excluded)
    measured_ms: dict[str, float]  # the keys that were timed
    model: str  # candidate chosen, e.g. "sources+smoothed"
    cv_error: float  # leave-one-out typical relative error of the chosen candidate (a fraction)
    sources: tuple[str, ...]  # the source settings, in column order
    source_weights: dict[str, float] = field(default_factory=dict)  # weight of each source's raw log latency

    def summary(self) -> dict[str, Any]:
        """What a store keeps about the transfer and readers show (JSON-friendly)."""
        return {"model": MODEL_NAME, "candidate": self.model, "cv_error_pct": round(100 * self.cv_error, 2),
                "measured": len(self.measured_ms), "predicted": len(self.predicted_ms),
                "sources": list(self.sources),
                "source_weights": {k: round(v, 4) for k, v in self.source_weights.items()}}


def transfer_table(sources: Mapping[str, Mapping[str, float]], measured_ms: Mapping[str, float],
                   space: SearchSpace | ResNetSpace | str, resolutions: Sequence[int], *,
                   max_cv_error: float = 0.5) -> TransferResult:
    """Predict every block of ``space`` at ``resolutions`` the target lacks, from ``measured_ms`` and ``sources``.

    Args:
        sources: ``{source setting name: {block_key: ms}}``; each must cover every block.
        measured_ms: the target's timed blocks.
        space: the search space.
        resolutions: the resolutions the LUT covers.
        max_cv_error: refuse a fit whose CV typical relative error is above this fraction.

    Raises:
        TransferError: a source lacks blocks, too few measured blocks, or a useless fit.
    """
    blocks = get_space(space).unique_blocks(list(resolutions))
    keys = [b.key for b in blocks]
    S = _source_matrix(sources, keys)
    X = np.hstack([S, block_descriptors(blocks).to_numpy()])
    y = np.array([measured_ms.get(k, np.nan) for k in keys], dtype=np.float64)
    model = TransferModel(n_sources=S.shape[1], max_cv_error=max_cv_error).fit(X, y)
    todo = np.flatnonzero(~np.isfinite(y))
    pred = model.predict(X[todo]) if len(todo) else np.empty(0)
    names = tuple(sources)
    raw = CANDIDATES[model.model_][0]
    weights = dict(zip(names, model.source_weights_[:len(names)].tolist())) if raw else {}
    return TransferResult(
        predicted_ms={keys[i]: float(p) for i, p in zip(todo, pred)},
        measured_ms={k: float(measured_ms[k]) for k in keys if k in measured_ms},
        model=model.model_, cv_error=model.cv_error_, sources=names, source_weights=weights,
    )


# -- the store: predicted rows are marked, and every reader can say so ------------------------
@dataclass(frozen=True)
class PredictedRows:
    """How much of a setting's LUT is predicted rather than measured, and the error to expect."""

    setting: str  # the setting, described for humans
    predicted: int  # rows the transfer predicted (source PREDICTED_SOURCE)
    rows: int  # all rows of the setting
    cv_error_pct: float | None  # the transfer's cross-validated error (latency-weighted RMS, percent)
    sources: tuple[str, ...]  # settings the rows were predicted from
    model: str  # MODEL_NAME of the transfer

    def to_dict(self) -> dict[str, Any]:
        return {"predicted_rows": self.predicted, "rows": self.rows, "expected_error_pct": self.cv_error_pct,
                "sources": list(self.sources), "model": self.model}

    def describe(self) -> str:
        """One line for a reader's output."""
        err = f"cross-validated error {self.cv_error_pct:.1f}% per block" if self.cv_error_pct is not None else \
            "error unknown"
        return (f"{self.setting}: {self.predicted} of {self.rows} rows are predicted, not measured (few-shot from "
                f"{', '.join(self.sources) or '?'}; {err}); `lutnas validate` checks them, `lutnas profile` measures them")


def measured_keys(store: LutStore, setting: int | str | StoredSetting) -> set[str]:
    """The block keys the setting has measured (or imported) rows for; predicted rows do not count."""
    rows = store.rows(setting)
    return set(rows.loc[rows["source"] != PREDICTED_SOURCE, "block_key"])


def predicted_rows(store: LutStore, setting: int | str | StoredSetting) -> PredictedRows | None:
    """What of the setting's LUT is predicted (None when every row is measured or imported)."""
    stored = store.setting(setting)
    rows = store.rows(stored.id)
    n_pred = int((rows["source"] == PREDICTED_SOURCE).sum())
    if n_pred == 0:
        return None
    info = stored.info.get("few_shot")
    if info is None:  # rows copied or imported without the setting's info: each row's extra still says
        info = json.loads(rows.loc[rows["source"] == PREDICTED_SOURCE, "extra"].iloc[0] or "{}")
    return PredictedRows(setting=stored.describe(), predicted=n_pred, rows=len(rows),
                         cv_error_pct=info.get("cv_error_pct"), sources=tuple(info.get("sources", ())),
                         model=str(info.get("model", "")))


def store_transfer(store: LutStore, setting: int | str | StoredSetting, result: TransferResult) -> int:
    """Write a transfer's predicted rows, marked as predicted, and its summary, in one transaction.

    Rows the setting has measured are never overwritten (a measured key is not predicted). Each row's
    ``source`` is PREDICTED_SOURCE and its ``extra`` names the model and its CV error; the setting's
    info holds the summary under ``few_shot``.

    Returns:
        The number of predicted rows written.
    """
    stored = store.setting(setting)
    have = measured_keys(store, stored.id)
    clash = sorted(have & set(result.predicted_ms))
    if clash:
        raise TransferError(f"{stored.describe()} has measured rows the transfer predicted (e.g. {clash[0]}); refit")
    summary = result.summary()
    extra = {"model": MODEL_NAME, "candidate": result.model, "cv_error_pct": summary["cv_error_pct"]}
    rows = [(key, {"median_ms": ms, "n": 0}, {"source": PREDICTED_SOURCE, "extra": extra})
            for key, ms in result.predicted_ms.items()]
    store.import_rows(stored.setting, rows, info={"few_shot": summary})  # a DeviceSetting: its info is merged
    logger.info("stored %d predicted rows for %s", len(rows), stored.describe())
    return len(rows)


def load_sources(store: LutStore, refs: Sequence[str | int]) -> dict[str, dict[str, float]]:
    """``{setting description: {block_key: median ms}}`` of the source settings ``refs`` (names or ids).

    Predicted rows of a source are left out: a transfer learns from measurements only.

    Raises:
        UnknownDeviceError / AmbiguousDeviceError: a ref names no setting or several.
        TransferError: no refs, or the same setting twice.
    """
    if not refs:
        raise TransferError("a few-shot transfer needs at least one source LUT (--from)")
    out: dict[str, dict[str, float]] = {}
    for ref in refs:
        stored = store.setting(ref)
        if stored.describe() in out:
            raise TransferError(f"--from names {stored.describe()} twice")
        keep = measured_keys(store, stored.id)
        out[stored.describe()] = {k: v for k, v in store.table(stored.id).items() if k in keep}
    return out


def fill_from_sources(store: LutStore, setting: int | str | StoredSetting, sources: Mapping[str, Mapping[str, float]],
                      space: SearchSpace | ResNetSpace | str, resolutions: Sequence[int], *,
                      max_cv_error: float = 0.5) -> TransferResult:
    """Predict every block the setting has not measured from its measured rows and ``sources``; store them.

    Raises:
        TransferError: the setting is one of the sources, a source lacks blocks, too few measured
            blocks, or a useless fit (nothing is written then).
    """
    stored = store.setting(setting)
    if stored.describe() in sources:
        raise TransferError(f"{stored.describe()} is the setting being profiled; it cannot be its own source")
    keep = measured_keys(store, stored.id)
    measured = {k: v for k, v in store.table(stored.id).items() if k in keep}
    result = transfer_table(sources, measured, space, resolutions, max_cv_error=max_cv_error)
    store_transfer(store, stored.id, result)
    return result
