"""How ``lutnas profile`` and ``lutnas validate`` show their runs on stderr."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from lutnas._common import err_console, note
from lutnas._text import literal

__all__ = ["render_interrupted", "render_profile", "render_validation"]


def render_profile(run: Any) -> None:
    """The summary table, a row per device, then the run's closing lines."""
    err_console.print(_summary_table(run.report))
    for line in run.describe():
        err_console.print(literal(line), soft_wrap=True)


def render_interrupted(run: Any) -> None:
    err_console.print(literal(("interrupted", "yellow"), f": not timed yet: {run.untimed()}. Run the same command "
                              "again to time the rest (stored blocks are skipped)."))


def _summary_table(report: Any) -> Table:
    rounds = any(d.round_spread is not None for d in report.devices)
    caption = ("uploaded KB: model files sent to the agents; saved KB: files not sent because the agent already had "
               "them cached")
    if rounds:
        caption += "; round spread: how far a block's slowest round median is above its fastest (median over blocks)"
    table = Table(title="profile summary", caption=caption)
    cols = ["device", "blocks", "timed", "skipped", "failed", "re-timed", "wall s", "busy", "uploaded KB", "saved KB"]
    for col in cols + (["round spread"] if rounds else []):
        table.add_column(col, justify="right" if col != "device" else "left",
                         overflow="fold" if col == "device" else "ellipsis")  # a device's name is never cut
    for d in report.devices:
        cells = [d.name, str(d.total), str(d.timed), str(d.skipped), str(len(d.failed)), str(d.retimed),
                 f"{d.wall_s:.1f}", f"{d.busy_fraction:.0%}", f"{d.uploaded_bytes / 1024:.0f}",
                 f"{d.saved_bytes / 1024:.0f}"]
        if rounds:
            cells.append("-" if d.round_spread is None else f"{d.round_spread:.1%}")
        table.add_row(*map(literal, cells))  # the device's name is the user's or the agent's word
    return table


def render_validation(run: Any) -> None:
    """The fidelity table, the repeat noise, the report's notes and the calibration, on stderr."""
    report = run.report
    table = Table(title=literal(f"fidelity of {report.device}'s LUT ({report.space}, {len(report.samples)} subnets)"))
    for col in ("predictor", "RMSE ms", "RMSPE %", "MAPE %", "bias %", "within ±5%", "within ±10%"):
        table.add_column(col, justify="right" if col != "predictor" else "left")
    rows = [("raw LUT sum", report.raw)]
    if report.calibrated is not None:
        rows.append((f"calibrated ({report.calibration.kind}, held-out CV)", report.calibrated))
    for label, m in rows:
        table.add_row(literal(label), f"{m['rmse_ms']:.3f}", f"{m['rmspe']:.1f}", f"{m['mape']:.1f}",
                      f"{m['bias']:+.1f}", f"{m['within_5pct']:.0f}%", f"{m['within_10pct']:.0f}%")
    err_console.print(table)
    noise = report.noise
    err_console.print(f"measurement repeat noise: median {noise['repeat_median']:.1f}%, p90 {noise['repeat_p90']:.1f}%"
                      " (two independent end-to-end measurements of each subnet)")
    for text in report.notes:
        note(text)
    if report.calibration is not None:
        err_console.print(literal(f"calibration: {report.calibration.describe()}"))
