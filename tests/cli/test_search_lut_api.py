"""The search and store commands as library calls: each report's ``to_dict()`` is the command's ``--json``,
and the frictions a first hour with them found (one JSON answer per budget, one spelling per flag, selectors
that keep working, exit codes, 80-column tables, plot titles, a predictor used far outside its data)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SHARED_DATA

from .conftest import invoke, invoke_json, one_line

DATA = SHARED_DATA or Path("/nonexistent")
OFA_WEIGHTS = DATA / "ofa" / "acc_predictor.pth"
NOTE10_NET = DATA / "ofa" / "specialized" / "note10_lat-30ms_top1-78.4_finetune-75"
EVO = DATA / "dynast" / "mbnv3w10_evoga_acc.csv"
LINAS = DATA / "dynast" / "mbnv3w10_linasga_acc.csv"
SHORT = ["--generations", "10", "--population", "40", "--seed", "3"]


def _timeless(doc: Any) -> Any:
    """The document without wall-clock fields (two runs of the same work differ only there)."""
    if isinstance(doc, dict):
        return {k: _timeless(v) for k, v in doc.items() if k not in ("search_seconds", "fit_seconds")}
    if isinstance(doc, list):
        return [_timeless(v) for v in doc]
    return doc


def _need(*paths: Path) -> None:
    for path in paths:
        if not path.exists():
            pytest.skip(f"{path} not found")


# -- each call's report is the command's --json --------------------------------------------------------------------
def test_search_and_sweep_reports_are_the_json(db: Path) -> None:
    from lutnas import EvolutionSettings, search, sweep

    _need(OFA_WEIGHTS)
    settings = EvolutionSettings(generations=10, population_size=40)
    one = search(db, "note10", 22, OFA_WEIGHTS, seed=3, settings=settings)
    cli = invoke_json("search", "--db", db, "--device", "note10", "--predictor", OFA_WEIGHTS, "--latency-ms", "22",
                      *SHORT)
    assert _timeless(one.to_dict()) == _timeless(cli)
    many = sweep(db, ["note10", "i7"], {"note10": [15, 25], "i7": [60]}, OFA_WEIGHTS, seed=3, settings=settings,
                 space="ofa-mbv3-w1.2")
    cli = invoke_json("search", "--db", db, "--devices", "note10,i7", "--predictor", OFA_WEIGHTS, "--latency-ms",
                      "15,25", "--latency-ms", "60", "--space", "ofa-mbv3-w1.2", *SHORT)
    assert _timeless(many.to_dict()) == _timeless(cli)
    assert [r["limits"] for r in cli["results"]] == [{"note10": 15.0, "i7": 60.0}, {"note10": 25.0, "i7": 60.0}]
    # One spelling for search and compare: --device repeated, --devices A,B, and the old --devices A B.
    old = invoke_json("search", "--db", db, "--devices", "note10", "i7", "--predictor", OFA_WEIGHTS, "--latency-ms",
                      "15,25", "--latency-ms", "60", "--space", "ofa-mbv3-w1.2", *SHORT)
    assert _timeless(old) == _timeless(cli)


def test_compare_report_is_the_json(db: Path, tmp_path: Path) -> None:
    from lutnas import compare

    report = compare(db, ["note10", "i7"], subnets=300, seed=1)
    cli = invoke_json("compare", "--db", db, "--devices", "note10,i7", "--subnets", "300", "--seed", "1")
    assert report.to_dict() == cli


def test_compare_with_a_predictor_report_is_the_json(db: Path) -> None:
    from lutnas import compare

    _need(OFA_WEIGHTS)
    report = compare(db, ["note10", "i7"], predictor=OFA_WEIGHTS, quantiles=[0.5], generations=5, subnets=100,
                     space="ofa-mbv3-w1.2")
    cli = invoke_json("compare", "--db", db, "--device", "note10", "--device", "i7", "--predictor", OFA_WEIGHTS,
                      "--budgets", "0.5", "--generations", "5", "--subnets", "100", "--space", "ofa-mbv3-w1.2")
    assert _timeless(report.to_dict()) == _timeless(cli)
    assert cli["regret"]["extrapolation"] is None  # OFA's weights do not record their training accuracies


def test_predictor_reports_are_the_json(tmp_path: Path) -> None:
    from lutnas import evaluate_predictor, train_predictor

    _need(EVO, LINAS)
    trained = train_predictor([EVO], tmp_path / "a.pt")
    cli = invoke_json("predictor", "train", "--data", EVO, "--out", tmp_path / "b.pt")
    assert _timeless(trained.to_dict()) == _timeless({**cli, "out": str(tmp_path / "a.pt")})
    assert evaluate_predictor(tmp_path / "a.pt", [LINAS]).to_dict() == invoke_json(
        "predictor", "eval", "--predictor", tmp_path / "b.pt", "--data", LINAS)


def test_lut_reports_are_the_json(db: Path, tmp_path: Path) -> None:
    from lutnas import copy_luts, export_lut, import_luts, list_luts, predict_latency, remove_lut

    _need(NOTE10_NET)
    assert list_luts(db).to_dict() == invoke_json("lut", "list", "--db", db)
    assert predict_latency(db, "note10", net_config=NOTE10_NET).to_dict() == invoke_json(
        "lut", "predict", "--db", db, "--device", "note10", "--net-config", NOTE10_NET)
    arch = {"ks": [5] * 20, "e": [4] * 20, "d": [3] * 5, "r": 192}
    assert predict_latency(db, "note10", arch=arch).to_dict() == invoke_json(
        "lut", "predict", "--db", db, "--device", "note10", "--arch", json.dumps(arch))
    exported = export_lut(db, "note10", tmp_path / "a.csv")
    cli = invoke_json("lut", "export", "--db", db, "--device", "note10", "--out", tmp_path / "b.csv")
    assert exported.to_dict() == {**cli, "files": [str(tmp_path / "a.csv")]}
    fresh = [tmp_path / "one.db", tmp_path / "two.db"]
    imported = [import_luts(fresh[0], [tmp_path / "a.csv"], "n10").to_dict(),
                invoke_json("lut", "import", "--db", fresh[1], "--device", "n10", tmp_path / "a.csv")]
    assert imported[0] == {**imported[1], "files": [str(tmp_path / "a.csv")]}
    copied = copy_luts(db, tmp_path / "c1.db", ["i7"]).to_dict()
    assert copied == {**invoke_json("lut", "copy", "--from", db, "--to", tmp_path / "c2.db", "--device", "i7"),
                      "to": str(tmp_path / "c1.db")}
    shutil.copy(db, tmp_path / "other.db")
    assert remove_lut(db, "i7").to_dict() == invoke_json("lut", "rm", "--db", tmp_path / "other.db", "--device",
                                                         "i7", "--yes")


def test_remove_lut_asks_before_it_removes(db: Path) -> None:
    """The question ``lut rm`` asks without --yes is the library's ``confirm``: it names the setting and its rows,
    and a no keeps everything."""
    from lut import LutStore
    from lut.errors import WorkFailedError
    from lutnas import list_luts, remove_lut

    rows = {d["device"]: d["rows"] for d in list_luts(db).devices}
    asked: list[tuple[str, int]] = []
    with pytest.raises(WorkFailedError, match="nothing removed"):
        remove_lut(db, "note10", confirm=lambda what, n: asked.append((what, n)) or False)
    with LutStore(db) as store:
        assert asked == [(store.setting("note10").describe(), rows["note10"])]
    assert {d["device"]: d["rows"] for d in list_luts(db).devices} == rows
    assert remove_lut(db, "note10", confirm=lambda what, n: True).removed_rows == rows["note10"]
    refused = invoke("lut", "rm", "--db", db, "--device", "i7")  # no terminal: the question cannot be asked
    assert refused.exit_code == 2 and f"({rows['i7']} rows) needs --yes" in one_line(refused.stderr)


# -- frictions -----------------------------------------------------------------------------------------------------
def test_json_is_one_answer_for_a_budget_alone(db: Path) -> None:
    """``search --latency-ms 1 --json`` used to print nothing and exit 2; a sweep gave the same budget as a row."""
    _need(OFA_WEIGHTS)
    result = invoke("search", "--db", db, "--device", "note10", "--predictor", OFA_WEIGHTS, "--latency-ms", "1",
                    "--json", *SHORT)
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)["results"]
    assert row["feasible"] is False and row["limits"] == {"note10": 1.0} and row["achievable_ms"]["note10"][0] > 1


def test_lut_help_names_rm() -> None:
    result = invoke("lut", "--help")
    assert result.exit_code == 0 and "rm (remove)" in one_line(result.stdout)
    assert "predict, remove," not in one_line(result.stdout)


def test_selectors_say_did_you_mean(db: Path) -> None:
    typo = invoke("lut", "predict", "--db", db, "--device", "note1O", "--arch", "{}")
    assert typo.exit_code == 2 and "did you mean 'note10'?" in one_line(typo.stderr)
    assert typo.stderr.count("did you mean") == 1
    _two_precisions(db)
    qualifier = invoke("lut", "predict", "--db", db, "--device", "note10:int9", "--arch", "{}")
    assert qualifier.exit_code == 2 and "did you mean 'note10:int8'?" in one_line(qualifier.stderr)


def _two_precisions(db: Path, *, tflite: bool = False) -> None:
    """note10 at int8 (its blocks 0.7x) and, with ``tflite``, a second fp32 setting of another runtime."""
    from lut import DeviceSetting, LutStore

    with LutStore(db) as store:
        table = store.table("note10")
        store.import_rows(DeviceSetting("note10", "unknown", precision="int8"),
                          [(k, {"median_ms": 0.7 * v}, {}) for k, v in table.items()])
        if tflite:
            store.import_rows(DeviceSetting("note10", "tflite", model_format="tflite"),
                              [(k, {"median_ms": 1.2 * v}, {}) for k, v in table.items()])


def test_two_precisions_of_a_device_with_several_settings(db: Path) -> None:
    """``compare --device note10 --precision fp32,int8`` works while note10 also has a tflite fp32 setting:
    ``note10:fp32`` alone names two settings, beside ``note10:int8`` only one fits (same runtime)."""
    _two_precisions(db, tflite=True)
    alone = invoke("lut", "predict", "--db", db, "--device", "note10:fp32", "--arch", "{}")
    assert alone.exit_code == 2 and "has 2 settings, pick one" in one_line(alone.stderr)
    doc = invoke_json("compare", "--db", db, "--device", "note10", "--precision", "fp32,int8", "--subnets", "50")
    assert doc["devices"] == ["note10:fp32", "note10:int8"]
    assert doc["pairs"][0]["median_ratio"] == pytest.approx(0.7)  # the unknown-runtime fp32, not the tflite one


def test_net_config_errors_name_the_file(db: Path, tmp_path: Path) -> None:
    _need(NOTE10_NET)
    missing = invoke("lut", "predict", "--db", db, "--device", "note10", "--net-config", tmp_path / "nonexistent")
    assert missing.exit_code == 2 and "no such file" in missing.stderr
    bare = tmp_path / "net"
    bare.mkdir()
    shutil.copy(NOTE10_NET / "net.config", bare / "net.config")  # no run.config beside it
    no_size = invoke("lut", "predict", "--db", db, "--device", "note10", "--net-config", bare / "net.config")
    assert no_size.exit_code == 2 and "--net-config needs --resolution R" in one_line(no_size.stderr)


def test_tables_at_80_columns_keep_their_words(db: Path) -> None:
    """Off a terminal (80 columns) headers wrap between words, never inside one ("devic e")."""
    _two_precisions(db, tflite=True)
    for args in (("lut", "list", "--db", db),
                 ("compare", "--db", db, "--device", "note10", "--precision", "fp32,int8", "--subnets", "50")):
        result = invoke(*args)
        assert result.exit_code == 0, result.output
        words = {w.strip("│┃ ") for line in result.stderr.splitlines() for w in line.split()}
        for header in ("--device", "setting", "predicted", "calibration", "Spearman", "Kendall", "median",
                       "shared", "geomean"):
            broken = {header[:i] for i in range(2, len(header))} & words
            assert not broken or header not in " ".join(result.stderr.split()), (header, broken)


def test_compare_plot_titles_do_not_overlap(db: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: F401 - the renderer below

    from lut import CompiledLut, LutStore
    from lut.compare import compare_luts, comparison_figure

    long_names = ["a-phone-with-a-long-name:onnxruntime:fp32:threads=1", "another-long-board:tflite:int8:threads=4"]
    with LutStore(db) as store:
        lut = CompiledLut.from_store(store, "note10", "ofa-mbv3-w1.2", calibrated=False)
    cmp = compare_luts(dict(zip(long_names, [lut, lut])), n_subnets=50)
    fig = comparison_figure(cmp)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    titles = [ax.title.get_window_extent(renderer) for ax in fig.axes if ax.get_title()]
    assert len(titles) == 2 and titles[0].x1 <= titles[1].x0


def test_a_predictor_far_outside_its_data_says_so(db: Path, tmp_path: Path) -> None:
    """Trained on the lowest third of DyNAS-T's accuracies, a predictor scores the best subnet under a loose
    budget well above any accuracy it saw: the search says so on stderr and in its JSON."""
    _need(EVO)
    rows = list(csv.DictReader(EVO.open()))
    rows.sort(key=lambda r: float(r["Top-1 Acc (%)"]))
    low = tmp_path / "low.csv"
    with low.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows[: len(rows) // 3])
    trained = invoke_json("predictor", "train", "--data", low, "--out", tmp_path / "low.pt")
    base = ("search", "--db", db, "--device", "i7", "--predictor", tmp_path / "low.pt", "--latency-ms", "1000",
            "--space", "ofa-mbv3-w1.0", "--generations", "30")
    doc = invoke_json(*base)
    far = doc["extrapolation"]
    top = max(float(r["Top-1 Acc (%)"]) for r in rows[: len(rows) // 3])
    assert far["trained_max_pct"] == pytest.approx(top) and far["predicted_max_pct"] > top + 2
    assert far["predicted_max_pct"] == pytest.approx(doc["results"][0]["predicted_accuracy"])
    human = invoke(*base)
    assert human.exit_code == 0 and "far outside its data" in one_line(human.stderr)
    assert trained["n"] <= len(rows) // 3  # duplicate subnets count once


def _imported(*args: str) -> set[str]:
    """The top-level packages a fresh ``python ARGS`` process imports."""
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-X", "importtime", *args], capture_output=True, text=True, check=True)
    return {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in run.stderr.splitlines()
            if line.startswith("import time")}


def test_commands_load_only_what_they_need(db: Path) -> None:
    """``import lutnas`` loads no library of the work; a search loads torch (its predictor) but none of the
    comparison, calibration or rank-metric libraries."""
    _need(OFA_WEIGHTS)
    heavy = {"torch", "pandas", "scipy", "sklearn", "matplotlib", "sqlalchemy", "numpy"}
    assert not _imported("-c", "import lutnas") & heavy
    api = _imported("-c", "import lutnas; lutnas.search, lutnas.compare, lutnas.LutStore")
    assert not api & {"torch", "pandas", "scipy", "sklearn", "matplotlib"}  # the store needs sqlalchemy, no more
    search = _imported("-m", "lutnas", "search", "--db", str(db), "--device", "note10", "--latency-ms", "25",
                       "--predictor", str(OFA_WEIGHTS), "--generations", "2", "--json")
    assert "torch" in search and not search & {"pandas", "scipy", "sklearn", "matplotlib"}
    assert not _imported("-m", "lutnas", "--help") & heavy
