"""The report's content from a store, without a browser: the same numbers as the commands' --json, escaping,
a bounded size, and the command's errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from lut import LutStore
from report import ReportSettings, build_report, gather_report
from report.page import render_html, script_json
from tests.cli.conftest import invoke, invoke_json
from tests.report.conftest import HOSTILE

pytest.importorskip("plotly")


@pytest.fixture(scope="module")
def data(report_db: Path):
    with LutStore(report_db, create=False) as store:
        return gather_report(store)


def test_devices_are_what_lut_list_says(data, report_db: Path) -> None:
    listed = invoke_json("lut", "list", "--db", report_db)["devices"]
    assert [{k: d[k] for k in listed[0]} for d in data.devices] == json.loads(json.dumps(listed))
    assert all(d["measured_first"] is not None or d["created_at"] for d in data.devices)


def test_fidelity_is_what_validate_says(data, report_db: Path) -> None:
    (fid,) = data.fidelity  # only local:fp32 was validated
    assert fid["device"] == "local:fp32"
    doc = invoke_json("validate", "--db", report_db, "--device", "local:fp32")
    for key in ("raw", "calibrated", "noise", "samples", "run_id", "space"):
        assert fid[key] == pytest.approx(doc[key]), key
    assert len(fid["points"]["measured_ms"]) == doc["samples"]


def test_comparison_is_what_compare_says(data, report_db: Path) -> None:
    cmp = data.comparison
    assert cmp["devices"] == ["i7", "local:fp32", "local:int8", HOSTILE]
    args = [a for d in cmp["devices"] for a in ("--device", d)]
    doc = invoke_json("compare", "--db", report_db, *args)
    for mine, theirs in zip(cmp["pairs"], doc["pairs"], strict=True):
        for key in ("a", "b", "n_shared_blocks", "median_ratio", "subnet_spearman", "subnet_kendall", "n_slower"):
            assert mine[key] == pytest.approx(theirs[key], nan_ok=True), key
    assert cmp["precision_pairs"] == [["local:fp32", "local:int8"]]
    int8 = next(p for p in cmp["pairs"] if (p["a"], p["b"]) == ("local:fp32", "local:int8"))
    assert all("kernel:7" in s["block_key"] for s in int8["slower"])  # the 7x7 cliff, and nothing else


def test_fronts_are_what_search_says(report_db: Path, predictor_file: Path) -> None:
    settings = ReportSettings(devices=("local:fp32", "local:int8"), predictor=predictor_file, budgets_ms=(6.0, 8.0),
                              generations=20)
    with LutStore(report_db, create=False) as store:
        data = gather_report(store, settings)
    assert [f["device"] for f in data.deploy["fronts"]] == ["local:fp32", "local:int8"]
    for front in data.deploy["fronts"]:
        doc = invoke_json("search", "--db", report_db, "--device", front["device"], "--latency-ms", "6,8",
                          "--predictor", predictor_file, "--generations", 20)
        for mine, theirs in zip(front["results"], doc["results"], strict=True):
            assert mine["feasible"] == theirs["feasible"]
            if mine["feasible"]:
                assert mine["arch"] == theirs["arch"]
                assert mine["predicted_accuracy"] == pytest.approx(theirs["predicted_accuracy"])
                assert mine["latency_ms"] == pytest.approx(theirs["latency_ms"])
    regret = invoke_json("compare", "--db", report_db, "--device", "local:fp32", "--device", "local:int8",
                         "--predictor", predictor_file, "--generations", 20)["regret"]
    for mine, theirs in zip(data.deploy["regret"]["by_quantile"], regret["by_quantile"], strict=True):
        assert {d: p["arch"] for d, p in mine["picks"].items()} == {d: p["arch"] for d, p in theirs["picks"].items()}
        assert [c["regret"] for c in mine["cross"]] == pytest.approx([c["regret"] for c in theirs["cross"]])


def test_names_from_the_store_are_escaped(data) -> None:
    page = render_html(data)
    assert HOSTILE not in page  # neither in the markup nor in the embedded figures
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    # the only script elements are the page's own three
    assert len(re.findall(r"<script\b", page)) == 3


def test_script_json_cannot_close_the_script_element() -> None:
    text = script_json({"name": "</script><!-- & \u2028", "nan": float("nan")})
    assert "</" not in text and "<!--" not in text and "\u2028" not in text
    assert json.loads(text) == {"name": "</script><!-- & \u2028", "nan": None}


def test_the_page_is_one_file_of_a_few_megabytes(data, tmp_path: Path) -> None:
    from plotly.offline import get_plotlyjs

    path = build_report(data.store, tmp_path / "sub" / "r.html")
    size = path.stat().st_size
    assert len(get_plotlyjs()) < size < len(get_plotlyjs()) + 1_500_000  # plotly.js plus at most 1.5 MB of report
    page = path.read_text().replace(get_plotlyjs(), "")  # plotly.js holds link texts; it fetches nothing here
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)  # nothing to fetch
    assert "default-src 'none'" in page


def test_without_a_predictor_the_deploy_section_says_how_to_get_one(data) -> None:
    assert data.deploy is None
    assert "lutnas report --predictor pred.pt" in render_html(data)


def test_command_writes_the_page_and_prints_its_path(report_db: Path, tmp_path: Path) -> None:
    doc = invoke_json("report", "--db", report_db, "--out", tmp_path / "r.html", "--device", "local:fp32",
                      "--device", "local:int8")
    assert doc == {"out": str(tmp_path / "r.html")}
    assert "local:int8" in (tmp_path / "r.html").read_text()


@pytest.mark.parametrize("args, message", [
    (["--db", "{tmp}/none.db"], "no LUT store"),
    (["--db", "{db}", "--device", "nope"], "unknown device 'nope'"),
    (["--db", "{db}", "--budgets", "10"], "--budgets and --generations go with --predictor"),
    (["--db", "{db}", "--predictor", "{tmp}/none.pt"], "--predictor file not found"),
    (["--db", "{db}", "--predictor", "{db}", "--budgets", "ten"], "--budgets must be latencies in ms"),
    (["--db", "{db}", "--predictor", "{db}", "--budgets", "-1"], "budgets must be finite numbers > 0"),
])
def test_bad_input_is_one_line_and_exit_2(report_db: Path, tmp_path: Path, args: list[str], message: str) -> None:
    result = invoke("report", *[a.format(db=report_db, tmp=tmp_path) for a in args], "--out", tmp_path / "r.html")
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output
    assert not (tmp_path / "r.html").exists()
