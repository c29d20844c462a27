"""How ``lutnas predictor train|eval`` and ``lutnas search`` show their reports on stderr."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lutnas._common import err_console
from lutnas._tables import summary_table
from lutnas._text import literal

__all__ = ["render_eval", "render_search", "render_train"]


def render_train(report: Any) -> None:
    """The space (when not given), the train metrics and where the predictor went."""
    if report.space_note != "given":
        err_console.print(literal(f"space: {report.space} ({report.space_note})"))
    m = report.train_metrics
    err_console.print(literal(f"trained on {report.n} subnets in {report.fit_seconds:.2f} s (train Kendall "
                              f"{m['kendall']:.3f}, RMSE {m['rmse']:.3f}%); saved {report.out}"))


def render_eval(report: Any) -> None:
    table = summary_table(f"{report.predictor} on {report.n} subnets", ("kendall", "spearman", "rmse (%)", "n"),
                          right=("kendall", "spearman", "rmse (%)", "n"))
    table.add_row(f"{report.kendall:.4f}", f"{report.spearman:.4f}", f"{report.rmse:.3f}", str(report.n))
    err_console.print(table)


def render_search(report: Any, plot: Path | None) -> None:
    """A row per budget, each budget's subnet (or why none), the latency and accuracy models used."""
    extra = sorted({k for r in report.results for k in r.get("costs", {})})
    columns = [f"{d} {what} (ms)" for d in report.devices for what in ("budget", "latency")]
    table = summary_table("search results", [*columns, *extra, "predicted top-1 (%)", "r", "search (s)"],
                          right=[*columns, *extra, "predicted top-1 (%)", "r", "search (s)"])
    for r in report.results:
        table.add_row(*_result_cells(r, report.devices, extra))
    err_console.print(table)
    for r in report.results:
        budget = ", ".join(f"{dev} <= {r['limits'][dev]:g} ms" for dev in report.devices)
        detail = json.dumps(r["arch"]) if r["feasible"] else r["reason"]
        err_console.print(literal((budget, "bold"), ": ", detail), soft_wrap=True)  # a reason may quote a name
    for dev, how in report.latency_model.items():
        err_console.print(literal(f"{dev} latency: {how}"))
    err_console.print(literal(f"accuracy: {report.accuracy_model}"))
    if plot is not None:
        err_console.print(literal(f"front drawn to {plot}"))


def _result_cells(r: dict[str, Any], devices: list[str], extra: list[str]) -> list[Any]:
    cells: list[Any] = []
    for dev in devices:
        limit = r["limits"][dev]
        if r["feasible"]:
            cells += [f"{limit:g}", f"{r['latency_ms'][dev]:.2f}"]
        else:
            lo, hi = r["achievable_ms"][dev]
            cells += [f"{limit:g}", literal(("infeasible" if limit < lo else "not binding", "red"),
                                            f": achievable {lo:.1f}..{hi:.1f} ms")]
    if not r["feasible"]:
        return cells + ["-"] * (len(extra) + 3)
    cells += [f"{r['costs'][name]:.4g}" for name in extra]
    return cells + [f"{r['predicted_accuracy']:.2f}", str(r["arch"]["r"]), f"{r['search_seconds']:.2f}"]
