"""``lutnas demo --space`` for a family without bundled accuracies: the demo runs the family's digits-scale space,
trains its digits supernet, collects accuracies, trains the predictor on them, searches and times on that LUT."""

from __future__ import annotations

import contextlib
import json
from dataclasses import replace

import pytest
import torch
from typer.testing import CliRunner

from lutnas.cli import app
from lutnas.views.demo import render
from lutnas.demo import DemoSettings, demo_plan, run_demo
from space import get_space

QUICK = (("warmup_count", 1), ("warmup_s", 0.0), ("min_reps", 3), ("min_s", 0.0), ("max_reps", 5), ("max_s", 0.05),
         ("target_rel_ci", 0.1))


def test_plan_names_the_space_it_runs_instead():
    assert demo_plan("ofa-mbv3-w1.0").space == "ofa-mbv3-w1.0" and not demo_plan("ofa-mbv3-w1.0").notes
    plan = demo_plan("ofa-resnet50")
    assert (plan.space, plan.resolution, plan.accuracy_source) == ("ofa-resnet50-w0.25", 16, "digits-supernet")
    result = CliRunner().invoke(app, ["demo", "--space", "ofa-vgg"])
    assert result.exit_code == 2 and "unknown space 'ofa-vgg'" in result.output


@pytest.mark.timeout(300)
@pytest.mark.parametrize("requested, digits, family", [
    ("ofa-proxyless-w1.3", "ofa-proxyless-w0.25", "ofa-proxyless"),
    ("ofa-resnet50", "ofa-resnet50-w0.25", "ofa-resnet50"),
], ids=["proxyless", "resnet50"])
def test_demo_runs_on_its_digits_space(tmp_path, capsys, requested, digits, family):
    torch.set_num_threads(1)
    settings = replace(DemoSettings(space=requested), db=tmp_path / "demo.db",
                       cache_dir=tmp_path / "artifacts", block_plan=QUICK, block_rounds=1, validate_plan=QUICK,
                       validate_samples=6, validate_rounds=2, final_rounds=2, generations=20,
                       budget_quantiles=(0.3, 0.7), supernet_epochs=(1, 0, 0, 0, 0, 0, 1), collect_samples=16,
                       collect_calib_images=64)
    stages = []

    @contextlib.contextmanager
    def stage(name):
        stages.append(name)
        yield

    result = run_demo(settings, stage=stage)
    assert stages == ["profile", "validate", "predictor", "search", "measure", "report"]
    assert result.plan.space == digits and result.plan.requested == requested
    assert digits in result.describe()[0] and "digits supernet" in result.describe()[-1]
    assert result.profile["devices"][0]["timed"] > 0
    assert result.predictor["source"] == "digits-supernet" and result.predictor["n"] == 4
    assert (tmp_path / f"demo-{family}-accuracies.csv").is_file()
    space = get_space(digits)
    assert len(result.rows) == 2
    for row in result.rows:
        space.validate(row.arch)
        assert row.arch["r"] == 16 and row.lut_ms <= row.budget_ms + 1e-9 and row.measured_ms > 0
    doc = json.loads(json.dumps(result.to_dict()))
    assert doc["plan"]["accuracy_source"] == "digits-supernet"
    render(result, "fp32", 1.0)
    assert f"{digits}, 16 px" in capsys.readouterr().err
