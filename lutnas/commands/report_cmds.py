"""``lutnas report``: one self-contained HTML page for a store; a thin wrapper over :func:`report.build_report`."""

from __future__ import annotations

from pathlib import Path

import typer

from lutnas._common import EXIT_FAILED, EXIT_USAGE, emit_json, err_console, fail, parse_floats, work_failed
from lutnas._options import DB, GENERATIONS
from lutnas._text import literal

__all__ = ["register"]


def _budgets(text: str | None) -> tuple[float, ...]:
    message = f"--budgets must be latencies in ms like 10,15,20, got {text!r}"
    return () if text is None else tuple(parse_floats(text, message))


def report_cmd(
    db: str = DB,
    out: Path = typer.Option(Path("lutnas-report.html"), "--out", help="The HTML file to write."),
    device: list[str] = typer.Option([], "--device", help="Show only these settings (name, selector or id; "
                                     "repeat). Default: every setting of the store."),
    predictor: Path | None = typer.Option(None, "--predictor", help="A lutnas predictor file or OFA's "
                                          "acc_predictor.pth: adds fronts, picks per budget and the cross-device regret."),
    budgets: str | None = typer.Option(None, "--budgets", help="With --predictor: latency budgets in ms for every "
                                       "device's front, e.g. 10,15,20 (default: spread over each device's range)."),
    generations: int | None = GENERATIONS,
    seed: int = typer.Option(0, "--seed", help="Seed of the comparison's subnet draw and of the searches."),
    json_out: bool = typer.Option(False, "--json", help="Print {\"out\": PATH} on stdout."),
) -> None:
    """Write one self-contained HTML page for a store: devices, LUT fidelity, device comparison and, with
    --predictor, what to deploy where. Opens from disk or any static host; nothing is fetched."""
    from lut import LutError
    from report import ReportSettings, build_report
    from search import SearchError

    if predictor is None and (budgets is not None or generations is not None):
        fail("--budgets and --generations go with --predictor P", EXIT_USAGE)
    if predictor is not None and not predictor.is_file():
        fail(f"--predictor file not found: {predictor}", EXIT_USAGE)
    settings = ReportSettings(devices=tuple(device), predictor=predictor, budgets_ms=_budgets(budgets),
                              generations=generations, seed=seed)
    try:
        settings.validate()
    except ValueError as err:
        fail(str(err), EXIT_USAGE)
    with err_console.status("gathering the report") as status, work_failed("report"):
        try:
            path = build_report(db, out, settings, progress=lambda step: status.update(literal("report: ", step)))
        except (LutError, SearchError) as err:  # no such store or device, or a predictor that is not one
            fail(str(err), EXIT_USAGE)
        except ModuleNotFoundError as err:  # plotly missing: the message says what to install
            fail(str(err), EXIT_FAILED)
        except OSError as err:
            fail(f"cannot write {out}: {err.strerror or err}", EXIT_FAILED)
    if json_out:
        emit_json({"out": str(path)})
        return
    err_console.print(literal("report written to ", str(path)))


def register(app: typer.Typer) -> None:
    """Add ``report``."""
    app.command("report")(report_cmd)
