"""One self-contained HTML page from :class:`report.data.ReportData`: tables, Plotly charts, inline CSS and JS.

Nothing is fetched when the page is viewed: plotly.js, the style sheet and the table script are inlined, and a
Content-Security-Policy forbids any network request. Every text that comes from the store is HTML-escaped where
it enters the markup, and the figures' JSON is embedded with ``<`` written as ``\\u003c``, so no name can close
the script element or open a comment.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from typing import Any

from report import charts
from report.data import ReportData

__all__ = ["render_html", "script_json"]

# default-src 'none': no request of any kind; scripts and styles only from the page itself; Plotly draws
# some markers and its modebar icons as data: images.
_CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; font-src data:"
_SLOWER_SHOWN = 15  # slowest blocks listed per pair

Cell = tuple[str, object]  # (text shown, sort value)


def script_json(value: Any) -> str:
    """``value`` as JSON safe inside ``<script>``: ``<`` (so ``</script>`` and ``<!--``), ``>``, ``&`` and the
    JavaScript line separators escaped; NaN and infinities become null."""
    text = json.dumps(_finite(value), separators=(",", ":"), allow_nan=False)
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
                         ("\u2029", "\\u2029")):
        text = text.replace(char, escape)
    return text


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _num(value: float | None, digits: int = 3, suffix: str = "") -> Cell:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ("-", "")
    return (f"{value:.{digits}f}{suffix}", value)


def _txt(value: object) -> Cell:
    return ("-", "") if value in (None, "") else (str(value), str(value))


class _Page:
    """Numbers the devices for the selector and collects the figures while the sections are written."""

    def __init__(self, devices: Sequence[str]) -> None:
        self.index = {name: i for i, name in enumerate(devices)}
        self.figures: dict[str, dict[str, Any]] = {}

    def dev_attr(self, names: Iterable[str]) -> str:
        ids = " ".join(str(self.index[n]) for n in names if n in self.index)
        return f' data-dev="{ids}"' if ids else ""

    def chart(self, figure: dict[str, Any], label: str) -> str:
        key = f"chart-{len(self.figures)}"
        self.figures[key] = figure
        return f'<div class="chart" id="{key}" role="img" aria-label="{_e(label)}"></div>'

    def table(self, table_id: str, headers: Sequence[str], rows: Sequence[tuple[Sequence[Cell], Iterable[str]]],
              caption: str = "", filterable: bool = True) -> str:
        """A sortable table (click a header) with a filter box; each row carries its devices for the selector."""
        head = "".join(f'<th scope="col" tabindex="0" aria-sort="none">{_e(h)}</th>' for h in headers)
        body = []
        for cells, devices in rows:
            tds = "".join(f'<td data-sort="{_e(sort)}">{_e(text)}</td>' for text, sort in cells)
            body.append(f"<tr{self.dev_attr(devices)}>{tds}</tr>")
        box = (f'<input type="search" class="filter" data-table="{table_id}" placeholder="filter rows" '
               f'aria-label="filter the rows of this table">' if filterable else "")
        cap = f"<caption>{_e(caption)}</caption>" if caption else ""
        return (f'{box}<div class="scroll"><table id="{table_id}" class="sortable">{cap}<thead><tr>{head}</tr></thead>'
                f'<tbody>{"".join(body)}</tbody></table></div>')


def render_html(data: ReportData) -> str:
    """The report page for ``data``: one HTML document, everything inlined."""
    from plotly.offline import get_plotlyjs

    names = [d["selector"] for d in data.devices]
    page = _Page(names)
    body = [_header(data, names), _devices(page, data), _fidelity(page, data), _comparison(page, data),
            _deploy(page, data), _notes(data)]
    assets = resources.files("report") / "assets"
    css = (assets / "report.css").read_text(encoding="utf-8")
    js = (assets / "report.js").read_text(encoding="utf-8")
    title = f"lutnas report: {data.store}"
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_e(title)}</title><style>{css}</style></head><body>"
            + "".join(body)
            + f"<script>{get_plotlyjs()}</script>"
            + f'<script id="figures" type="application/json">{script_json(page.figures)}</script>'
            + f"<script>{js}</script></body></html>\n")


def _how(text: str) -> str:
    return f'<p class="how"><strong>How to read this:</strong> {_e(text)}</p>'


def _header(data: ReportData, names: Sequence[str]) -> str:
    options = "".join(f'<option value="{i}">{_e(n)}</option>' for i, n in enumerate(names))
    sections = (("devices", "Devices and settings"), ("fidelity", "LUT fidelity"), ("comparison", "Device comparison"),
                ("deploy", "What to deploy"))
    nav = "".join(f'<a href="#{key}">{label}</a>' for key, label in sections)
    version = f", lutnas {_e(data.version)}" if data.version else ""
    space = f"; space compared and searched: {_e(data.space)}" if data.space else ""
    return (f'<header><h1>lutnas report</h1><p class="meta">store <code>{_e(data.store)}</code>, {len(names)} '
            f"device setting(s){space}; generated {_e(data.generated_at)}{version}</p>"
            f'<nav>{nav}</nav><label class="picker">device <select id="device-filter">'
            f'<option value="all">all devices</option>{options}</select></label></header><main>')


# -- devices ---------------------------------------------------------------------------------------
def _devices(page: _Page, data: ReportData) -> str:
    headers = ("id", "device", "--device", "board", "CPU", "cores", "int8 dot product", "runtime", "threads",
               "precision", "format", "rows", "predicted rows", "expected error (%)", "failed blocks",
               "round spread (%)", "calibration", "coverage", "measured (UTC)")
    rows = []
    for d in data.devices:
        info = d.get("info") or {}
        props = info.get("properties") or {}
        runtime = f"{d['runtime']} {d['runtime_version'] or ''}".strip()
        cells = [(str(d["id"]), d["id"]), _txt(d["device"]), _txt(d["selector"]), _txt(info.get("board")),
                 _txt(info.get("cpu_model")), _txt(info.get("cpu_cores") or None), _txt(props.get("int8_dot_product")),
                 _txt(runtime), _txt(d["threads"]), _txt(d["precision"]), _txt(d["model_format"]),
                 (str(d["rows"]), d["rows"]), (str(d["predicted_rows"]), d["predicted_rows"]),
                 _num(d["expected_error_pct"], 1), (str(d["failed_blocks"]), d["failed_blocks"]),
                 _num(d["round_spread_pct"], 1), _txt(d["calibration"]), _txt(_coverage_text(d["coverage"])),
                 _txt(_dates(d))]
        rows.append((cells, [d["selector"]]))
    return ('<section id="devices"><h2>Devices and settings</h2>'
            + _how("one row per device setting (device, runtime, threads, precision): what the device is, how its LUT "
                   "was made and how much of each space it prices. Predicted rows come from a few-shot transfer and "
                   "carry its cross-validated error; the round spread is how far a block's timing rounds disagreed. "
                   "Click a header to sort, type to filter, pick a device above to show only its rows.")
            + page.table("devices-table", headers, rows) + "</section>")


def _coverage_text(coverage: Sequence[Mapping[str, Any]]) -> str:
    """``ofa-mbv3-w1.0 r=160..224 step 16; partly r=128 (40/96)`` per space: complete and begun resolutions."""
    from space import describe_resolutions

    out = []
    for space in dict.fromkeys(c["space"] for c in coverage):
        mine = [c for c in coverage if c["space"] == space]
        done = [c["resolution"] for c in mine if c["complete"]]
        part = ", ".join(f"r={c['resolution']} ({c['blocks']}/{c['of']})" for c in mine if not c["complete"])
        text = f"{space} r={describe_resolutions(done)}" if done else space
        out.append(text + (f"; partly {part}" if part else ""))
    return "; ".join(out)


def _dates(d: Mapping[str, Any]) -> str:
    first, last = d.get("measured_first"), d.get("measured_last")
    if not first:
        return f"created {d['created_at']}" if d.get("created_at") else ""
    return first if first == last else f"{first} .. {last}"


# -- fidelity --------------------------------------------------------------------------------------
def _fidelity(page: _Page, data: ReportData) -> str:
    out = ['<section id="fidelity"><h2>LUT fidelity</h2>',
           _how("each point is one subnet timed whole on the device (x) against what its LUT predicts (y): the "
                "raw sum of its blocks, and the calibrated prediction (cross-validated, held out) where a "
                "calibration was fitted. Points inside the green bands are within ±5% and ±10%. The repeat noise "
                "is how far two measurements of the same subnet disagree: no prediction can beat it.")]
    if not data.fidelity:
        out.append('<p class="empty">No setting has a validation run; run <code>lutnas validate</code> to see how '
                   "well a LUT predicts whole networks.</p>")
    rows = []
    for f in data.fidelity:
        for kind in ("raw", "calibrated"):
            m = f.get(kind)
            if not m:
                continue
            rows.append(([_txt(f["device"]), _txt(kind), (str(m["n"]), m["n"]), _num(m["within_5pct"], 1),
                          _num(m["within_10pct"], 1), _num(m["rmspe"], 2), _num(m["bias"], 2),
                          _num(f["noise"]["repeat_median"], 2), _num(f["noise"]["repeat_p90"], 2)], [f["device"]]))
    if rows:
        out.append(page.table("fidelity-table", ("device", "prediction", "subnets", "within ±5% (%)",
                                                 "within ±10% (%)", "RMSPE (%)", "bias (%)", "repeat noise median (%)",
                                                 "repeat noise p90 (%)"), rows))
    out.append('<div class="grid">')
    for f in data.fidelity:
        cal = f.get("calibration") or {}
        note = f"<p class=\"small\">calibration: {_e(cal['describe'])}</p>" if cal else ""
        out.append(f'<div class="card"{page.dev_attr([f["device"]])}><h3>{_e(f["device"])}</h3>'
                   + page.chart(charts.fidelity_chart(f), f"LUT vs measured latency on {f['device']}") + note
                   + "</div>")
    out.append("</div></section>")
    return "".join(out)


# -- comparison ------------------------------------------------------------------------------------
def _comparison(page: _Page, data: ReportData) -> str:
    out = ['<section id="comparison"><h2>Device comparison</h2>',
           _how("for each pair A, B: B's block latency over A's (ratio > 1: slower on B), and how alike the two rank "
                "the same random subnets (Spearman and Kendall over LUT sums: 1 means a subnet fast on A is fast "
                "on B). The heat map shows the median ratio per stage and resolution; the last table lists the "
                "blocks that are slower on B, slowest first (for two precisions of one device: where the lower "
                "precision loses). Raw LUT sums; calibrations are not applied.")]
    cmp = data.comparison
    if cmp is None:
        out.append('<p class="empty">Nothing to compare: a comparison needs two or more devices whose LUTs cover '
                   "one space at a common resolution.</p></section>")
        return "".join(out)
    out.append(f'<p class="small">{_e(cmp["space"])}, resolutions {_e(", ".join(map(str, cmp["resolutions"])))}, '
               f'{cmp["n_subnets"]} random subnets (scatters show {len(next(iter(cmp["subnet_sample_ms"].values())))})'
               "</p>")
    precision = {tuple(p) for p in cmp["precision_pairs"]}
    rows = []
    for p in cmp["pairs"]:
        kind = "precision" if (p["a"], p["b"]) in precision else "devices"
        rows.append(([_txt(p["a"]), _txt(p["b"]), _txt(kind), (str(p["n_shared_blocks"]), p["n_shared_blocks"]),
                      _num(p["median_ratio"]), _num(p["subnet_median_ratio"]), _num(p["block_spearman"]),
                      _num(p["subnet_spearman"]), _num(p["subnet_kendall"]), (str(p["n_slower"]), p["n_slower"])],
                     [p["a"], p["b"]]))
    out.append(page.table("pairs-table", ("A", "B", "pair", "shared blocks", "median block ratio B/A",
                                          "median subnet ratio B/A", "block Spearman", "subnet Spearman",
                                          "subnet Kendall", "blocks slower on B"), rows))
    for i, p in enumerate(cmp["pairs"]):
        out.append(_pair_card(page, cmp, p, i, (p["a"], p["b"]) in precision))
    out.append(_dominant(page, cmp) + "</section>")
    return "".join(out)


def _pair_card(page: _Page, cmp: Mapping[str, Any], p: Mapping[str, Any], i: int, precision: bool) -> str:
    a, b = p["a"], p["b"]
    what = " (two precisions of one device)" if precision else ""
    scatter = charts.comparison_scatter(a, b, cmp["subnet_sample_ms"][a], cmp["subnet_sample_ms"][b],
                                        p["subnet_spearman"], p["subnet_kendall"])
    heat = charts.comparison_heatmap(a, b, p["ratio_by_resolution"])
    kinds = [([_txt(k), (str(v["n"]), v["n"]), _num(v["median"]), _num(v["geomean"]), _num(v["min"]), _num(v["max"])],
              [a, b]) for k, v in p["ratio_by_kind"].items()]
    slower = [([_txt(s["block_key"]), _txt(s["group"]), _num(s["a_ms"], 4), _num(s["b_ms"], 4), _num(s["ratio"], 2)],
               [a, b]) for s in p["slower"][:_SLOWER_SHOWN]]
    shown = f"the slowest {len(slower)} of " if p["n_slower"] > len(slower) else ""
    parts = [f'<details class="card pair"{page.dev_attr([a, b])} {"open" if i < 3 else ""}>',
             f"<summary><h3>{_e(b)} vs {_e(a)}{_e(what)}</h3></summary><div class=\"grid\">",
             f'<div>{page.chart(scatter, f"subnet latency, {b} against {a}")}</div>',
             f'<div>{page.chart(heat, f"block latency ratio {b} / {a}")}</div></div>',
             f"<h4>ratio {_e(b)} / {_e(a)} by block kind</h4>",
             page.table(f"kinds-{i}", ("kind", "blocks", "median", "geomean", "min", "max"), kinds, filterable=False)]
    if slower:
        parts += [f"<h4>{shown}{p['n_slower']} blocks slower on {_e(b)} than on {_e(a)}</h4>",
                  page.table(f"slower-{i}", ("block", "group", f"{a} (ms)", f"{b} (ms)", "ratio B/A"), slower)]
    else:
        parts.append(f'<p class="small">No block is slower on {_e(b)} than on {_e(a)}.</p>')
    return "".join(parts) + "</details>"


def _dominant(page: _Page, cmp: Mapping[str, Any]) -> str:
    """Per device, which block groups its random subnets spend their time in."""
    groups = [g["group"] for g in next(iter(cmp["dominant_groups"].values()), [])]
    order = sorted(groups)
    rows = []
    for device, shares in cmp["dominant_groups"].items():
        by = {s["group"]: s["share"] for s in shares}
        rows.append(([_txt(device)] + [_num(100 * by[g], 1) for g in order], [device]))
    return ("<h3>Where the time goes</h3><p class=\"small\">mean share of a random subnet's LUT latency per block "
            "group (%)</p>" + page.table("dominant-table", ["device", *order], rows, filterable=False))


# -- what to deploy --------------------------------------------------------------------------------
def _deploy(page: _Page, data: ReportData) -> str:
    out = ['<section id="deploy"><h2>What to deploy</h2>',
           _how("for each device, the subnet with the best predicted accuracy under each latency budget (dotted "
                "lines), searched on the device's LUT (calibrated where a calibration exists); the line joins the "
                "budgets' picks no other pick beats on both latency and accuracy. The regret table prices each "
                "device's pick on every other device at matched budgets (the same quantile of each device's "
                "range, raw LUT sums): the accuracy points lost by deploying the row's pick on the column's device, "
                "or how far over that device's budget it runs.")]
    dep = data.deploy
    if dep is None:
        out.append('<p class="empty">No predictor was given: run <code>lutnas report --predictor pred.pt</code> '
                   "to see fronts, picks and the cross-device regret.</p></section>")
        return "".join(out)
    out.append(f'<p class="small">predictor {_e(dep["predictor"])}: {_e(dep["accuracy_model"])}; '
               f'{dep["generations"]} generations per search, seed {dep["seed"]}</p><div class="grid">')
    for front in dep["fronts"]:
        rows = []
        for r in front["results"]:
            if r["feasible"]:
                lat = r["latency_ms"][front["device"]]
                rows.append(([_num(r["budget_ms"], 3), _num(lat, 3), _num(r["predicted_accuracy"], 2),
                              _txt("yes" if r["on_front"] else "no"), _txt(_arch(r["arch"]))], [front["device"]]))
            else:
                rows.append(([_num(r["budget_ms"], 3), ("infeasible", ""), ("-", ""), ("-", ""), _txt(r["reason"])],
                             [front["device"]]))
        out.append(f'<div class="card"{page.dev_attr([front["device"]])}><h3>{_e(front["device"])}</h3>'
                   + page.chart(charts.front_chart(front), f"front on {front['device']}")
                   + page.table(f"front-{page.index.get(front['device'], 0)}",
                                ("budget (ms)", "latency (ms)", "predicted top-1 (%)", "on front", "subnet"), rows,
                                filterable=False) + "</div>")
    out.append("</div>")
    if dep["regret"]:
        out.append(_regret(page, dep["regret"]))
    out.append("</section>")
    return "".join(out)


def _regret(page: _Page, regret: Mapping[str, Any]) -> str:
    devices = regret["devices"]
    out = [f"<h3>Cross-device regret</h3><p class=\"small\">resolutions {_e(', '.join(map(str, regret['resolutions'])))}"
           "; row: the device whose pick is deployed, column: where it runs</p>"]
    for qi, q in enumerate(regret["by_quantile"]):
        rows = []
        for a in devices:
            cells = [_txt(a)]
            for b in devices:
                c = next(c for c in q["cross"] if c["source"] == a and c["target"] == b)
                if c["feasible"]:
                    cells.append((f"{c['regret']:+.2f} pts ({c['latency_ms']:.2f} ms)", c["regret"]))
                else:
                    cells.append((f"over budget +{c['over_budget_ms']:.2f} ms (+{c['over_budget_pct']:.1f}%)",
                                  1e6 + c["over_budget_pct"]))
            rows.append((cells, [a]))
        picks = ", ".join(f"{d} {p['budget_ms']:.2f} ms" for d, p in q["picks"].items())
        out.append(f"<h4>budget quantile {q['quantile']:g} ({_e(picks)})</h4>"
                   + page.table(f"regret-{qi}", ["pick of", *devices], rows, filterable=False))
    return "".join(out)


def _arch(arch: Mapping[str, Any]) -> str:
    """``r=224 d=2,3,4,3,4 ks=... e=...``: the subnet in one line, exact."""
    r = arch.get("r")
    parts = [f"r={r[0] if isinstance(r, list) else r}"]
    parts += [f"{k}={','.join(map(str, arch[k]))}" for k in ("d", "ks", "e", "w") if k in arch]
    return " ".join(parts)


def _notes(data: ReportData) -> str:
    notes = "".join(f"<li>{_e(n)}</li>" for n in data.notes)
    listing = f"<h2>Notes</h2><ul>{notes}</ul>" if notes else ""
    return f'</main><footer id="notes">{listing}<p class="small">lutnas report; one file, no network needed.</p></footer>'
