"""The report's charts as Plotly figure dicts (data + layout), drawn in the page by the inlined plotly.js.

Every text Plotly shows (titles, axis labels, trace names, hover text) passes through :func:`_t`: Plotly reads a
few HTML tags in its strings, so a device name is entity-escaped there and shows as written.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["comparison_heatmap", "comparison_scatter", "fidelity_chart", "front_chart"]

_FONT = {"family": "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif", "size": 12}
_COLORS = {"raw": "#1f77b4", "calibrated": "#d62728", "band5": "rgba(44,160,44,0.18)", "band10": "rgba(44,160,44,0.08)",
           "points": "rgba(31,119,180,0.45)", "front": "#ff7f0e"}


def _t(text: object) -> str:
    """Text for Plotly: HTML-escaped, since Plotly reads tags such as ``<a>`` and ``<br>`` in its strings."""
    return html.escape(str(text), quote=True)


def _layout(title: str | Sequence[str], x: str, y: str, **extra: Any) -> dict[str, Any]:
    """A layout with the report's look; a title given as lines is shown on several lines."""
    lines = [title] if isinstance(title, str) else list(title)
    return {"title": {"text": "<br>".join(_t(line) for line in lines), "font": {"size": 13}}, "font": _FONT, "hovermode": "closest",
            "xaxis": {"title": {"text": _t(x)}, "zeroline": False, "automargin": True},
            "yaxis": {"title": {"text": _t(y)}, "zeroline": False, "automargin": True},
            "margin": {"l": 60, "r": 20, "t": 64, "b": 50}, "height": 380, "autosize": True,
            "legend": {"orientation": "h", "y": -0.22}, "paper_bgcolor": "white", "plot_bgcolor": "#fafafa", **extra}


def _band(lo: float, hi: float, pct: float, color: str, name: str) -> dict[str, Any]:
    """The area where a prediction is within ±pct of the measurement (between y = (1-p)x and y = (1+p)x)."""
    p = pct / 100
    xs = [lo, hi, hi, lo, lo]
    ys = [lo * (1 - p), hi * (1 - p), hi * (1 + p), lo * (1 + p), lo * (1 - p)]
    return {"type": "scatter", "x": xs, "y": ys, "fill": "toself", "fillcolor": color, "mode": "lines",
            "line": {"width": 0}, "name": _t(name), "hoverinfo": "skip"}


def fidelity_chart(fid: Mapping[str, Any]) -> dict[str, Any]:
    """LUT sum (raw, and calibrated when fitted) against the measured latency of every validated subnet."""
    pts = fid["points"]
    measured = pts["measured_ms"]
    finite = [v for v in measured if v is not None]
    lo, hi = min(finite) * 0.9, max(finite) * 1.1
    data = [_band(lo, hi, 10, _COLORS["band10"], "within ±10%"), _band(lo, hi, 5, _COLORS["band5"], "within ±5%"),
            {"type": "scatter", "x": [lo, hi], "y": [lo, hi], "mode": "lines", "name": "LUT = measured",
             "line": {"color": "#555", "dash": "dot", "width": 1}, "hoverinfo": "skip"}]
    for column, label in (("predicted_ms", "raw LUT sum"), ("calibrated_ms", "calibrated")):
        if column not in pts:
            continue
        err = [None if (p is None or m is None) else round(100 * (p / m - 1), 2) for p, m in zip(pts[column], measured)]
        data.append({"type": "scatter", "mode": "markers", "x": measured, "y": pts[column], "name": _t(label),
                     "marker": {"size": 7, "color": _COLORS["raw" if column == "predicted_ms" else "calibrated"],
                                "symbol": "circle" if column == "predicted_ms" else "diamond", "opacity": 0.8},
                     "customdata": [[r, e, rep] for r, e, rep in zip(pts["r"], err, pts.get("repeat_ms", err))],
                     "hovertemplate": (f"{_t(label)}<br>measured %{{x:.4f}} ms<br>LUT %{{y:.4f}} ms<br>"
                                       "error %{customdata[1]:+.2f}%<br>r=%{customdata[0]}<extra></extra>")})
    title = [f"{fid['device']}: LUT vs measured", f"{len(measured)} subnets"]
    return {"data": data, "layout": _layout(title, "measured latency (ms)", "LUT latency (ms)")}


