"""The report in a real browser: Debian's chromium, headless, driven by Playwright (no browser download).

The page loads from file:// with no console error and no request but its own file, every section shows the
numbers of the commands' --json, a header click sorts, the device selector hides the other devices, a name
that is markup shows as text, and a screenshot is written."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from tests.cli.conftest import invoke_json
from tests.report.conftest import HOSTILE

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).is_file():
    pytest.skip("chromium is not installed (apt-get install chromium); .ci/run installs it", allow_module_level=True)
playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the dev extra)")
pytest.importorskip("plotly")

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
BUDGETS = "6,8"
GENERATIONS = 20


@pytest.fixture(scope="module")
def page_file(report_db: Path, predictor_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("page") / "report.html"
    doc = invoke_json("report", "--db", report_db, "--out", out, "--predictor", predictor_file, "--budgets", BUDGETS,
                      "--generations", GENERATIONS)
    assert doc["out"] == str(out)
    return out


@pytest.fixture(scope="module")
def browser_page(page_file: Path):
    """The loaded page, with what it logged and requested."""
    with playwright.sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
        context = pw.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, headless=True, args=ARGS,
                                                        viewport={"width": 1280, "height": 900})
        page = context.new_page()
        seen = {"console": [], "requests": [], "dialogs": []}
        page.on("console", lambda m: seen["console"].append((m.type, m.text)))
        page.on("pageerror", lambda e: seen["console"].append(("pageerror", str(e))))
        page.on("request", lambda r: seen["requests"].append(r.url))
        page.on("dialog", lambda d: (seen["dialogs"].append(d.message), d.dismiss()))
        page.goto(page_file.as_uri())
        page.wait_for_selector("body[data-ready='1']", timeout=60_000)
        page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length > 0")
        yield page, seen
        context.close()


def _rows(page, table: str) -> list[list[str]]:
    return page.eval_on_selector_all(f"#{table} tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))")


def _visible_rows(page, table: str) -> list[list[str]]:
    return page.eval_on_selector_all(f"#{table} tbody tr", "rows => rows.filter(r => r.offsetParent !== null)"
                                     ".map(r => [...r.cells].map(c => c.textContent))")


def _header_index(page, table: str, label: str) -> int:
    headers = page.eval_on_selector_all(f"#{table} thead th", "hs => hs.map(h => h.textContent)")
    return headers.index(label)


def test_loads_offline_without_errors(browser_page, page_file: Path) -> None:
    page, seen = browser_page
    assert [m for m in seen["console"] if m[0] in ("error", "pageerror", "warning")] == []
    assert seen["requests"] == [page_file.as_uri()]  # nothing but the file itself
    assert seen["dialogs"] == []  # the device named <script>alert(1)</script> ran nothing
    charts = page.eval_on_selector_all(".js-plotly-plot", "cs => cs.filter(c => c.querySelector('svg.main-svg'))"
                                       ".length")
    assert charts >= 4  # fidelity, two pairs' scatter and heat map, fronts: drawn by plotly.js


def test_sections_show_the_commands_numbers(browser_page, report_db: Path, predictor_file: Path) -> None:
    page, _ = browser_page
    listed = invoke_json("lut", "list", "--db", report_db)["devices"]
    rows = _rows(page, "devices-table")
    assert [r[2] for r in rows] == [d["selector"] for d in listed]  # the markup name among them, as text
    assert HOSTILE in [r[1] for r in rows]
    col = _header_index(page, "devices-table", "rows")
    assert [int(r[col]) for r in rows] == [d["rows"] for d in listed]

    val = invoke_json("validate", "--db", report_db, "--device", "local:fp32")
    fid = {r[1]: r for r in _rows(page, "fidelity-table")}
    within = _header_index(page, "fidelity-table", "within ±10% (%)")
    assert fid["raw"][within] == f"{val['raw']['within_10pct']:.1f}"
    assert fid["calibrated"][within] == f"{val['calibrated']['within_10pct']:.1f}"
    noise = _header_index(page, "fidelity-table", "repeat noise median (%)")
    assert fid["raw"][noise] == f"{val['noise']['repeat_median']:.2f}"

    names = [d["selector"] for d in listed]
    cmp = invoke_json("compare", "--db", report_db, *[a for n in names for a in ("--device", n)])
    shown = {(r[0], r[1]): r for r in _rows(page, "pairs-table")}
    spearman = _header_index(page, "pairs-table", "subnet Spearman")
    ratio = _header_index(page, "pairs-table", "median block ratio B/A")
    assert len(shown) == len(cmp["pairs"])
    for p in cmp["pairs"]:
        assert shown[p["a"], p["b"]][spearman] == f"{p['subnet_spearman']:.3f}"
        assert shown[p["a"], p["b"]][ratio] == f"{p['median_ratio']:.3f}"
    assert shown["local:fp32", "local:int8"][2] == "precision"

    for i, name in enumerate(names):
        doc = invoke_json("search", "--db", report_db, "--device", name, "--latency-ms", BUDGETS, "--predictor",
                          predictor_file, "--generations", GENERATIONS)
        front = _rows(page, f"front-{i}")
        for row, result in zip(front, doc["results"], strict=True):
            if result["feasible"]:
                assert row[2] == f"{result['predicted_accuracy']:.2f}"
                assert row[1] == f"{result['latency_ms'][name]:.3f}"
            else:
                assert row[1] == "infeasible"


def test_a_header_click_sorts(browser_page) -> None:
    page, _ = browser_page
    col = _header_index(page, "devices-table", "rows")
    header = page.locator("#devices-table thead th").nth(col)
    header.click()
    up = [int(r[col]) for r in _rows(page, "devices-table")]
    assert up == sorted(up) and header.get_attribute("aria-sort") == "ascending"
    header.click()
    down = [int(r[col]) for r in _rows(page, "devices-table")]
    assert down == sorted(up, reverse=True) and header.get_attribute("aria-sort") == "descending"


def test_the_filter_box_keeps_matching_rows(browser_page) -> None:
    page, _ = browser_page
    box = page.locator('input.filter[data-table="devices-table"]')
    box.fill("onnxruntime int8")
    assert [r[2] for r in _visible_rows(page, "devices-table")] == ["local:int8"]
    box.fill("")
    assert len(_visible_rows(page, "devices-table")) == len(_rows(page, "devices-table"))


def test_the_device_selector_shows_one_device(browser_page, tmp_path: Path) -> None:
    page, _ = browser_page
    page.select_option("#device-filter", label="local:int8")
    assert [r[2] for r in _visible_rows(page, "devices-table")] == ["local:int8"]
    pairs = _visible_rows(page, "pairs-table")
    assert pairs and all("local:int8" in (r[0], r[1]) for r in pairs)
    fronts = page.eval_on_selector_all("#deploy .card", "cs => cs.filter(c => c.offsetParent !== null)"
                                       ".map(c => c.querySelector('h3').textContent)")
    assert fronts == ["local:int8"]
    assert page.locator("#fidelity .card").first.is_hidden()  # only local:fp32 was validated
    page.select_option("#device-filter", value="all")
    assert len(_visible_rows(page, "devices-table")) == 4


def test_screenshot(browser_page, tmp_path: Path) -> None:
    page, _ = browser_page
    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
    narrow = tmp_path / "narrow.png"  # a phone-sized window: the page reflows, nothing scrolls sideways
    page.set_viewport_size({"width": 390, "height": 800})
    # Plotly redraws its charts on a resize event a moment later; on a loaded host that can take seconds.
    try:
        page.wait_for_function("document.documentElement.scrollWidth <= 391", timeout=15_000)
    except Exception:  # noqa: BLE001 - the assertion below says what the width was
        pass
    wide = page.evaluate("""() => [...document.querySelectorAll('body *')]
        .filter(e => e.getBoundingClientRect().right > 391 && getComputedStyle(e).display !== 'none'
                     && !e.closest('.scroll'))
        .slice(0, 5).map(e => `${e.tagName}#${e.id}.${e.className} ${Math.round(e.getBoundingClientRect().right)}`)""")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390 + 1, wide
    page.screenshot(path=str(narrow))
    page.set_viewport_size({"width": 1280, "height": 900})
