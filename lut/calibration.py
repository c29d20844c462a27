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
``stageK_ms``    the sum over stage K's active blocks (K = 1 .. the space's stage count)
``n_blocks``     the number of blocks the subnet runs
=============== ==========================================================================

Candidate models (:func:`models_for`), simplest first: ``identity`` (no correction), ``scale``
(b·raw), ``affine`` (a + b·raw), ``affine_blocks`` (a + b·raw + c·n_blocks) and ``per_stage``
(a + b₀·fixed + Σ bₖ·stageK + c·n_blocks, with non-negative latency coefficients). Each is fitted
by least squares on *relative* errors (the fidelity targets are relative) and scored by k-fold
cross-validation; the simplest model within 2% of the best CV RMSPE wins. Models are stored as
JSON coefficients, never pickled.

The stage features follow the space (:func:`features_for`): MobileNetV3 has five stages, ProxylessNAS six,
ResNet50 four. A stored calibration names its features, so one fitted before stage features were derived
(MobileNetV3's ``stage1_ms`` .. ``stage5_ms``) reads unchanged.
"""

from __future__ import annotations

import json
import logging
import re
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
    "features_for",
    "models_for",
    "FORMAT_VERSION",
    "Calibration",
    "fit_calibration",
    "fidelity_metrics",
    "subnet_features",
    "block_features",
]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
_STAGE_FEATURE = re.compile(r"^stage([1-9][0-9]*)_ms$")
_PLAIN_FEATURES = ("raw_ms", "fixed_ms", "n_blocks")


def features_for(n_stages: int) -> tuple[str, ...]:
    """The calibration features of a space with ``n_stages`` elastic stages.

    Raises:
        ValueError: ``n_stages`` is not a positive int.
    """
    if isinstance(n_stages, bool) or not isinstance(n_stages, int) or n_stages < 1:
        raise ValueError(f"n_stages must be an int >= 1, got {n_stages!r}")
    return ("raw_ms", "fixed_ms", *(f"stage{k}_ms" for k in range(1, n_stages + 1)), "n_blocks")


def models_for(n_stages: int) -> dict[str, tuple[tuple[str, ...], bool]]:
    """Candidate models for a space with ``n_stages`` stages: name -> (features, has intercept).

    Latency (``*_ms``) coefficients are constrained >= 0 when fitted.
    """
    stages = features_for(n_stages)[2:-1]
    return {
        "identity": (("raw_ms",), False),
        "scale": (("raw_ms",), False),
        "affine": (("raw_ms",), True),
        "affine_blocks": (("raw_ms", "n_blocks"), True),
        "per_stage": (("fixed_ms", *stages, "n_blocks"), True),
    }


# The features and models of a five-stage space (OFA-MobileNetV3); other spaces: features_for, models_for.
FEATURES: tuple[str, ...] = features_for(5)
MODELS: dict[str, tuple[tuple[str, ...], bool]] = models_for(5)
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
    """The calibration features (``features_for(compiled.space.n_stages)`` columns) of every subnet in ``batch``."""
    parts = compiled.components(batch)
    return pd.DataFrame({name: parts[name] for name in features_for(compiled.space.n_stages)})


def block_features(compiled: CompiledLut, blocks: Sequence[Block]) -> dict[str, float]:
    """The calibration features of an explicit block list (e.g. a net.config), priced by ``compiled``.

    Stem and head blocks (and an inverted-residual space's fixed first block) are ``fixed_ms``. Each
    elastic block without an identity skip (an mbconv or a bottleneck) starts the next stage, as the
    first block of every stage has none; the stage's width must then be the block's output width.

    Raises:
        CalibrationError: the blocks run more stages than the space has, or a block's output width is not
            its stage's width in ``compiled.space``.
        MissingBlocksError: a block is not in the LUT.
    """
    latencies = compiled.block_latencies(blocks)  # raises on missing keys
    space = compiled.space
    out = dict.fromkeys(features_for(space.n_stages), 0.0)
    # An inverted-residual space runs one fixed mbconv before its stages; a ResNet space has none.
    fixed_first = "first_block" in getattr(space, "fixed_kinds", ())
    stage = -1
    for block, ms in zip(blocks, latencies):
        out["raw_ms"] += ms
        if block.kind not in ("mbconv", "bottleneck") or (fixed_first and block.kind == "mbconv"):
            fixed_first &= block.kind != "mbconv"  # only the first mbconv is fixed
            out["fixed_ms"] += ms
            continue
        if not block.skip or stage < 0:
            stage += 1
        widths = _stage_widths(space, stage) if stage < space.n_stages else ()
        if block.out_chs not in widths:
            where = f"stage {stage + 1} widths {list(widths)}" if widths else f"{space.n_stages} stages"
            raise CalibrationError(f"block {block.key} does not fit {space.name} ({where})")
        out[f"stage{stage + 1}_ms"] += ms
    out["n_blocks"] = float(len(blocks))
    return out


def _stage_widths(space: Any, stage: int) -> tuple[int, ...]:
    """A stage's possible block output widths (one per width choice in a ResNet space)."""
    if hasattr(space, "stage_widths"):
        return tuple(space.stage_widths(stage))
    return (space.stage_chs[stage],)


# -- the model -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Calibration:
    """A fitted linear correction: ``intercept_ms + sum(coef[i] * features[i])``.

    Attributes:
        kind: the model name (a key of :func:`models_for`).
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
        unknown = [f for f in self.features if f not in _PLAIN_FEATURES and not _STAGE_FEATURE.match(f)]
        if unknown:
            raise CalibrationError(f"calibration features {unknown} are unknown; valid: raw_ms, fixed_ms, "
                                   "stageK_ms (K = 1, 2, ...), n_blocks")
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
        """Coefficient per feature name: ``raw_ms``, ``fixed_ms`` and ``n_blocks`` always (0 when unused), and
        the stage features the model uses."""
        w = dict.fromkeys(_PLAIN_FEATURES, 0.0)
        w.update(zip(self.features, self.coef))
        return w

    @property
    def n_stages(self) -> int:
        """The highest stage the model weighs (0: no stage feature)."""
        return max((int(m.group(1)) for m in map(_STAGE_FEATURE.match, self.features) if m), default=0)

    def check_stages(self, n_stages: int, space: str) -> None:
        """Refuse to price a space with fewer stages than the model weighs.

        Raises:
            CalibrationError: naming both stage counts.
        """
        if self.n_stages > n_stages:
            raise CalibrationError(f"calibration {self.kind!r} weighs {self.n_stages} stages but {space} has {n_stages}")

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


def _fit_one(kind: str, models: Mapping[str, tuple[tuple[str, ...], bool]], features: pd.DataFrame,
             y: np.ndarray) -> tuple[float, tuple[float, ...]]:
    from scipy.optimize import lsq_linear

    names, intercept = models[kind]
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


def _n_params(kind: str, models: Mapping[str, tuple[tuple[str, ...], bool]]) -> int:
    names, intercept = models[kind]
    return 0 if kind == "identity" else len(names) + int(intercept)


def _n_stages_of(columns: Sequence[str]) -> int:
    """The stage count a features table holds (``stage1_ms`` .. ``stageN_ms``; 5, MobileNetV3's, when none)."""
    n = 0
    while f"stage{n + 1}_ms" in columns:
        n += 1
    return n or 5


def fit_calibration(features: pd.DataFrame, measured_ms: Sequence[float] | np.ndarray, *,
                    models: Sequence[str] | None = None, n_splits: int = 5, random_state: int | None = 0,
                    space: str | None = None) -> Calibration:
    """Fit every candidate model, score it by k-fold CV, and return the chosen one refitted on all samples.

    Args:
        features: one row per subnet with the columns of :func:`features_for` (see :func:`subnet_features`);
            the ``stageK_ms`` columns it holds set the stage count of the ``per_stage`` model.
        measured_ms: the subnets' measured end-to-end latency (ms).
        models: candidate names (default all of :func:`models_for`), tried simplest first.
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
    candidates_by_kind = models_for(_n_stages_of(list(features.columns)))
    kinds = list(candidates_by_kind) if models is None else list(models)
    unknown = [k for k in kinds if k not in candidates_by_kind]
    if unknown:
        raise CalibrationError(f"unknown calibration models {unknown}; valid: {', '.join(candidates_by_kind)}")
    needed = sorted({n for k in kinds for n in candidates_by_kind[k][0]})
    missing = [n for n in needed if n not in features.columns]
    if missing:
        raise CalibrationError(f"features lack columns {missing}; compute them with subnet_features()")
    if not np.all(np.isfinite(features[needed].to_numpy(dtype=np.float64))):
        raise CalibrationError("features contain NaN or infinite values")
    features = features.reset_index(drop=True)
    folds = list(KFold(n_splits=min(n_splits, len(y)), shuffle=True, random_state=random_state).split(y))
    candidates: dict[str, dict[str, float]] = {}
    for kind in kinds:
        n_params = _n_params(kind, candidates_by_kind)
        if n_params > 0 and min(len(train) for train, _ in folds) < 2 * n_params:
            logger.debug("skipping calibration model %s: too few samples", kind)
            continue
        oof = np.empty_like(y)
        for train, test in folds:
            intercept, coef = _fit_one(kind, candidates_by_kind, features.iloc[train], y[train])
            cal = Calibration(kind=kind, features=candidates_by_kind[kind][0], coef=coef, intercept_ms=intercept)
            oof[test] = cal.predict(features.iloc[test])
        candidates[kind] = fidelity_metrics(oof, y)
    if not candidates:
        raise CalibrationError(f"{len(y)} samples are too few to fit and cross-validate calibration models {kinds}")
    best = min(m["rmspe"] for m in candidates.values())
    chosen = next(k for k in candidates if candidates[k]["rmspe"] <= best * _SIMPLER_TOLERANCE + 1e-12)
    intercept, coef = _fit_one(chosen, candidates_by_kind, features, y)
    raw = fidelity_metrics(features["raw_ms"].to_numpy(dtype=np.float64), y) if "raw_ms" in features else {}
    cal = Calibration(kind=chosen, features=candidates_by_kind[chosen][0], coef=coef, intercept_ms=intercept, space=space,
                      n_samples=len(y), cv_metrics=candidates[chosen], candidates=candidates, raw_metrics=raw)
    logger.info("calibration chosen: %s", cal.describe())
    return cal
