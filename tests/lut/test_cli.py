"""``lutnas lut ...`` and ``lutnas compare`` through the CLI: JSON output and exit codes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lut import DeviceSetting, LutStore
from lutnas.cli import app

from .conftest import NOTE10_FILES, NOTE10_NET, NSGA_FILE


@pytest.fixture()
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture()
def db(ref_db: Path, tmp_path: Path) -> Path:
    path = tmp_path / "lut.db"
    shutil.copy(ref_db, path)
    return path


def _json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_import_list_predict(runner: CliRunner, tmp_path: Path) -> None:
    db = tmp_path / "new.db"
    doc = _json(runner.invoke(app, ["lut", "import", "--db", str(db), "--device", "note10", "--json",
                                    *map(str, NOTE10_FILES)]))
    assert doc["device"] == "note10" and doc["setting_id"] == 1 and doc["files"] == list(map(str, NOTE10_FILES))
    # 450 blocks, 30 of them timed in two or more files: one row per entry of the five files (lut.keys)
    assert (doc["rows"], doc["new_rows"], doc["replaced_rows"], doc["assumed_rows"]) == (480, 480, 0, 0)
    doc = _json(runner.invoke(app, ["lut", "import", "--db", str(db), "--device", "i7", "--json",
                                    "--runtime", "onnxruntime", "--threads", "1", str(NSGA_FILE)]))
    assert doc["rows"] == 4062 and doc["assumed_rows"] == 12
    listing = _json(runner.invoke(app, ["lut", "list", "--db", str(db), "--json"]))["devices"]
    assert [d["device"] for d in listing] == ["note10", "i7"]
    assert listing[1]["runtime"] == "onnxruntime" and listing[1]["threads"] == 1
    assert listing[1]["resolutions"]["ofa-mbv3-w1.0"] == list(range(96, 257, 4))
    assert [d["round_spread_pct"] for d in listing] == [None, None]  # imported tables hold no round readings
    result = runner.invoke(app, ["lut", "predict", "--db", str(db), "--device", "note10", "--net-config",
                                 str(NOTE10_NET / "net.config"), "--resolution", "224", "--json"])
    doc = _json(result)
    assert doc["device"] == "note10" and doc["space"] == "ofa-mbv3-w1.2" and doc["calibrated"] is False
    assert doc["latency_ms"] == pytest.approx(29.97, abs=0.01)
    arch = {"ks": [7] * 20, "e": [6] * 20, "d": [4] * 5, "r": 160}
    doc = _json(runner.invoke(app, ["lut", "predict", "--db", str(db), "--device", "i7", "--space", "ofa-mbv3-w1.0",
                                    "--arch", json.dumps(arch), "--json"]))
    assert doc["space"] == "ofa-mbv3-w1.0" and doc["latency_ms"] > 0
    human = runner.invoke(app, ["lut", "predict", "--db", str(db), "--device", "note10", "--arch", json.dumps(arch)])
    assert human.exit_code == 0 and human.stdout == "" and "raw LUT sum" in human.stderr
    # i7's LUT holds w1.0 and w1.2 and the arch is a subnet of both: never priced as one of them silently
    both = runner.invoke(app, ["lut", "predict", "--db", str(db), "--device", "i7", "--arch", json.dumps(arch)])
    assert both.exit_code == 2 and "several spaces fit (ofa-mbv3-w1.0, ofa-mbv3-w1.2)" in both.stderr
    assert "pass --space" in both.stderr and len(both.stderr.strip().splitlines()) == 1


def test_reimport_into_existing_device(runner: CliRunner, db: Path) -> None:
    doc = _json(runner.invoke(app, ["lut", "import", "--db", str(db), "--device", "note10", "--json",
                                    str(NOTE10_FILES[0])]))
    assert doc["setting_id"] == 1
    listing = _json(runner.invoke(app, ["lut", "list", "--db", str(db), "--json"]))["devices"]
    assert len(listing) == 2


@pytest.mark.parametrize("args, message", [
    (["lut", "predict", "--device", "nope", "--arch", "{}"], "unknown device 'nope'; known devices: i7, note10"),
    (["lut", "predict", "--device", "note10", "--arch", "{bad"], "--arch is not JSON"),
    (["lut", "predict", "--device", "note10", "--arch", '{"ks": [3], "e": [3], "d": [2], "r": 224}'],
     "subnet ks must have 20 entries"),
    (["lut", "predict", "--device", "note10"], "give exactly one of --arch JSON or --net-config FILE"),
    (["lut", "predict", "--device", "note10", "--net-config", "x"], "no such file: x"),
    (["lut", "predict", "--device", "note10", "--space", "mbv4", "--arch", "{}"], "unknown space 'mbv4'"),
    (["lut", "export", "--device", "note10", "--format", "onnx", "--out", "x"], "format must be one of ofa-yaml, csv, parquet, got 'onnx'"),
    (["compare", "--devices", "note10"], "two or more distinct devices"),
])
def test_bad_input_exits_2(runner: CliRunner, db: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, [*args[:1 if args[0] == "compare" else 2], "--db", str(db),
                                 *args[1 if args[0] == "compare" else 2:]])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.stderr.split())
    assert result.stdout == ""


def test_malformed_import_exits_2_and_writes_nothing(runner: CliRunner, db: Path, tmp_path: Path) -> None:
    bad = tmp_path / "224_lookup_table.yaml"
    bad.write_text("Conv-input:224x224x3-output:112x112x24:\n  count: 1\n  mean: -1.0\n  std: 0.0\n")
    result = runner.invoke(app, ["lut", "import", "--db", str(db), "--device", "x", str(NOTE10_FILES[0]), str(bad)])
    assert result.exit_code == 2
    assert f"{bad}: line 1: key 'Conv-input:224x224x3-output:112x112x24'" in " ".join(result.stderr.split())
    listing = _json(runner.invoke(app, ["lut", "list", "--db", str(db), "--json"]))["devices"]
    assert [d["device"] for d in listing] == ["note10", "i7"]
    missing = runner.invoke(app, ["lut", "list", "--db", str(tmp_path / "absent.db")])
    assert missing.exit_code == 2 and "no LUT store at" in missing.stderr


def test_an_uncovered_resolution_is_bad_input(runner: CliRunner, db: Path, tmp_path: Path) -> None:
    """A subnet at a resolution the LUT does not cover is what the user asked for: exit 2, one line."""
    arch = {"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 128}
    result = runner.invoke(app, ["lut", "predict", "--db", str(db), "--device", "note10", "--arch", json.dumps(arch)])
    assert result.exit_code == 2 and "lacks blocks for 1 of 1 subnet(s); missing keys: " in result.stderr


def test_export_and_rm(runner: CliRunner, db: Path, tmp_path: Path) -> None:
    doc = _json(runner.invoke(app, ["lut", "export", "--db", str(db), "--device", "note10", "--format", "csv",
                                    "--out", str(tmp_path / "n.csv"), "--json"]))
    assert doc["files"] == [str(tmp_path / "n.csv")]
    doc = _json(runner.invoke(app, ["lut", "export", "--db", str(db), "--device", "note10", "--format", "ofa-yaml",
                                    "--out", str(tmp_path / "y"), "--json"]))
    assert len(doc["files"]) == 6 and doc["files"][-1].endswith("lutnas-setting.json")
    refused = runner.invoke(app, ["lut", "rm", "--db", str(db), "--device", "note10"])
    assert refused.exit_code == 2 and "needs --yes" in refused.stderr
    doc = _json(runner.invoke(app, ["lut", "rm", "--db", str(db), "--device", "note10", "--yes", "--json"]))
    assert doc == {"device": "note10", "setting_id": 1, "removed_rows": 480}
    listing = _json(runner.invoke(app, ["lut", "list", "--db", str(db), "--json"]))["devices"]
    assert [d["device"] for d in listing] == ["i7"]


def test_compare_json_and_plot(runner: CliRunner, db: Path, tmp_path: Path) -> None:
    plot = tmp_path / "cmp.png"
    doc = _json(runner.invoke(app, ["compare", "--db", str(db), "--devices", "note10", "i7", "--subnets", "500",
                                    "--plot", str(plot), "--json"]))
    assert doc["devices"] == ["note10", "i7"] and doc["n_subnets"] == 500 and doc["plot"] == str(plot)
    pair = doc["pairs"][0]
    assert pair["n_shared_blocks"] == 450 and -1 <= pair["subnet_kendall"] <= 1
    assert set(doc["dominant_groups"]) == {"note10", "i7"}
    assert plot.read_bytes()[:4] == b"\x89PNG"
    human = runner.invoke(app, ["compare", "--db", str(db), "--devices", "note10,i7", "--subnets", "200",
                                "--resolution", "224"])
    assert human.exit_code == 0 and "latency dominated by" in human.stderr and human.stdout == ""


def test_compare_exit_codes_tell_bad_input_from_a_failed_comparison(runner: CliRunner, db: Path,
                                                                     monkeypatch) -> None:
    """A resolution the LUTs do not share is bad input (2); an error inside the comparison itself is 1."""
    import lut.compare

    base = ["compare", "--db", str(db), "--devices", "note10", "i7", "--subnets", "100"]
    uncovered = runner.invoke(app, [*base, "--resolutions", "100"])
    assert uncovered.exit_code == 2 and "not fully covered by every device" in uncovered.output

    def broken_groups(*args, **kwargs):
        raise ValueError("a block in no group")

    monkeypatch.setattr(lut.compare, "block_groups", broken_groups)
    failed = runner.invoke(app, base)
    assert failed.exit_code == 1, failed.output
    assert "comparison failed: ValueError: a block in no group" in " ".join(failed.output.split())
    assert not isinstance(failed.exception, ValueError)


def _column(text: str, title: str, index: int) -> str:
    """Column ``index`` (0 = first) of the rich table titled ``title`` in ``text``, its wrapped cell lines joined."""
    lines = text[text.index(title):].splitlines()
    end = next(i for i, line in enumerate(lines) if line.lstrip().startswith("└"))
    return "".join(line.split("│")[index + 1].strip() for line in lines[:end] if line.count("│") > index + 1)


def test_lut_list_shows_every_selector_whole(runner: CliRunner, tmp_path: Path) -> None:
    db = tmp_path / "many.db"
    with LutStore(db, create=True) as store:
        for runtime, precision, threads in (("onnxruntime", "int8", 1), ("onnxruntime", "int8", 2),
                                            ("onnxruntime", "fp32", 2), ("tflite", "int8", 2)):
            store.ensure_setting(DeviceSetting("rock", runtime, threads=threads, precision=precision))
    selectors = [d["selector"] for d in _json(runner.invoke(app, ["lut", "list", "--db", str(db), "--json"]))["devices"]]
    assert "rock:onnxruntime:int8:threads=2" in selectors
    # a terminal too narrow for the whole table: the --device column wraps its selectors instead of cutting them
    human = runner.invoke(app, ["lut", "list", "--db", str(db)], env={"COLUMNS": "110"})
    assert human.exit_code == 0, human.output
    column = _column(human.stderr, "LUT store", 1)
    assert all(s in column for s in selectors), column


def test_compare_names_each_device_whole(runner: CliRunner, db: Path) -> None:
    with LutStore(db) as store:
        note10 = store.table("note10")
        for runtime, scale in (("onnxruntime", 1.0), ("tflite", 1.5)):
            sid = store.ensure_setting(DeviceSetting("rock", runtime, threads=2, precision="int8"))
            store.put_rows(sid, [(k, {"median_ms": scale * v}, None) for k, v in note10.items()])
    human = runner.invoke(app, ["compare", "--db", str(db), "--devices", "rock:onnxruntime,rock:tflite",
                                "--subnets", "100", "--resolution", "224"], env={"COLUMNS": "100"})
    assert human.exit_code == 0, human.output
    assert _column(human.stderr, "pairs (ratio", 0) == "rock:onnxruntime"
    assert _column(human.stderr, "pairs (ratio", 1) == "rock:tflite"
