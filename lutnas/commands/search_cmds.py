"""``lutnas predictor train|eval`` and ``lutnas search``: parse, call :mod:`search`, render."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from lutnas._common import EXIT_USAGE, device_names, fail, library_errors, parse_floats, show, tell
from lutnas._options import DB, JSON
from lutnas._progress import rich_progress
from lutnas.views import search as view

__all__ = ["predictor_app", "register"]

predictor_app = typer.Typer(help="Accuracy predictors: train on (subnet, accuracy) data, evaluate.",
                            no_args_is_help=True)

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
    json_out: bool = JSON,
) -> None:
    """Train lutnas's accuracy predictor and save it to one file."""
    from search.fitting import train_predictor

    with library_errors("training"):
        report = train_predictor([*(data or []), *(more or [])], out, space=space, seed=seed)
    tell(report)
    show(report, json_out, view.render_train)


@predictor_app.command("eval")
def eval_cmd(
    data: list[Path] | None = _DATA,
    more: list[Path] | None = _MORE,
    predictor: Path | None = typer.Option(None, "--predictor", help="A lutnas predictor file or OFA's "
                                          "acc_predictor.pth (the format is detected)."),
    ofa_weights: Path | None = typer.Option(None, "--ofa-weights", hidden=True),  # old spelling of --predictor
    json_out: bool = JSON,
) -> None:
    """Rank correlation and RMSE of a predictor on accuracy data."""
    from search.fitting import evaluate_predictor

    if predictor is not None and ofa_weights is not None:
        fail("give one --predictor FILE (lutnas's or OFA's format, detected)", EXIT_USAGE)
    if (predictor or ofa_weights) is None:
        fail("give --predictor FILE (lutnas's or OFA's format, detected)", EXIT_USAGE)
    with library_errors("prediction"):
        report = evaluate_predictor(predictor or ofa_weights, [*(data or []), *(more or [])])
    tell(report)
    show(report, json_out, view.render_eval)


# -- search --------------------------------------------------------------------------------------
def _budgets(values: list[str], devices: list[str]) -> dict[str, list[float]]:
    """Per device, its budgets: one --latency-ms per --device, or one for all; each may be a comma list."""
    if len(values) not in (1, len(devices)):
        fail(f"give one --latency-ms per --device ({len(devices)}) or one for all, got {len(values)}", EXIT_USAGE)
    lists = [parse_floats(text, f"--latency-ms expects numbers like 25 or 10,15,20, got {values}") for text in values]
    return dict(zip(devices, lists * len(devices) if len(lists) == 1 else lists))


def _search_cmd(
    ctx: typer.Context,
    db: str = DB,
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
    json_out: bool = JSON,
) -> None:
    """Search for the subnet with the best predicted accuracy under latency budgets."""
    from search import sweep
    from search.budgets import plot_front

    devices = device_names(device, ctx.args)
    if not devices:
        fail("give --device NAME (repeat, or A,B, for several)", EXIT_USAGE)
    budgets = _budgets(latency_ms, devices)
    sweeping = max(len(b) for b in budgets.values()) > 1  # a bar per sweep; one budget needs none
    with library_errors("search"), rich_progress(enabled=sweeping) as progress:
        report = sweep(db, devices, budgets, predictor, precision=precision, space=space,
                       seed=seed, max_macs=max_macs, max_params=max_params, raw=raw,
                       settings=_evolution(generations, population, distinct_parents), progress=progress)
    tell(report)
    if plot is not None and any(r["feasible"] for r in report.results):
        with library_errors("--plot"):
            plot_front(report, plot)
    show(report, json_out, view.render_search, plot)


def _evolution(generations: int | None, population: int | None, distinct_parents: bool) -> Any:
    """EvolutionSettings with the flags given (OFA's defaults otherwise); checked by the search."""
    from search import EvolutionSettings

    given = {"generations": generations, "population_size": population, "distinct_parents": distinct_parents or None}
    return EvolutionSettings(**{k: v for k, v in given.items() if v is not None})


def register(app: typer.Typer) -> None:
    """Add ``predictor train|eval`` and ``search`` to app."""
    app.add_typer(predictor_app, name="predictor")
    app.command("search", context_settings={"allow_extra_args": True})(_search_cmd)
