"""``lutnas predictor train|eval`` and ``lutnas search``: parse, call :mod:`search`, render."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from lutnas._common import EXIT_USAGE, emit_json, err_console, fail, library_errors, note, split_names, warn
from lutnas._progress import rich_progress
from lutnas._tables import summary_table
from lutnas._text import literal

__all__ = ["predictor_app", "register"]

predictor_app = typer.Typer(help="Accuracy predictors: train on (subnet, accuracy) data, evaluate.",
                            no_args_is_help=True)

_JSON = typer.Option(False, "--json", help="Print one JSON document on stdout.")
_DATA = typer.Option(None, "--data", help="Accuracy CSV (DyNAS-T or arch,accuracy); repeat, or list files after it.")
_MORE = typer.Argument(None, help="More data files (a shell glob after --data lands here).", show_default=False)


# -- predictor train / eval ----------------------------------------------------------------------
@predictor_app.command("train")
def train_cmd(
    data: list[Path] | None = _DATA,
    more: list[Path] | None = _MORE,
    out: Path = typer.Option(..., "--out", help="Where to write the predictor (one file, e.g. pred.pt)."),
    space: str | None = typer.Option(None, "--space", help="Search space of the data (default: the data's space "
                                     "column, else inferred from its MACs, else ofa-mbv3-w1.2)."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    json_out: bool = _JSON,
) -> None:
    """Train lutnas's accuracy predictor and save it to one file."""
    from search.fitting import train_predictor

    with library_errors("training"):
        report = train_predictor([*(data or []), *(more or [])], out, space=space, seed=seed)
    for line in report.warnings:
        warn(line)
    if json_out:
        emit_json(report.to_dict())
        return
    if report.space_note != "given":
        err_console.print(literal(f"space: {report.space} ({report.space_note})"))
    m = report.train_metrics
    err_console.print(literal(f"trained on {report.n} subnets in {report.fit_seconds:.2f} s (train Kendall "
                              f"{m['kendall']:.3f}, RMSE {m['rmse']:.3f}%); saved {report.out}"))


@predictor_app.command("eval")
def eval_cmd(
    data: list[Path] | None = _DATA,
    more: list[Path] | None = _MORE,
    predictor: Path | None = typer.Option(None, "--predictor", help="A lutnas predictor file or OFA's "
                                          "acc_predictor.pth (the format is detected)."),
    ofa_weights: Path | None = typer.Option(None, "--ofa-weights", hidden=True),  # old spelling of --predictor
    json_out: bool = _JSON,
) -> None:
    """Rank correlation and RMSE of a predictor on accuracy data."""
    from search.fitting import evaluate_predictor

    if predictor is not None and ofa_weights is not None:
        fail("give one --predictor FILE (lutnas's or OFA's format, detected)", EXIT_USAGE)
    if (predictor or ofa_weights) is None:
        fail("give --predictor FILE (lutnas's or OFA's format, detected)", EXIT_USAGE)
    with library_errors("prediction"):
        report = evaluate_predictor(predictor or ofa_weights, [*(data or []), *(more or [])])
    for line in report.warnings:
        warn(line)
    if json_out:
        emit_json(report.to_dict())
        return
    table = summary_table(f"{report.predictor} on {report.n} subnets", ("kendall", "spearman", "rmse (%)", "n"),
                          right=("kendall", "spearman", "rmse (%)", "n"))
    table.add_row(f"{report.kendall:.4f}", f"{report.spearman:.4f}", f"{report.rmse:.3f}", str(report.n))
    err_console.print(table)


# -- search --------------------------------------------------------------------------------------
def _budgets(values: list[str], devices: list[str]) -> dict[str, list[float]]:
    """Per device, its budgets: one --latency-ms per --device, or one for all; each may be a comma list."""
    if len(values) not in (1, len(devices)):
        fail(f"give one --latency-ms per --device ({len(devices)}) or one for all, got {len(values)}", EXIT_USAGE)
    try:
        lists = [[float(v) for v in text.split(",") if v.strip()] for text in values]
    except ValueError:
        fail(f"--latency-ms expects numbers like 25 or 10,15,20, got {values}", EXIT_USAGE)
    if not all(lists):
        fail(f"--latency-ms expects numbers like 25 or 10,15,20, got {values}", EXIT_USAGE)
    return dict(zip(devices, lists * len(devices) if len(lists) == 1 else lists))


