"""``lutnas demo``: the whole pipeline on this machine, no arguments needed."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import typer

from lutnas._common import EXIT_FAILED, EXIT_USAGE, fail, show
from lutnas._options import JSON
from lutnas._progress import rich_progress
from lutnas.views import demo as view

__all__ = ["register"]


def demo_cmd(
    db: Path = typer.Option(Path("lutnas-demo.db"), "--db", help="LUT store the demo fills (reused on a rerun)."),
    space: str = typer.Option("ofa-mbv3-w1.0", "--space", help="Search space. ofa-mbv3-*: DyNAS-T's accuracies "
                              "(bundled). Other families (ofa-proxyless-w1.3, ofa-resnet50): the demo runs their "
                              "digits-scale space at 16 px and trains its predictor on a digits supernet it trains "
                              "and measures here (it says so first)."),
    precision: str = typer.Option("fp32", "--precision", help="Profile, validate and search at this precision: "
                                  "fp32, fp16 or int8."),
    json_out: bool = JSON,
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
    view.render_plan(plan)
    try:
        with rich_progress(enabled=not json_out) as progress:
            result = run_demo(DemoSettings(db=db, precision=precision, space=space), stage=view.stages(plan),
                              progress=progress)
    except KeyboardInterrupt:
        fail("interrupted; the agent is stopped and the LUT kept (a rerun resumes)", 130)
    except Exception as err:  # noqa: BLE001 - the demo reports any failure on one line; the traceback with -v
        logging.getLogger(__name__).debug("demo failed", exc_info=True)
        fail(f"demo failed: {type(err).__name__}: {err}", EXIT_FAILED)
    show(result, json_out, view.render, precision, time.monotonic() - start)


def register(app: typer.Typer) -> None:
    """Add ``demo``."""
    app.command("demo")(demo_cmd)
