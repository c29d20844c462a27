"""Supernet training and accuracy collection on two gloo processes equal one process."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from lutnas.cli import app
from supernet import OFAMobileNetV3, TrainConfig
from supernet.jobs import CollectJob, DataSpec, TrainJob, run_collect_job, run_job, run_train_job
from supernet.train import Phase

from .conftest import write_digits_folder

REPO = Path(__file__).resolve().parents[2]
TINY = {
    "width_mult": 0.25,
    "ks_list": [3, 5],
    "expand_ratio_list": [3, 4],
    "depth_list": [1, 2],
    "n_classes": 3,
    "dropout_rate": 0.0,
}
# One step per phase: 24 training images, a global batch of 24. The second phase samples two subnets
# per step and distils from the teacher the first phase leaves behind.
PHASES = (
    Phase("full", ks=(5,), e=(4,), d=(2,), epochs=1, lr=0.1),
    Phase("sample", ks=(5, 3), e=(4, 3), d=(2, 1), epochs=1, lr=0.1, subnets_per_step=2, kd_ratio=1.0),
)
CONFIG = TrainConfig(phases=PHASES, resolutions=(8,), batch_size=24, calib_images=24)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return write_digits_folder(tmp_path_factory.mktemp("digits-folder"), per_class=10)


class _Stop(Exception):
    pass


def _stop_after_first_phase(event) -> None:
    if event.kind == "phase_end" and event.phase_index == 0:
        raise _Stop


def _job(folder: Path, out: Path, resume: bool) -> TrainJob:
    data = DataSpec(str(folder), image_size=8, holdout_fraction=0.2, split_seed=0)
    net_config = OFAMobileNetV3(**TINY).config
    meta = {"dataset": str(folder), "image_size": 8, "holdout_fraction": 0.2, "split_seed": 0}
    return TrainJob(net_config, data, CONFIG, str(out), resume=resume, validate=False, meta=meta, threads=1)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


@pytest.fixture(scope="module")
def resumed(folder, tmp_path_factory) -> dict[int, Path]:
    """One run stopped after its first phase, then resumed by one process and by two."""
    first = tmp_path_factory.mktemp("ranks1")
    with pytest.raises(_Stop):
        run_job(run_train_job, _job(folder, first, resume=False), 1, _stop_after_first_phase)
    second = tmp_path_factory.mktemp("ranks2")
    shutil.copy(first / "last.pt", second / "last.pt")
    one = run_job(run_train_job, _job(folder, first, resume=True), 1)
    two = run_job(run_train_job, _job(folder, second, resume=True), 2)
    assert one.processes == 1 and two.processes == 2
    assert [p["name"] for p in two.phases] == ["full", "sample"]
    return {1: first, 2: second}


def test_two_processes_resume_and_step_like_one(resumed) -> None:
    one, two = _weights(resumed[1] / "supernet.pt"), _weights(resumed[2] / "supernet.pt")
    before = _weights(resumed[1] / "phase0-full.pt")
    assert one.keys() == two.keys()
    moved = [k for k in one if one[k].is_floating_point() and not torch.equal(one[k], before[k])]
    assert len(moved) > 20  # the step changed the weights ...
    for key in one:  # ... the same way on two ranks with half the batch each as on one rank
        torch.testing.assert_close(two[key], one[key], rtol=1e-4, atol=1e-5, msg=key)


def _collect_job(checkpoint: Path, folder: Path) -> CollectJob:
    data = DataSpec(str(folder), image_size=8, holdout_fraction=0.2, split_seed=0)
    return CollectJob(str(checkpoint), data, n_samples=5, resolutions=(8,), seed=3, calib_images=12, threads=1)


def test_collect_two_processes_equals_one(resumed, folder) -> None:
    job = _collect_job(resumed[1] / "supernet.pt", folder)
    seen: list = []
    one = run_job(run_collect_job, job, 1)
    two = run_job(run_collect_job, job, 2, seen.append)
    assert len(seen) == 5  # each subnet reported once, by the rank that evaluated it
    assert len({json.dumps(r.arch, sort_keys=True) for r in two}) == 5
    assert two == one


def test_torchrun_collect_writes_one_csv(resumed, folder, tmp_path) -> None:
    out = tmp_path / "acc.csv"
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
            "-m", "lutnas", "supernet", "collect", "--checkpoint", str(resumed[1]),
            "--samples", "5", "--seed", "3", "--calib-images", "12", "--threads", "1", "--out", str(out), "--json"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout)["processes"] == 2  # rank 0 alone prints its JSON
    one = run_job(run_collect_job, _collect_job(resumed[1] / "supernet.pt", folder), 1)
    with out.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [json.loads(r["arch"]) for r in rows] == [r.arch for r in one]
    assert [float(r["accuracy"]) for r in rows] == [round(r.accuracy, 4) for r in one]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--nproc", "0"], "--nproc"),
        (["--nproc", "2", "--batch-size", "7"], "split evenly over 2 processes"),
    ],
)
def test_bad_process_settings_exit_2(folder, tmp_path, args, message) -> None:
    argv = ["supernet", "train", "--dataset", str(folder), "--out", str(tmp_path / "run"), *args]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
