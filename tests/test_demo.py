"""The demo pipeline end to end on a local agent (lighter settings than ``lutnas demo``'s defaults)."""

from __future__ import annotations

import contextlib
import json
from dataclasses import replace

import pytest

from lutnas.demo import DemoSettings, bundled_accuracy_files, run_demo

QUICK = (("warmup_count", 1), ("warmup_s", 0.0), ("min_reps", 3), ("min_s", 0.0), ("max_reps", 5), ("max_s", 0.05),
         ("target_rel_ci", 0.1))


def _run(settings: DemoSettings):
    stages = []

    @contextlib.contextmanager
    def stage(name):
        stages.append(name)
        yield

    return run_demo(settings, stage=stage), stages


def test_bundled_accuracy_files_are_shipped():
    train, test = bundled_accuracy_files()
    assert len(train) == 3 and len(test) == 2


@pytest.mark.timeout(600)
def test_demo_pipeline_runs_and_a_rerun_reuses_the_lut(tmp_path):
    settings = replace(DemoSettings(), db=tmp_path / "demo.db", cache_dir=tmp_path / "artifacts", block_plan=QUICK, block_rounds=1,
                       validate_plan=QUICK, validate_samples=6, validate_rounds=2, final_rounds=2, generations=30,
                       budget_quantiles=(0.3, 0.7))
    result, stages = _run(settings)
    assert stages == ["profile", "validate", "predictor", "search", "measure", "report"]
    assert result.profile["devices"][0]["timed"] == 96
    assert len(result.rows) == 2
    for row in result.rows:
        assert row.lut_ms <= row.budget_ms + 1e-9
        assert row.measured_ms > 0 and row.arch["r"] == 224
        assert 60 < row.predicted_accuracy < 85
    assert result.rows[0].budget_ms < result.rows[1].budget_ms
    assert result.validation["samples"] == 6 and result.validation["calibrated"] is not None
    assert result.predictor["kendall"] > 0.85
    json.dumps(result.to_dict())
    page = (tmp_path / "demo.html").read_text()  # the report page, beside the store
    assert result.report == str(tmp_path / "demo.html") and page.count("Plotly.newPlot") >= 1
    for row in result.rows:  # the demo's picks are the report's, budget by budget
        assert f"{row.predicted_accuracy:.2f}" in page

    again, _ = _run(settings)
    assert again.profile["devices"][0]["timed"] == 0  # the LUT is reused
    assert again.predictor["reused"]
    assert again.stage_s["profile"] < result.stage_s["profile"]
