"""How ``lutnas lut list|import|export|predict|rm|copy`` show their reports on stderr."""

from __future__ import annotations

from typing import Any

from lutnas._common import err_console
from lutnas._tables import summary_table
from lutnas._text import literal

__all__ = ["render_copy", "render_export", "render_import", "render_list", "render_predict", "render_remove"]


def render_list(report: Any, db: str) -> None:
    """Every setting of the store, one row each, then what each covers."""
    # The selector names the device; the setting's fields share one cell: eleven columns do not fit 80.
    table = summary_table(f"LUT store {db}", ("id", "--device", "setting", "rows", "predicted", "round spread",
                                                "calibration"), right=("rows",))
    for d in report.devices:
        spread = d["round_spread_pct"]
        cells = (d["id"], d["selector"], _setting_text(d), d["rows"], _predicted_text(d),
                 "-" if spread is None else f"{spread:.0f}%", d["calibration"] or "-")
        table.add_row(*map(literal, cells))  # names and fields come from the store: shown as they read
    err_console.print(table)
    if any(d["round_spread_pct"] is not None for d in report.devices):
        err_console.print("round spread: rows timed in several rounds (profile --rounds), the median over blocks of "
                          "how far the slowest round's median is above the fastest; the row keeps the fastest",
                          highlight=False)
    err_console.print(_coverage_table(report.devices))


def _setting_text(d: dict[str, Any]) -> str:
    """``onnxruntime 1.20, 1 thread, int8, onnx``: the fields that tell a device's settings apart."""
    threads = d["threads"]
    parts = [f"{d['runtime']} {d['runtime_version'] or ''}".strip(),
             "threads unknown" if not threads else f"{threads} thread{'s' if threads != 1 else ''}",
             d["precision"], d["model_format"], d["delegate"]]
    return ", ".join(str(p) for p in parts if p)


def _predicted_text(d: dict[str, Any]) -> str:
    """``90 (±8%)``: few-shot rows and their cross-validated error; ``-`` when every row is measured."""
    if not d["predicted_rows"]:
        return "-"
    err = d["expected_error_pct"]
    return f"{d['predicted_rows']} (±{err:.0f}%)" if err is not None else str(d["predicted_rows"])


def _coverage_table(devices: list[dict[str, Any]]) -> Any:
    """Per device and space: the resolutions complete, and those begun with how many blocks of how many."""
    from space import describe_resolutions

    table = summary_table("coverage (resolutions whose blocks the LUT holds)",
                          ("id", "device", "space", "complete", "partial"))
    for d in devices:
        for space in dict.fromkeys(r["space"] for r in d["coverage"]):
            mine = [r for r in d["coverage"] if r["space"] == space]
            done = [r["resolution"] for r in mine if r["complete"]]
            partial = ", ".join(f"{r['resolution']}: {r['blocks']} of {r['of']}" for r in mine if not r["complete"])
            done_text = describe_resolutions(done) if done else "-"
            table.add_row(*map(literal, (d["id"], d["device"], space, done_text, partial or "-")))
        if not d["coverage"]:
            table.add_row(*map(literal, (d["id"], d["device"], "-", "-", "-")))
    return table


def render_import(report: Any) -> None:
    """How many rows were new and how many replaced rows already there."""
    notes = [f"{report.new_rows} new, {report.rows - report.new_rows} replaced"]
    if report.assumed_rows:
        notes.append(f"{report.assumed_rows} AvgPool2D rows absent in source, assumed 0 ms")
    if report.calibrations:
        notes.append(f"{report.calibrations} calibration(s) from the file")
    err_console.print(literal(f"imported {report.rows} rows ({'; '.join(notes)}) from {len(report.files)} file(s) "
                              f"into {report.description}"))


def render_export(report: Any) -> None:
    err_console.print(literal(f"wrote {len(report.files)} file(s) for {report.description} to {report.out}"))


def render_predict(report: Any) -> None:
    how = f"calibrated ({report.calibration}; raw LUT sum {report.raw_ms:.3f} ms)" if report.calibrated \
        else "raw LUT sum"
    err_console.print(literal(f"{report.device} ({report.space}): {report.latency_ms:.3f} ms, {how}"))


def render_remove(report: Any) -> None:
    err_console.print(literal(f"removed {report.description} ({report.removed_rows} rows)"))


def render_copy(report: Any) -> None:
    for item, what in zip(report.copied, report.descriptions):
        err_console.print(literal(f"copied {what} ({item['rows']} rows) to {report.dest} as #{item['to_id']}"))
