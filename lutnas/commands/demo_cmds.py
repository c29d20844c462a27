"""``lutnas demo``: the whole pipeline on this machine, no arguments needed."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from lutnas._common import EXIT_FAILED, EXIT_USAGE, emit_json, err_console, fail
from lutnas._progress import rich_progress
from lutnas._text import literal

__all__ = ["register"]

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


def demo_cmd(
    db: Path = typer.Option(Path("lutnas-demo.db"), "--db", help="LUT store the demo fills (reused on a rerun)."),
    space: str = typer.Option("ofa-mbv3-w1.0", "--space", help="Search space. ofa-mbv3-*: DyNAS-T's accuracies "
                              "(bundled). Other families (ofa-proxyless-w1.3, ofa-resnet50): the demo runs their "
                              "digits-scale space at 16 px and trains its predictor on a digits supernet it trains "
                              "and measures here (it says so first)."),
    precision: str = typer.Option("fp32", "--precision", help="Profile, validate and search at this precision: "
                                  "fp32, fp16 or int8."),
    json_out: bool = typer.Option(False, "--json", help="Print the final table as JSON on stdout."),
) -> None:
    """Run the whole pipeline here: agent, profile, validate, predictor, search, end-to-end timing."""
    from lutnas.demo import DemoSettings, demo_plan, run_demo
    from profiler.quantize import check_precision

    start = time.monotonic()
    try:
        check_precision(precision)
        plan = demo_plan(space)
    except ValueError as err:
        fail(str(err), EXIT_USAGE)
    for note in plan.notes:
        err_console.print(literal(("note: ", "yellow"), note))
    titles = _stage_titles(plan)

    @contextlib.contextmanager
    def stage(name: str) -> Iterator[None]:
        with _stage(titles[name], name):
            yield

    try:
        with rich_progress(enabled=not json_out) as progress:
            result = run_demo(DemoSettings(db=db, precision=precision, space=space), stage=stage, progress=progress)
    except KeyboardInterrupt:
        fail("interrupted; the agent is stopped and the LUT kept (a rerun resumes)", 130)
    except Exception as err:  # noqa: BLE001 - the demo reports any failure on one line; the traceback with -v
        logging.getLogger(__name__).debug("demo failed", exc_info=True)
        fail(f"demo failed: {type(err).__name__}: {err}", EXIT_FAILED)
    if json_out:
        emit_json(result.to_dict())
    else:
        _render(result, precision, time.monotonic() - start)


@contextlib.contextmanager
def _stage(title: str, name: str) -> Iterator[None]:
    """A step's title before it and its time after it, on stderr."""
    t0 = time.monotonic()
    err_console.rule(title, style="cyan")
    yield
    err_console.print(f"[green]done[/] {name} in {time.monotonic() - t0:.1f} s")


def _render(result: Any, precision: str, elapsed_s: float) -> None:
    """The fidelity and predictor lines and the table of found subnets, on stderr."""
    for line in result.describe():
        if result.plan is not None and line in result.plan.notes:
            continue  # said before the demo started
        err_console.print(line)
    plan = result.plan
    where = f"{plan.space}, {plan.resolution} px" if plan else "ofa-mbv3-w1.0, 224 px"
    table = Table(title=f"best subnets on this machine ({where}, {precision}) — {elapsed_s:.0f} s")
    for col in ("budget ms", "subnet (depths, kernel·expand per block; ResNet: depths, widths)", "pred. top-1 %", "LUT ms", "measured ms"):
        table.add_column(col, justify="left" if col.startswith("subnet") else "right")
    for row in result.rows:
        table.add_row(f"{row.budget_ms:.2f}", _arch_summary(row.arch), f"{row.predicted_accuracy:.2f}",
                      f"{row.lut_ms:.2f}", f"{row.measured_ms:.2f}")
    err_console.print(table)
    for row in result.rows:
        err_console.print(literal((f"{row.budget_ms:.2f} ms:", "dim"), f" {row.arch}"))
    if result.report is not None:
        err_console.print(literal("report: ", result.report))


def register(app: typer.Typer) -> None:
    """Add ``demo``."""
    app.command("demo")(demo_cmd)