def comparison_scatter(a: str, b: str, a_ms: Sequence[float], b_ms: Sequence[float], spearman: float,
                       kendall: float) -> dict[str, Any]:
    """Random subnets' LUT latency on ``a`` against ``b``: a cloud along a line means the two rank alike."""
    data = [{"type": "scatter", "mode": "markers", "x": list(a_ms), "y": list(b_ms), "name": "random subnets",
             "marker": {"size": 4, "color": _COLORS["points"]},
             "hovertemplate": f"{_t(a)}: %{{x:.4f}} ms<br>{_t(b)}: %{{y:.4f}} ms<extra></extra>"}]
    title = [f"{b} vs {a}", f"subnet Spearman {_fmt(spearman, 3)}, Kendall {_fmt(kendall, 3)}"]
    return {"data": data, "layout": _layout(title, f"{a} LUT latency (ms)", f"{b} LUT latency (ms)", showlegend=False)}


def comparison_heatmap(a: str, b: str, by_resolution: Mapping[str, Mapping[str, float | None]]) -> dict[str, Any]:
    """Median block latency ratio b / a per stage (columns) and resolution (rows), colored on a log2 scale."""
    rows = list(by_resolution)
    groups = [g for g in next(iter(by_resolution.values()), {}) if any(by_resolution[r].get(g) is not None for r in rows)]
    ratios = [[by_resolution[r].get(g) for g in groups] for r in rows]
    logs = [[None if v is None or v <= 0 else math.log2(v) for v in row] for row in ratios]
    finite = [abs(v) for row in logs for v in row if v is not None]
    lim = max(max(finite, default=1.0), 0.05)
    data = [{"type": "heatmap", "x": groups, "y": [f"r={r}" for r in rows], "z": logs, "customdata": ratios,
             "zmin": -lim, "zmax": lim, "colorscale": "RdBu",  # plotly's RdBu: blue low, red high
             "text": [["" if v is None else f"{v:.2f}" for v in row] for row in ratios], "texttemplate": "%{text}",
             "colorbar": {"title": {"text": "log2 ratio"}},
             "hovertemplate": (f"%{{y}}, %{{x}}<br>{_t(b)} / {_t(a)}: %{{customdata:.3f}}<extra></extra>")}]
    title = [f"median block latency ratio {b} / {a}", f"(red: slower on {b}, blue: faster)"]
    layout = _layout(title, "block group (stage)", "input resolution (px)")
    layout["height"] = max(240, 110 + 28 * len(rows))
    return {"data": data, "layout": layout}


def front_chart(front: Mapping[str, Any]) -> dict[str, Any]:
    """Predicted top-1 against LUT latency of the best subnet found per budget, the front joined by a line."""
    found = [r for r in front["results"] if r["feasible"]]
    name = front["device"]
    lat = [r["latency_ms"][name] for r in found]
    acc = [r["predicted_accuracy"] for r in found]
    on = sorted((r["latency_ms"][name], r["predicted_accuracy"]) for r in found if r.get("on_front"))
    data = [{"type": "scatter", "mode": "markers", "x": lat, "y": acc, "name": "best subnet per budget",
             "marker": {"size": 9, "color": _COLORS["raw"]}, "customdata": [r["budget_ms"] for r in found],
             "hovertemplate": ("budget %{customdata:.3f} ms<br>latency %{x:.4f} ms<br>predicted top-1 %{y:.3f}%"
                               "<extra></extra>")},
            {"type": "scatter", "mode": "lines", "x": [p[0] for p in on], "y": [p[1] for p in on], "name": "front",
             "line": {"color": _COLORS["front"]}, "hoverinfo": "skip"}]
    shapes = [{"type": "line", "xref": "x", "yref": "paper", "x0": r["budget_ms"], "x1": r["budget_ms"], "y0": 0,
               "y1": 1, "line": {"color": "#999", "width": 1, "dash": "dot"}} for r in front["results"]]
    title = [f"{name}: accuracy-latency front", front["latency_model"]]
    return {"data": data, "layout": _layout(title, f"{name} LUT latency (ms)", "predicted top-1 (%)",
                                            shapes=shapes)}


def _fmt(value: float | None, digits: int) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"
