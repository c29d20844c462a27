"""The measurement protocol: warm up, repeat until the median is known well enough, summarize.

A runtime supplies ``run_once() -> milliseconds`` (its own clock: ``perf_counter_ns`` around an
invoke, or CUDA events around a graph replay); :func:`measure` owns when to start and stop.

Stop rule: after at least ``min_reps`` runs *and* ``min_s`` seconds, stop as soon as the 95%
confidence half-width of the median, relative to the median, is below ``target_rel_ci``; stop
anyway at ``max_reps`` runs or ``max_s`` seconds. The CI is distribution-free (order statistics),
because latency noise here is positive and bursty, not normal.
"""

from __future__ import annotations

import math
import time
from bisect import insort
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "TimingPlan",
    "Stats",
    "Measurement",
    "measure",
    "median_ci_half_width",
    "summarize",
    "MIN_REPS_FOR_CI",
]

# Fewer samples than this give a median CI spanning the extremes; never stop early below it.
MIN_REPS_FOR_CI = 8
_Z95 = 1.959963984540054


@dataclass(frozen=True)
class TimingPlan:
    """How long to warm up and how many repetitions to time."""

    warmup_count: int = 10  # at least this many untimed runs ...
    warmup_s: float = 0.05  # ... and at least this many seconds of them
    min_reps: int = 10  # time at least this many runs ...
    min_s: float = 0.1  # ... and for at least this long
    max_reps: int = 1000  # stop at this many runs ...
    max_s: float = 10.0  # ... or after this long
    target_rel_ci: float = 0.01  # early stop once CI half-width / median < this; 0 disables
    cooldown_s: float = 0.0  # idle this long before the job starts

    def validate(self) -> TimingPlan:
        """Check ranges and return self.

        Raises:
            ValueError: a field is out of range, naming it and its value.
        """
        for name in ("warmup_s", "min_s", "max_s", "target_rel_ci", "cooldown_s"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"plan.{name} must be a finite number >= 0, got {value!r}")
        for name in ("warmup_count", "min_reps", "max_reps"):
            value = getattr(self, name)
            if value < 0:
                raise ValueError(f"plan.{name} must be >= 0, got {value!r}")
        if self.max_reps < 1:
            raise ValueError(f"plan.max_reps must be >= 1, got {self.max_reps}")
        if self.min_reps > self.max_reps:
            raise ValueError(f"plan.min_reps ({self.min_reps}) exceeds plan.max_reps ({self.max_reps})")
        if self.min_s > self.max_s:
            raise ValueError(f"plan.min_s ({self.min_s}) exceeds plan.max_s ({self.max_s})")
        if self.target_rel_ci >= 1:
            raise ValueError(f"plan.target_rel_ci is a fraction (0.01 = 1%), got {self.target_rel_ci}")
        return self

    def budget_s(self) -> float:
        """An upper bound on warmup plus timing, for deadlines (warmup may exceed warmup_s by one run)."""
        return self.cooldown_s + self.warmup_s + self.max_s


@dataclass(frozen=True)
class Stats:
    """Summary of timed samples, all in milliseconds."""

    median_ms: float
    mean_ms: float
    std_ms: float
    min_ms: float
    max_ms: float
    p10_ms: float
    p90_ms: float
    n: int
    rel_ci_median: float  # 95% CI half-width of the median / median (inf below MIN_REPS_FOR_CI)
    summary_only: bool = False  # built from a tool's aggregates: median_ms is its mean, p10/p90 are 0


@dataclass
class Measurement:
    """What a runtime's ``time`` returns."""

    samples_ms: list[float] = field(default_factory=list)  # every timed run, in order
    stop_reason: str = ""  # ci, max_reps, max_s, summary
    warmup_runs: int = 0
    summary: Stats | None = None  # set when the runtime only reports aggregates (benchmark_model)
    settings: dict[str, str] = field(default_factory=dict)  # runtime options in effect


def median_ci_half_width(sorted_ms: Sequence[float]) -> float:
    """Half-width of a distribution-free 95% confidence interval of the median.

    Uses the order statistics at ranks ``n/2 -/+ 1.96 sqrt(n)/2`` (normal approximation to the
    binomial), so it holds for skewed, heavy-tailed latency noise.

    Args:
        sorted_ms: Samples sorted ascending.

    Returns:
        The half-width in the samples' unit; inf when there are too few samples.
    """
    n = len(sorted_ms)
    if n < MIN_REPS_FOR_CI:
        return math.inf
    spread = _Z95 * math.sqrt(n) / 2.0
    lo = max(int(math.floor(n / 2.0 - spread)), 0)
    hi = min(int(math.ceil(n / 2.0 + spread)), n - 1)
    return (sorted_ms[hi] - sorted_ms[lo]) / 2.0


def _sorted_median(sorted_ms: Sequence[float]) -> float:
    n = len(sorted_ms)
    mid = n // 2
    return sorted_ms[mid] if n % 2 else (sorted_ms[mid - 1] + sorted_ms[mid]) / 2.0


def measure(run_once: Callable[[], float], plan: TimingPlan, clock: Callable[[], float] = time.perf_counter) -> Measurement:
    """Warm up, then time ``run_once`` until the plan's stop rule fires.

    Args:
        run_once: Runs the model once and returns its latency in milliseconds.
        plan: Warmup and stop settings (already validated).
        clock: Wall clock in seconds for the count/seconds limits.

    Returns:
        The samples, the stop reason and the warmup count.
    """
    warmup_runs = 0
    start = clock()
    while warmup_runs < plan.warmup_count or clock() - start < plan.warmup_s:
        run_once()
        warmup_runs += 1
    samples: list[float] = []
    ordered: list[float] = []
    start = clock()
    while True:
        latency_ms = run_once()
        samples.append(latency_ms)
        insort(ordered, latency_ms)
        n = len(samples)
        if n >= plan.max_reps:
            reason = "max_reps"
            break
        elapsed_s = clock() - start
        if elapsed_s >= plan.max_s:
            reason = "max_s"
            break
        if plan.target_rel_ci > 0 and n >= plan.min_reps and elapsed_s >= plan.min_s:
            median = _sorted_median(ordered)
            if median > 0 and median_ci_half_width(ordered) / median < plan.target_rel_ci:
                reason = "ci"
                break
    return Measurement(samples_ms=samples, stop_reason=reason, warmup_runs=warmup_runs)


def summarize(samples_ms: Sequence[float]) -> Stats:
    """Median, mean, std, min, max, p10, p90, n and the median's relative CI of the samples.

    Raises:
        ValueError: no samples.
    """
    if len(samples_ms) == 0:
        raise ValueError("cannot summarize zero samples")
    arr = np.asarray(samples_ms, dtype=np.float64)
    ordered = np.sort(arr)
    median = float(np.median(ordered))
    half = median_ci_half_width(ordered)
    p10, p90 = np.percentile(ordered, [10.0, 90.0])
    return Stats(
        median_ms=median,
        mean_ms=float(arr.mean()),
        std_ms=float(arr.std(ddof=1)) if arr.size > 1 else 0.0,
        min_ms=float(ordered[0]),
        max_ms=float(ordered[-1]),
        p10_ms=float(p10),
        p90_ms=float(p90),
        n=int(arr.size),
        rel_ci_median=float(half / median) if median > 0 and math.isfinite(half) else math.inf,
    )
