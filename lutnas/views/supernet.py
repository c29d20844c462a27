"""How ``lutnas supernet train|collect|extract|eval`` show their reports on stderr."""

from __future__ import annotations

import json
from typing import Any

from rich.table import Table

from lutnas._common import err_console
from lutnas._text import literal

__all__ = ["render_collect", "render_eval", "render_extract", "render_train"]


def render_train(report: Any) -> None:
    """A row per phase: epochs, time, loss and the largest and smallest subnets' accuracy."""
    title = f"progressive shrinking → {report.checkpoint} ({report.processes} process(es))"
    table = Table(title=literal(title), title_justify="left")
    for column in ("phase", "epochs", "seconds", "loss", "largest %", "smallest %"):
        table.add_column(column, justify="left" if column == "phase" else "right")
    for row in report.phases:
        loss = "-" if row["loss"] is None else f"{row['loss']:.3f}"
        table.add_row(literal(row["name"]), str(row["epochs"]), f"{row['seconds']:.1f}", loss,
                      _pct(row.get("val_acc_largest")), _pct(row.get("val_acc_smallest")))
    err_console.print(table)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def render_collect(report: Any) -> None:
    doc = report.to_dict()
    err_console.print(literal(
        f"wrote {doc['samples']} subnets of {report.space or 'an unregistered space'} to {report.out}: "
        f"{report.precision} top-1 {doc['accuracy_min']:.1f}–{doc['accuracy_max']:.1f}% "
        f"(mean {doc['accuracy_mean']:.1f}%), MACs {doc['macs_min']:,}–{doc['macs_max']:,}"
    ))


def render_extract(report: Any) -> None:
    err_console.print(literal(f"wrote {report.format} subnet to {report.out} ({report.macs:,} MACs, "
                              f"{report.params:,} params)"))


def render_eval(report: Any) -> None:
    result = report.result
    table = Table(show_header=False)
    table.add_row("top-1", literal(f"{result.accuracy:.2f}% on {report.eval_images} held-out images of "
                                   f"{report.dataset}"))
    table.add_row("MACs", f"{result.macs:,}")
    table.add_row("params", f"{result.params:,}")
    table.add_row("arch", json.dumps(result.arch, separators=(",", ":")))
    err_console.print(table)
