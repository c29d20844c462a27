"""Rank and error metrics for accuracy predictors."""

from __future__ import annotations

import numpy as np

__all__ = ["kendall_tau", "prediction_metrics", "rmse", "spearman_rho"]


def kendall_tau(predicted: np.ndarray, measured: np.ndarray) -> float:
    """Kendall's tau-b between predictions and measurements."""
    from scipy import stats  # here, not at import: scipy.stats takes ~1 s to load and a search never ranks

    return float(stats.kendalltau(np.asarray(predicted), np.asarray(measured)).statistic)


def spearman_rho(predicted: np.ndarray, measured: np.ndarray) -> float:
    """Spearman's rank correlation between predictions and measurements."""
    from scipy import stats

    return float(stats.spearmanr(np.asarray(predicted), np.asarray(measured)).statistic)


def rmse(predicted: np.ndarray, measured: np.ndarray) -> float:
    """Root-mean-square error, in the units of the inputs."""
    diff = np.asarray(predicted, dtype=np.float64) - np.asarray(measured, dtype=np.float64)
    return float(np.sqrt(np.mean(diff * diff)))


def prediction_metrics(predicted: np.ndarray, measured: np.ndarray) -> dict[str, float | int]:
    """``{"kendall", "spearman", "rmse", "n"}`` of predictions against measurements.

    Raises:
        ValueError: the arrays differ in length or hold fewer than two values.
    """
    predicted, measured = np.asarray(predicted), np.asarray(measured)
    if predicted.shape != measured.shape or predicted.ndim != 1:
        raise ValueError(f"predicted {predicted.shape} and measured {measured.shape} must be equal-length 1-d arrays")
    if len(measured) < 2:
        raise ValueError(f"need at least 2 values to rank, got {len(measured)}")
    return {
        "kendall": kendall_tau(predicted, measured),
        "spearman": spearman_rho(predicted, measured),
        "rmse": rmse(predicted, measured),
        "n": len(measured),
    }
