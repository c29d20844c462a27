"""How ``lutnas demo`` shows its plan, its six steps and its result on stderr."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

from rich.table import Table

from lutnas._common import err_console
from lutnas._text import literal

__all__ = ["render", "render_plan", "stages"]


def render_plan(plan: Any) -> None:
    """What the demo will do differently from the default, said before it starts."""
    for note in plan.notes:
        err_console.print(literal(("note: ", "yellow"), note))


def stages(plan: Any) -> Callable[[str], contextlib.AbstractContextManager[None]]:
    """The ``stage(name)`` context :func:`lutnas.demo.run_demo` enters around each step: the step's title before
    it and its time after it."""
    titles = _stage_titles(plan)

    @contextlib.contextmanager
    def stage(name: str) -> Iterator[None]:
        t0 = time.monotonic()
        err_console.rule(titles[name], style="cyan")
        yield
        err_console.print(f"[green]done[/] {name} in {time.monotonic() - t0:.1f} s")

    return stage


def _stage_titles(plan: Any) -> dict[str, str]:
    predictor = ("train the accuracy predictor on the bundled DyNAS-T accuracies" if plan.accuracy_source == "dynast"
                 else f"train the {plan.family} digits supernet, collect its subnets' accuracies, train the predictor")
    return {
        "profile": f"1/6 profile every block of {plan.space} at {plan.resolution} px (onnxruntime, 1 thread)",
        "validate": "2/6 validate the LUT against whole networks and calibrate",
        "predictor": f"3/6 {predictor}",
        "search": "4/6 search at three latency budgets",
        "measure": "5/6 time the found subnets end to end",
        "report": "6/6 write the report page (lutnas report)",
    }


def render(result: Any, precision: str, elapsed_s: float) -> None:
    """The fidelity and predictor lines and the table of found subnets, on stderr."""
    for line in result.describe():
        if result.plan is not None and line in result.plan.notes:
            continue  # said before the demo started
        err_console.print(line)
    plan = result.plan
    where = f"{plan.space}, {plan.resolution} px" if plan else "ofa-mbv3-w1.0, 224 px"
    table = Table(title=f"best subnets on this machine ({where}, {precision}) — {elapsed_s:.0f} s")
    for col in ("budget ms", "subnet (depths, kernel·expand per block; ResNet: depths, widths)", "pred. top-1 %",
                "LUT ms", "measured ms"):
        table.add_column(col, justify="left" if col.startswith("subnet") else "right")
    for row in result.rows:
        table.add_row(f"{row.budget_ms:.2f}", _arch_summary(row.arch), f"{row.predicted_accuracy:.2f}",
                      f"{row.lut_ms:.2f}", f"{row.measured_ms:.2f}")
    err_console.print(table)
    for row in result.rows:
        err_console.print(literal((f"{row.budget_ms:.2f} ms:", "dim"), f" {row.arch}"))
    if result.report is not None:
        err_console.print(literal("report: ", result.report))


def _arch_summary(arch: dict) -> str:
    """A compact subnet description: depths, then kernel/expand of the active slots per stage (ResNet50:
    depths, expand ratios of the blocks and width indices)."""
    if "w" in arch:
        return f"d{''.join(map(str, arch['d']))} w{''.join(map(str, arch['w']))}"
    parts = []
    n_stages = len(arch["d"])
    per_stage = [4] * (n_stages - 1) + [len(arch["ks"]) - 4 * (n_stages - 1)]  # ProxylessNAS's last stage: 1 slot
    for stage, depth in enumerate(arch["d"]):
        start = sum(per_stage[:stage])
        slots = range(start, start + min(depth, per_stage[stage]))
        parts.append("".join(f"{arch['ks'][i]}{arch['e'][i]}" for i in slots))
    return f"d{''.join(map(str, arch['d']))} " + "|".join(parts)
