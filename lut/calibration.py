"""Calibration: a per-device-setting correction from raw LUT sums to measured end-to-end latency.

A LUT sums blocks timed one at a time; a whole network differs by per-network overhead (one
session call instead of many), per-block overhead that a standalone block pays but a fused
network does not, and stage-specific effects (cache reuse between neighbouring blocks). The
corrections here are small linear models on features any LUT can compute for any subnet:

=============== ==========================================================================
feature          meaning
=============== ==========================================================================
``raw_ms``       the plain LUT sum
``fixed_ms``     stem + fixed first block + head (final expand, pool, feature mix, classifier)
``stageK_ms``    the sum over stage K's active blocks (K = 1..5)
``n_blocks``     the number of blocks the subnet runs
=============== ==========================================================================

Candidate models (``MODELS``), simplest first: ``identity`` (no correction), ``scale``
(b·raw), ``affine`` (a + b·raw), ``affine_blocks`` (a + b·raw + c·n_blocks) and ``per_stage``
(a + b₀·fixed + Σ bₖ·stageK + c·n_blocks, with non-negative latency coefficients). Each is fitted
by least squares on *relative* errors (the fidelity targets are relative) and scored by k-fold
cross-validation; the simplest model within 2% of the best CV RMSPE wins. Models are stored as
JSON coefficients, never pickled.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from lut.errors import CalibrationError

if TYPE_CHECKING:
    from lut.predict import CompiledLut
    from lut.store import LutStore, StoredSetting
    from space import Block, SubnetBatch

__all__ = [
    "FEATURES",
    "MODELS",
    "FORMAT_VERSION",
    "Calibration",
    "fit_calibration",
    "fidelity_metrics",
    "subnet_features",
    "block_features",
]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
N_STAGES = 5
FEATURES: tuple[str, ...] = ("raw_ms", "fixed_ms", *(f"stage{k}_ms" for k in range(1, N_STAGES + 1)), "n_blocks")

# name -> (features, has intercept); latency (``*_ms``) coefficients are constrained >= 0.
MODELS: dict[str, tuple[tuple[str, ...], bool]] = {
    "identity": (("raw_ms",), False),
    "scale": (("raw_ms",), False),
    "affine": (("raw_ms",), True),
    "affine_blocks": (("raw_ms", "n_blocks"), True),
    "per_stage": (("fixed_ms", *(f"stage{k}_ms" for k in range(1, N_STAGES + 1)), "n_blocks"), True),
}
# A model whose CV RMSPE is within this factor of the best is preferred when it is simpler.
_SIMPLER_TOLERANCE = 1.02


# -- metrics ---------------------------------------------------------------------------------
def fidelity_metrics(predicted_ms: Sequence[float] | np.ndarray, measured_ms: Sequence[float] | np.ndarray) -> dict[str, float]:
    """How well predictions match measurements.

    Args:
        predicted_ms: predictions (ms).
        measured_ms: measurements (ms), all > 0.

    Returns:
        ``n``; ``rmse_ms``; ``rmspe``, ``mape`` and ``bias`` (mean signed relative error), in percent
        of the measurement; ``bias_ms`` (mean signed error); ``within_5pct`` and ``within_10pct``, the
        percentage of samples whose relative error is within ±5% / ±10%; ``max_abs_pct``.
    """
    pred = np.asarray(predicted_ms, dtype=np.float64)
    meas = np.asarray(measured_ms, dtype=np.float64)
    if pred.shape != meas.shape or pred.ndim != 1:
        raise ValueError(f"predicted and measured must be 1-D of equal length, got {pred.shape} and {meas.shape}")
    if len(meas) == 0:
        raise ValueError("fidelity_metrics needs at least one sample")
    if not np.all(np.isfinite(meas)) or np.any(meas <= 0):
        raise ValueError("measured_ms must be finite and > 0")
    err = pred - meas
    rel = err / meas
    return {
        "n": int(len(meas)),
        "rmse_ms": float(np.sqrt(np.mean(err**2))),
        "rmspe": float(100 * np.sqrt(np.mean(rel**2))),
        "mape": float(100 * np.mean(np.abs(rel))),
        "bias": float(100 * np.mean(rel)),
        "bias_ms": float(np.mean(err)),
        "within_5pct": float(100 * np.mean(np.abs(rel) <= 0.05)),
        "within_10pct": float(100 * np.mean(np.abs(rel) <= 0.10)),
        "max_abs_pct": float(100 * np.max(np.abs(rel))),
    }


# -- features --------------------------------------------------------------------------------
def subnet_features(compiled: CompiledLut, batch: SubnetBatch) -> pd.DataFrame:
    """The calibration features (``FEATURES`` columns) of every subnet in ``batch``, from the raw LUT."""
    parts = compiled.components(batch)
    # A space with fewer stages than FEATURES names (ResNet50 has four) has no time in the others.
    zeros = np.zeros(len(parts["raw_ms"]))
    return pd.DataFrame({name: parts.get(name, zeros) for name in FEATURES})


def block_features(compiled: CompiledLut, blocks: Sequence[Block]) -> dict[str, float]:
    """The calibration features of an explicit block list (e.g. a net.config), priced by ``compiled``.

    The first mbconv is the fixed first block; later mbconvs are assigned to the stage whose width
    they output in ``compiled.space``.

    Raises:
        CalibrationError: a block's output width is not a stage width of the space.
        MissingBlocksError: a block is not in the LUT.
    """
    latencies = compiled.block_latencies(blocks)  # raises on missing keys
    space = compiled.space
    out = {name: 0.0 for name in FEATURES}
    seen_first_mbconv = False
    for block, ms in zip(blocks, latencies):
        out["raw_ms"] += ms
        if block.kind != "mbconv" or not seen_first_mbconv:
            seen_first_mbconv |= block.kind == "mbconv"
            out["fixed_ms"] += ms
            continue
        if block.out_chs not in space.stage_chs:
            raise CalibrationError(f"block {block.key} outputs {block.out_chs} channels, not a stage width of "
                                   f"{space.name} {list(space.stage_chs)}")
        out[f"stage{space.stage_chs.index(block.out_chs) + 1}_ms"] += ms
    out["n_blocks"] = float(len(blocks))
    return out


# -- the model -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Calibration:
    """A fitted linear correction: ``intercept_ms + sum(coef[i] * features[i])``.

    Attributes:
        kind: the model name (a key of ``MODELS``).
        features: the feature names the coefficients apply to.
        coef: one coefficient per feature.
        intercept_ms: the constant term.
        space: the space the training subnets came from (None: any).
        n_samples: training set size.
        cv_metrics: the chosen model's cross-validated ``fidelity_metrics``.
        candidates: every tried model's cross-validated metrics.
        raw_metrics: the uncorrected LUT sums' metrics on the training set.
    """

    kind: str
    features: tuple[str, ...]
    coef: tuple[float, ...]
    intercept_ms: float = 0.0
    space: str | None = None
    n_samples: int = 0
    cv_metrics: dict[str, float] = field(default_factory=dict, compare=False)
    candidates: dict[str, dict[str, float]] = field(default_factory=dict, compare=False)
    raw_metrics: dict[str, float] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        unknown = [f for f in self.features if f not in FEATURES]
        if unknown:
            raise CalibrationError(f"calibration features {unknown} are unknown; valid: {', '.join(FEATURES)}")
        if len(self.coef) != len(self.features):
            raise CalibrationError(f"calibration has {len(self.coef)} coefficients for {len(self.features)} features")

    def predict(self, features: pd.DataFrame | Mapping[str, Any]) -> np.ndarray:
        """Calibrated latency (ms) from a features table (columns ``self.features``; more are ignored)."""
        missing = [f for f in self.features if f not in features]
        if missing:
            raise CalibrationError(f"features missing for calibration {self.kind!r}: {missing}")
        out = np.full(len(np.asarray(features[self.features[0]])), self.intercept_ms, dtype=np.float64)
        for name, c in zip(self.features, self.coef):
            out += c * np.asarray(features[name], dtype=np.float64)
        return out

    def weights(self) -> dict[str, float]:
        """Coefficient per feature name (0 for unused features)."""
        w = dict.fromkeys(FEATURES, 0.0)
        w.update(zip(self.features, self.coef))
        return w

    def to_json(self) -> str:
        """The model as a JSON string (with ``format_version``)."""
        return json.dumps({
            "format_version": FORMAT_VERSION, "kind": self.kind, "features": list(self.features),
            "coef": list(self.coef), "intercept_ms": self.intercept_ms, "space": self.space,
            "n_samples": self.n_samples, "cv_metrics": self.cv_metrics, "candidates": self.candidates,
            "raw_metrics": self.raw_metrics,
        }, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | Mapping[str, Any]) -> Calibration:
        """Read :meth:`to_json` output.

        Raises:
            CalibrationError: not JSON, an unknown format version or missing fields.
        """
        try:
            data = json.loads(text) if isinstance(text, str) else dict(text)
        except ValueError as err:
            raise CalibrationError(f"calibration is not JSON ({err})") from err
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise CalibrationError(f"calibration format_version {version!r} is unknown; this lutnas reads {FORMAT_VERSION}")
        try:
            return cls(kind=str(data["kind"]), features=tuple(data["features"]), coef=tuple(float(c) for c in data["coef"]),
                       intercept_ms=float(data["intercept_ms"]), space=data.get("space"),
                       n_samples=int(data.get("n_samples", 0)), cv_metrics=dict(data.get("cv_metrics", {})),
                       candidates=dict(data.get("candidates", {})), raw_metrics=dict(data.get("raw_metrics", {})))
        except (KeyError, TypeError, ValueError) as err:
            raise CalibrationError(f"calibration JSON lacks or mangles field {err}") from err

    @classmethod
    def from_store(cls, store: LutStore, setting: int | str | StoredSetting, space: str | None = None
                   ) -> Calibration | None:
        """The setting's newest calibration in ``store`` (fitted for ``space``, or for any space, when given).

        The store keeps documents; this builds the model from the newest one that fits.

        Raises:
            CalibrationError: the stored document is of an unknown format.
        """
        docs = store.calibration_docs(setting, space)
        return cls.from_json(docs[0]) if docs else None

    def describe(self) -> str:
        """``affine: 0.512 + 0.934*raw_ms (CV RMSPE 3.1%, n=100)``."""
        terms = " + ".join(f"{c:.4g}*{f}" for f, c in zip(self.features, self.coef))
        head = f"{self.intercept_ms:.4g} + {terms}" if self.intercept_ms else terms
        rmspe = self.cv_metrics.get("rmspe")
        tail = f" (CV RMSPE {rmspe:.2f}%, n={self.n_samples})" if rmspe is not None else f" (n={self.n_samples})"
        return f"{self.kind}: {head}{tail}"


def _design(features: pd.DataFrame, names: Sequence[str], intercept: bool) -> np.ndarray:
    cols = [features[n].to_numpy(dtype=np.float64) for n in names]
    if intercept:
        cols.insert(0, np.ones(len(features)))
    return np.column_stack(cols)


def _fit_one(kind: str, features: pd.DataFrame, y: np.ndarray) -> tuple[float, tuple[float, ...]]:
    from scipy.optimize import lsq_linear

    names, intercept = MODELS[kind]
    if kind == "identity":
        return 0.0, (1.0,)
    X = _design(features, names, intercept)
    lower = np.array(([-np.inf] if intercept else []) + [0.0 if n.endswith("_ms") else -np.inf for n in names])
    upper = np.full(len(lower), np.inf)
    # Least squares on relative errors: scale each row by 1 / measured.
    w = 1.0 / y
    scale = np.maximum(np.abs(X).max(axis=0), 1e-12)  # column scaling for conditioning
    res = lsq_linear((X * w[:, None]) / scale, y * w, bounds=(lower * scale, upper * scale), method="bvls")
    theta = res.x / scale
    if intercept:
        return float(theta[0]), tuple(float(t) for t in theta[1:])
    return 0.0, tuple(float(t) for t in theta)


def _n_params(kind: str) -> int:
    names, intercept = MODELS[kind]
    return 0 if kind == "identity" else len(names) + int(intercept)


def fit_calibration(features: pd.DataFrame, measured_ms: Sequence[float] | np.ndarray, *,
                    models: Sequence[str] | None = None, n_splits: int = 5, random_state: int | None = 0,
                    space: str | None = None) -> Calibration:
    """Fit every candidate model, score it by k-fold CV, and return the chosen one refitted on all samples.

    Args:
        features: one row per subnet with the ``FEATURES`` columns (see :func:`subnet_features`).
        measured_ms: the subnets' measured end-to-end latency (ms).
        models: candidate names (default all of ``MODELS``), tried simplest first.
        n_splits: CV folds (reduced to the sample count when smaller).
        random_state: seeds the fold shuffle.
        space: the space name to file the calibration under.

    Returns:
        The chosen :class:`Calibration` with ``cv_metrics`` (held-out) and ``candidates``.

    Raises:
        CalibrationError: fewer than 3 samples, bad measurements or missing feature columns.
    """
    from sklearn.model_selection import KFold

    y = np.asarray(measured_ms, dtype=np.float64)
    if not isinstance(features, pd.DataFrame):
        features = pd.DataFrame(features)
    if len(features) != len(y):
        raise CalibrationError(f"features has {len(features)} rows but measured_ms has {len(y)}")
    if len(y) < 3:
        raise CalibrationError(f"calibration needs at least 3 samples, got {len(y)}")
    if not np.all(np.isfinite(y)) or np.any(y <= 0):
        raise CalibrationError("measured_ms must be finite and > 0")
    kinds = list(MODELS) if models is None else list(models)
    unknown = [k for k in kinds if k not in MODELS]
    if unknown:
        raise CalibrationError(f"unknown calibration models {unknown}; valid: {', '.join(MODELS)}")
    needed = sorted({n for k in kinds for n in MODELS[k][0]})
    missing = [n for n in needed if n not in features.columns]
    if missing:
        raise CalibrationError(f"features lack columns {missing}; compute them with subnet_features()")
    if not np.all(np.isfinite(features[needed].to_numpy(dtype=np.float64))):
        raise CalibrationError("features contain NaN or infinite values")
    features = features.reset_index(drop=True)
    folds = list(KFold(n_splits=min(n_splits, len(y)), shuffle=True, random_state=random_state).split(y))
    candidates: dict[str, dict[str, float]] = {}
    for kind in kinds:
        if _n_params(kind) > 0 and min(len(train) for train, _ in folds) < 2 * _n_params(kind):
            logger.debug("skipping calibration model %s: too few samples", kind)
            continue
        oof = np.empty_like(y)
        for train, test in folds:
            intercept, coef = _fit_one(kind, features.iloc[train], y[train])
            cal = Calibration(kind=kind, features=MODELS[kind][0], coef=coef, intercept_ms=intercept)
            oof[test] = cal.predict(features.iloc[test])
        candidates[kind] = fidelity_metrics(oof, y)
    best = min(m["rmspe"] for m in candidates.values())
    chosen = next(k for k in candidates if candidates[k]["rmspe"] <= best * _SIMPLER_TOLERANCE + 1e-12)
    intercept, coef = _fit_one(chosen, features, y)
    raw = fidelity_metrics(features["raw_ms"].to_numpy(dtype=np.float64), y) if "raw_ms" in features else {}
    cal = Calibration(kind=chosen, features=MODELS[chosen][0], coef=coef, intercept_ms=intercept, space=space,
                      n_samples=len(y), cv_metrics=candidates[chosen], candidates=candidates, raw_metrics=raw)
    logger.info("calibration chosen: %s", cal.describe())
    return cal