def _search_cmd(
    ctx: typer.Context,
    db: str = typer.Option(..., "--db", help="The LUT store: a SQLite file or postgresql://user@host:port/db."),
    device: list[str] = typer.Option([], "--device", "--devices", help="Device name, selector (cpu:int8) or setting "
                                     "id; repeat (or A,B) for several."),
    precision: str | None = typer.Option(None, "--precision", help="Price every --device at this precision's "
                                         "setting (fp32, fp16, int8): a budget for the int8 LUT, say."),
    latency_ms: list[str] = typer.Option(..., "--latency-ms", help="Budget in ms, one per --device (or one for all); "
                                         "a comma list (10,15,20) sweeps budgets."),
    predictor: Path = typer.Option(..., "--predictor", help="A lutnas predictor file or OFA's acc_predictor.pth."),
    space: str | None = typer.Option(None, "--space", help="Search space (default: the one the LUTs and the "
                                     "predictor fit)."),
    seed: int = typer.Option(0, "--seed", help="Random seed (each budget's search starts from it)."),
    max_macs: float | None = typer.Option(None, "--max-macs", help="Also bound MACs (multiply-adds)."),
    max_params: float | None = typer.Option(None, "--max-params", help="Also bound the parameter count."),
    generations: int | None = typer.Option(None, "--generations", help="Generations (default OFA's 500)."),
    population: int | None = typer.Option(None, "--population", help="Population size (default OFA's 100)."),
    distinct_parents: bool = typer.Option(
        False, "--distinct-parents",
        help="Keep distinct networks as parents (OFA lets copies of the best crowd in): ~0.2 points better "
             "predicted top-1 for ~25% more time."),
    plot: Path | None = typer.Option(None, "--plot", help="Draw the accuracy/latency front to this image file."),
    raw: bool = typer.Option(False, "--raw", help="Use the plain LUT sums, ignoring device calibrations."),
    json_out: bool = _JSON,
) -> None:
    """Search for the subnet with the best predicted accuracy under latency budgets."""
    from search import sweep
    from search.budgets import plot_front

    bad = [a for a in ctx.args if a.startswith("-")]
    if bad:
        fail(f"unknown option(s) {bad}", EXIT_USAGE)
    devices = split_names([*device, *ctx.args])  # the old spelling --devices A B leaves B here, as in compare
    if not devices:
        fail("give --device NAME (repeat, or A,B, for several)", EXIT_USAGE)
    budgets = _budgets(latency_ms, devices)
    sweeping = max(len(b) for b in budgets.values()) > 1  # a bar per sweep; one budget needs none
    with library_errors("search"), rich_progress(enabled=sweeping) as progress:
        report = sweep(db, devices, budgets, predictor, precision=precision, space=space,
                       seed=seed, max_macs=max_macs, max_params=max_params, raw=raw,
                       settings=_evolution(generations, population, distinct_parents), progress=progress)
    for line in report.notes:
        note(line)
    if report.extrapolation is not None:
        warn(report.extrapolation["warning"])
    if plot is not None and any(r["feasible"] for r in report.results):
        with library_errors("--plot"):
            plot_front(report, plot)
    if json_out:
        emit_json(report.to_dict())
        return
    _print_results(report)
    if plot is not None:
        err_console.print(literal(f"front drawn to {plot}"))


def _evolution(generations: int | None, population: int | None, distinct_parents: bool) -> Any:
    """EvolutionSettings with the flags given (OFA's defaults otherwise); checked by the search."""
    from search import EvolutionSettings

    given = {"generations": generations, "population_size": population, "distinct_parents": distinct_parents or None}
    return EvolutionSettings(**{k: v for k, v in given.items() if v is not None})


def _print_results(report: Any) -> None:
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


def register(app: typer.Typer) -> None:
    """Add ``predictor train|eval`` and ``search`` to app."""
    app.add_typer(predictor_app, name="predictor")
    app.command("search", context_settings={"allow_extra_args": True})(_search_cmd)
