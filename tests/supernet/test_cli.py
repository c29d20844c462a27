"""``lutnas supernet train|collect|extract|eval`` end to end on a tiny ImageFolder dataset."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from lutnas.cli import app

from .conftest import write_digits_folder

ARCH = {"ks": [3, 5, 7, 3] * 5, "e": [3, 4, 6, 3] * 5, "d": [2, 3, 4, 2, 3], "r": 8}


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    root = write_digits_folder(tmp_path_factory.mktemp("folder"), per_class=8)
    (root / "class0" / "notes.txt").write_text("not an image")
    return root


@pytest.fixture(scope="module")
def trained(image_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    runner = CliRunner()
    # Steps in the first and last phase only (the preset's other phases get 0 epochs).
    epochs = "full=1,kernel-1=0,kernel-2=0,depth-1=0,depth-2=0,expand-1=0,expand-2=1"
    assert len(list(image_folder.glob("*/*.png"))) == 24
    result = runner.invoke(
        app,
        [
            "supernet",
            "train",
            "--dataset",
            str(image_folder),
            "--out",
            str(out),
            "--epochs",
            epochs,
            "--resolutions",
            "8",
            "--batch-size",
            "8",
            "--no-validate",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    return out, json.loads(result.stdout)


def test_train_json_and_checkpoints(trained) -> None:
    out, doc = trained
    assert doc["phases"][0]["name"] == "full" and len(doc["phases"]) == 7
    assert doc["checkpoint"] == str(out / "supernet.pt")
    assert (out / "last.pt").is_file()


def test_train_refuses_existing_run_without_resume(trained, image_folder) -> None:
    out, _ = trained
    result = CliRunner().invoke(app, ["supernet", "train", "--dataset", str(image_folder), "--out", str(out)])
    assert result.exit_code == 2
    assert "--resume" in result.stderr


def test_bare_resume_of_finished_run(trained, image_folder) -> None:
    out, first = trained
    argv = ["supernet", "train", "--dataset", str(image_folder), "--out", str(out), "--resume", "--json"]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["phases"] == first["phases"]


def test_collect_eval_extract(trained, tmp_path) -> None:
    out, _ = trained
    ckpt = str(out / "supernet.pt")
    runner = CliRunner()
    csv_path = tmp_path / "acc.csv"
    result = runner.invoke(
        app,
        [
            "supernet",
            "collect",
            "--checkpoint",
            ckpt,
            "--samples",
            "2",
            "--out",
            str(csv_path),
            "--calib-images",
            "8",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["samples"] == 2 and doc["space"] is None  # 3 classes: no registered space
    assert "is no registered search space" in " ".join(result.stderr.split())
    assert csv_path.read_text().splitlines()[0] == "arch,accuracy,macs,params,precision,space"

    result = runner.invoke(app, ["supernet", "eval", "--checkpoint", ckpt, "--arch", json.dumps(ARCH), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert 0.0 <= doc["accuracy"] <= 100.0 and doc["macs"] > 0

    arch_file = tmp_path / "arch.json"
    arch_file.write_text(json.dumps(ARCH))
    for name in ("sub.pt", "sub.onnx"):
        result = runner.invoke(
            app,
            [
                "supernet",
                "extract",
                "--checkpoint",
                ckpt,
                "--arch",
                str(arch_file),
                "--out",
                str(tmp_path / name),
                "--json",
            ],
        )
        assert result.exit_code == 0, result.output
        assert (tmp_path / name).stat().st_size > 0

    from supernet import load_subnet

    assert load_subnet(tmp_path / "sub.pt").arch == ARCH


@pytest.mark.parametrize(
    "args, message",
    [
        (["eval", "--arch", '{"ks": [9]}'], "--arch"),
        (["eval", "--arch", "{not json"], "--arch"),
        (["extract", "--arch", json.dumps(ARCH), "--out", "{tmp}/x.bin", "--format", "coreml"], "--format"),
    ],
)
def test_bad_input_exits_2(trained, tmp_path, args, message) -> None:
    out, _ = trained
    rest = [a.replace("{tmp}", str(tmp_path)) for a in args[1:]]
    argv = ["supernet", args[0], "--checkpoint", str(out / "supernet.pt"), *rest]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 2, result.output
    assert message in result.stderr


def test_missing_checkpoint_exits_2(tmp_path) -> None:
    result = CliRunner().invoke(
        app, ["supernet", "eval", "--checkpoint", str(tmp_path / "none.pt"), "--arch", json.dumps(ARCH)]
    )
    assert result.exit_code == 2
    assert "does not exist" in result.stderr


def test_a_failure_inside_eval_exits_1_not_2(trained, monkeypatch) -> None:
    """An error raised by the evaluation itself, after --arch passed its checks, is "the work failed" (1)."""
    import supernet.evaluate

    def broken_top1(*args, **kwargs):
        raise ValueError("logits and labels disagree")

    monkeypatch.setattr(supernet.evaluate, "top1_accuracy", broken_top1)
    out, _ = trained
    argv = ["supernet", "eval", "--checkpoint", str(out / "supernet.pt"), "--arch", json.dumps(ARCH)]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 1, result.output
    assert "evaluation failed: ValueError: logits and labels disagree" in " ".join(result.stderr.split())
    assert not isinstance(result.exception, ValueError)
