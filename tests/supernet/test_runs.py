"""The supernet commands as library calls: each report's to_dict() is the command's --json for the same inputs;
progress reaches the plain callable, and off a terminal the CLI prints it as timed lines."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

import lutnas
from lutnas.cli import app
from supernet.runs import RunError

from .conftest import write_digits_folder

ARCH = {"ks": [3, 5, 7, 3] * 5, "e": [3, 4, 6, 3] * 5, "d": [2, 3, 4, 2, 3], "r": 8}
# Steps in the first and last phase only.
EPOCHS = {"full": 1, "kernel-1": 0, "kernel-2": 0, "depth-1": 0, "depth-2": 0, "expand-1": 0, "expand-2": 1}
TRAIN_FLAGS = ["--epochs", ",".join(f"{k}={v}" for k, v in EPOCHS.items()), "--resolutions", "8",
               "--batch-size", "8", "--no-validate", "--threads", "1"]


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    return write_digits_folder(tmp_path_factory.mktemp("folder"), per_class=8)


@pytest.fixture(scope="module")
def trained(image_folder, tmp_path_factory):
    # threads=1 as the CLI run's: a module fixture runs before the autouse one-thread fixture
    out = tmp_path_factory.mktemp("api-run")
    calls: list[tuple[str, int, int | None]] = []
    report = lutnas.train_supernet(out, dataset=str(image_folder), epochs=EPOCHS, resolutions=[8], batch_size=8,
                                   validate=False, threads=1, progress=lambda *call: calls.append(call))
    return out, report, calls


def _cli(*argv: str) -> tuple[dict, str]:
    result = CliRunner().invoke(app, ["supernet", *argv, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), result.stderr


def _without_seconds(doc: dict) -> dict:
    return {**doc, "seconds": None, "phases": [{**p, "seconds": None} for p in doc["phases"]],
            "checkpoint": doc["checkpoint"].rsplit("/", 1)[-1]}


def test_train_report_is_the_commands_json_and_every_phase_is_announced(trained, image_folder, tmp_path) -> None:
    out, report, calls = trained
    assert report.checkpoint == str(out / "supernet.pt")
    doc, stderr = _cli("train", "--dataset", str(image_folder), "--out", str(tmp_path / "cli"), *TRAIN_FLAGS)
    assert _without_seconds(report.to_dict()) == _without_seconds(doc)  # the same run but its wall times
    # 24 images, 6 held out: 18 to train, 2 steps of 8 per epoch; all seven phases announced before any step.
    assert calls[:7] == [(f"phase {i + 1}/7 {name}, {n} epoch{'' if n == 1 else 's'}", 0, 2 * n)
                         for i, (name, n) in enumerate(EPOCHS.items())]
    assert calls[-1] == ("phase 7/7 expand-2, 1 epoch", 2, 2)
    # Off a terminal (CliRunner's stderr is no TTY) the CLI prints the same as lines, with the time so far.
    lines = [line for line in stderr.splitlines() if line.startswith("phase ")]
    assert lines[0].startswith("phase 1/7 full, 1 epoch: 0/2, 0:00:") and lines[0].endswith(" elapsed")
    assert "phase 7/7 expand-2, 1 epoch: 2/2" in " ".join(lines)


def test_collect_report_is_the_commands_json_with_either_resolution_spelling(trained, tmp_path) -> None:
    out, _, _ = trained
    calls: list[tuple[str, int, int | None]] = []
    report = lutnas.collect_accuracies(out, tmp_path / "api.csv", samples=2, resolutions=[8], calib_images=8,
                                       progress=lambda *call: calls.append(call))
    assert calls == [("collect", 0, 2), ("collect", 1, 2), ("collect", 2, 2)]
    assert report.space is None and "is no registered search space" in report.warnings[0]
    for flag in ("--resolution", "--resolutions"):
        doc, _ = _cli("collect", "--checkpoint", str(out), "--out", str(tmp_path / "cli.csv"), "--samples", "2",
                      flag, "8", "--calib-images", "8")
        assert {**report.to_dict(), "out": None} == {**doc, "out": None}
        assert (tmp_path / "cli.csv").read_text() == (tmp_path / "api.csv").read_text()


def test_extract_and_evaluate_reports_are_the_commands_json(trained, tmp_path) -> None:
    out, _, _ = trained
    for name in ("sub.pt", "sub.onnx"):
        report = lutnas.extract_subnet(out, ARCH, tmp_path / name)
        doc, _ = _cli("extract", "--checkpoint", str(out), "--arch", json.dumps(ARCH), "--out", str(tmp_path / name))
        assert report.to_dict() == doc and doc["format"] == name.split(".")[1]
    report = lutnas.evaluate_subnet(out / "supernet.pt", ARCH, calib_images=8)
    doc, _ = _cli("eval", "--checkpoint", str(out / "supernet.pt"), "--arch", json.dumps(ARCH), "--calib-images", "8")
    assert report.to_dict() == doc and doc["eval_images"] == 6


def test_bad_input_is_a_value_error_naming_the_argument_and_its_flag_in_the_cli(trained, tmp_path) -> None:
    out, _, _ = trained
    with pytest.raises(ValueError, match="^samples must be >= 1, got 0$"):
        lutnas.collect_accuracies(out, tmp_path / "x.csv", samples=0)
    with pytest.raises(ValueError, match="^format must be one of pt, onnx, tflite, got 'coreml'$"):
        lutnas.extract_subnet(out, ARCH, tmp_path / "x.bin", format="coreml")
    with pytest.raises(ValueError, match="already holds a training run; pass resume=True"):
        lutnas.train_supernet(out, dataset="digits")
    result = CliRunner().invoke(app, ["supernet", "collect", "--checkpoint", str(out), "--out", "x.csv",
                                      "--samples", "0"])
    assert result.exit_code == 2 and "error: --samples must be >= 1, got 0" in result.stderr


def test_a_failed_export_is_a_run_error(trained, tmp_path) -> None:
    out, _, _ = trained

    def broken(module, shape, fmt):
        raise ValueError("no such operator")

    from supernet.runs import extract

    with pytest.raises(RunError, match="onnx extraction failed: ValueError: no such operator"):
        extract(out, ARCH, tmp_path / "x.onnx", exporter=broken)


def test_import_lutnas_loads_no_torch_until_a_call_is_named() -> None:
    code = ("import sys, lutnas; assert 'torch' not in sys.modules; import supernet.runs as r; "
            "assert lutnas.train_supernet is r.train and lutnas.collect_accuracies is r.collect")
    subprocess.run([sys.executable, "-c", code], check=True)
