"""The measurement protocol and the benchmark_model parser, without a server."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from agent.runtimes.benchmark_model_rt import parse_timings_line
from agent.timing import TimingPlan, measure, median_ci_half_width, summarize


def _fake_clock(step_s: float):
    ticks = itertools.count()
    return lambda: next(ticks) * step_s


def test_stops_early_when_median_is_tight() -> None:
    plan = TimingPlan(warmup_count=3, warmup_s=0.0, min_reps=10, min_s=0.0, max_reps=1000, max_s=100.0, target_rel_ci=0.01)
    m = measure(lambda: 1.0, plan, clock=_fake_clock(0.001))
    assert m.stop_reason == "ci"
    assert m.warmup_runs == 3
    assert 10 <= len(m.samples_ms) < 20


def test_noisy_samples_run_to_max_reps() -> None:
    rng = np.random.default_rng(0)
    plan = TimingPlan(warmup_count=0, warmup_s=0.0, min_reps=5, min_s=0.0, max_reps=50, max_s=100.0, target_rel_ci=0.001)
    m = measure(lambda: float(rng.lognormal(0.0, 0.5)), plan, clock=_fake_clock(0.001))
    assert m.stop_reason == "max_reps"
    assert len(m.samples_ms) == 50


def test_max_seconds_and_min_seconds() -> None:
    plan = TimingPlan(warmup_count=0, warmup_s=0.0, min_reps=1, min_s=0.0, max_reps=10_000, max_s=0.5, target_rel_ci=0.0)
    m = measure(lambda: 1.0, plan, clock=_fake_clock(0.01))
    assert m.stop_reason == "max_s"
    # min_s holds the early stop back even when the CI is tight.
    plan = TimingPlan(warmup_count=0, warmup_s=0.0, min_reps=1, min_s=0.2, max_reps=10_000, max_s=10.0, target_rel_ci=0.5)
    m = measure(lambda: 1.0, plan, clock=_fake_clock(0.01))
    assert m.stop_reason == "ci" and len(m.samples_ms) >= 15


def test_warmup_by_seconds() -> None:
    plan = TimingPlan(warmup_count=1, warmup_s=0.1, min_reps=1, min_s=0.0, max_reps=1, max_s=1.0)
    m = measure(lambda: 1.0, plan, clock=_fake_clock(0.01))
    assert m.warmup_runs >= 9


def test_summarize_and_ci() -> None:
    samples = [1.0, 2.0, 3.0, 4.0, 100.0, 2.5, 2.2, 2.1, 1.9, 2.0]
    s = summarize(samples)
    assert s.n == 10 and s.min_ms == 1.0 and s.max_ms == 100.0
    assert s.median_ms == pytest.approx(float(np.median(samples)))
    assert s.p10_ms <= s.median_ms <= s.p90_ms
    assert math.isfinite(s.rel_ci_median)
    assert median_ci_half_width([1.0] * 5) == math.inf
    with pytest.raises(ValueError):
        summarize([])


@pytest.mark.parametrize("field,value", [("max_reps", 0), ("min_s", -1.0), ("max_s", float("nan")), ("target_rel_ci", 2.0)])
def test_plan_validation(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        TimingPlan(**{field: value}).validate()


def test_benchmark_model_parser_takes_the_timed_line() -> None:
    output = (
        "STARTING!\nLoaded model /tmp/m.tflite\n"
        "The input model file size (MB): 0.01\n"
        "Timings (microseconds): count=1 first=5000 curr=5000 min=5000 max=5000 avg=5000 std=0\n"
        "Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.\n"
        "Timings (microseconds): count=57 first=1510 curr=1400 min=1390 max=1700 avg=1432.5 std=41\n"
        "Inference timings in us: Init: 3000, First inference: 5000, Warmup (avg): 1500, Inference (avg): 1432.5\n"
    )
    s = parse_timings_line(output)
    assert s.n == 57
    assert s.mean_ms == pytest.approx(1.4325)
    assert s.median_ms == pytest.approx(1.4325) and s.summary_only
    assert s.min_ms == pytest.approx(1.39) and s.max_ms == pytest.approx(1.7) and s.std_ms == pytest.approx(0.041)
    with pytest.raises(ValueError):
        parse_timings_line("no timings here")
