"""``lutnas predictor train|eval`` and ``lutnas search``: thin wrappers over :mod:`search`."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from lutnas._common import (
    EXIT_FAILED,
    EXIT_USAGE,
    emit_json,
    err_console,
    fail,
    find_setting,
    positive_number,
    predicted_note,
    warn,
    work_failed,
)
from lutnas._text import literal

__all__ = ["predictor_app", "register"]

logger = logging.getLogger(__name__)

predictor_app = typer.Typer(help="Accuracy predictors: train on (subnet, accuracy) data, evaluate.",
                            no_args_is_help=True)

_JSON = typer.Option(False, "--json", help="Print one JSON document on stdout.")
# Below this many training subnets a predictor is flagged: on DyNAS-T's data, 30 subnets fit themselves exactly
# (train Kendall 1.000, RMSE 0.000%) but rank 361 held-out ones at Kendall 0.43; 362 reach above 0.6.
_FEW_POINTS = 100
_DATA = typer.Option(None, "--data", help="Accuracy CSV (DyNAS-T or arch,accuracy); repeat, or list files after it.")
_MORE = typer.Argument(None, help="More data files (a shell glob after --data lands here).", show_default=False)


def _data_paths(data: list[Path] | None, more: list[Path] | None) -> list[Path]:
    paths = [*(data or []), *(more or [])]
    if not paths:
        fail("give at least one --data FILE", EXIT_USAGE)
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        fail(f"--data file not found: {', '.join(missing)}", EXIT_USAGE)
    return paths


def _load_data(paths: list[Path]) -> Any:
    from search import DataFormatError, load_accuracy_data

    try:
        return load_accuracy_data(paths)
    except DataFormatError as err:
        fail(str(err), EXIT_USAGE)


# -- predictor train -----------------------------------------------------------------------------
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
    from search import LutnasPredictor, infer_space
    from space import DEFAULT_SPACE, get_space

    accuracy = _load_data(_data_paths(data, more))
    inferred = infer_space(accuracy)
    try:
        given = None if space is None else get_space(space).name
    except ValueError as err:
        fail(str(err), EXIT_USAGE)
    if given is not None and accuracy.space is not None and given != accuracy.space:
        fail(f"--space {given} does not fit the data: its space column says {accuracy.space} "
             f"({_space_words(accuracy.space)}); drop --space", EXIT_USAGE)
    if given is None:
        space = inferred or DEFAULT_SPACE
        how = ("the data's space column" if accuracy.space else "inferred from the data's MACs") if inferred \
            else "default; pass --space to change"
        logger.info("space %s (%s)", space, how)
        if not json_out:
            err_console.print(literal(f"space: {space} ({how})"))
    try:
        space = get_space(space).name
        _warn_foreign_resolutions(accuracy.resolutions, space)
        pred = LutnasPredictor(space=space, random_state=seed).fit_data(accuracy)
    except ValueError as err:
        fail(str(err), EXIT_USAGE)
    try:
        pred.save(out)
    except OSError as err:
        fail(f"cannot write {out}: {err.strerror or err}", EXIT_FAILED)
    meta = pred.metadata()
    if meta["n_train"] < _FEW_POINTS:
        warn(f"fit on only {meta['n_train']} subnets: its train metrics are measured on those same subnets and say "
             "little; check it on other data with 'lutnas predictor eval' (a few hundred subnets or more make a "
             "useful predictor)")
    doc = {"out": str(out), "space": meta["space"], "n": meta["n_train"], "resolutions": meta["resolutions"],
           "train_metrics": meta["train_metrics"], "fit_seconds": meta["fit_seconds"],
           "data_fingerprint": meta["data_fingerprint"]}
    if json_out:
        emit_json(doc)
        return
    m = meta["train_metrics"]
    err_console.print(literal(f"trained on {meta['n_train']} subnets in {meta['fit_seconds']:.2f} s "
                              f"(train Kendall {m['kendall']:.3f}, RMSE {m['rmse']:.3f}%); saved {out}"))


def _warn_foreign_resolutions(resolutions: tuple[int, ...], name: str) -> None:
    """Data at sides the space never samples (digits data under the default space, say) is likely the wrong space."""
    from space import describe_resolutions, get_space

    space = get_space(name)
    if not set(resolutions) <= set(space.resolutions):
        warn(f"the data's resolutions {describe_resolutions(resolutions)} are not among {name}'s "
             f"({describe_resolutions(space.resolutions)}); if the data is of another space, pass --space")


def _space_words(name: str) -> str:
    """``width 0.25, r=12, 16`` for messages."""
    from space import describe_resolutions, get_space

    space = get_space(name)
    return f"width {space.width_mult:g}, r={describe_resolutions(space.resolutions)}"


# -- predictor eval ------------------------------------------------------------------------------
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
    from search import infer_space, prediction_metrics

    if predictor is not None and ofa_weights is not None:
        fail("give one --predictor FILE (lutnas's or OFA's format, detected)", EXIT_USAGE)
    predictor = predictor or ofa_weights
    if predictor is None:
        fail("give --predictor FILE (lutnas's or OFA's format, detected)", EXIT_USAGE)
    accuracy = _load_data(_data_paths(data, more))
    with _input_errors():
        pred = _load_any(predictor)
        data_space = infer_space(accuracy)
    if data_space is not None and data_space != pred.space_name:
        warn(f"the data looks like {data_space} but the predictor is for {pred.space_name}")
    with work_failed("prediction"):
        metrics = prediction_metrics(pred.predict_batch(accuracy.to_batch()), accuracy.accuracy_pct)
    if json_out:
        emit_json(metrics)
        return
    table = Table(title=literal(f"{predictor} on {len(accuracy)} subnets"))
    for col in ("kendall", "spearman", "rmse (%)", "n"):
        table.add_column(col, justify="right")
    table.add_row(f"{metrics['kendall']:.4f}", f"{metrics['spearman']:.4f}", f"{metrics['rmse']:.3f}",
                  str(metrics["n"]))
    err_console.print(table)


def _load_any(path: Path | None, space: str | None = None) -> Any:
    from search import load_predictor

    if path is None:
        fail("--predictor is required", EXIT_USAGE)
    return load_predictor(path, space=space)


@contextmanager
def _input_errors() -> Iterator[None]:
    """Around calls that check what the user gave (flags, files, their fit): their errors exit 2, bad input.

    Only those calls: an error from inside the work itself is not bad usage (see :func:`_work_errors`).
    """
    from search import SearchError

    try:
        yield
    except (FileNotFoundError, SearchError, ValueError) as err:
        fail(str(err), EXIT_USAGE)


# -- search --------------------------------------------------------------------------------------
def _parse_budgets(values: list[str], devices: list[str]) -> list[list[float]]:
    """Per device, the list of budgets (ms); one --latency-ms applies to every device."""
    if len(values) not in (1, len(devices)):
        fail(f"give one --latency-ms per --device ({len(devices)}) or one for all, got {len(values)}", EXIT_USAGE)
    lists = []
    for text in values:
        try:
            budgets = [float(v) for v in text.split(",") if v.strip()]
        except ValueError:
            fail(f"--latency-ms expects numbers like 25 or 10,15,20, got {text!r}", EXIT_USAGE)
        if not budgets:
            fail(f"--latency-ms expects numbers like 25 or 10,15,20, got {text!r}", EXIT_USAGE)
        for b in budgets:
            positive_number(b, "--latency-ms")
        lists.append(budgets)
    if len(lists) == 1:
        lists = lists * len(devices)
    lengths = {len(b) for b in lists}
    if len(lengths - {1}) > 1:
        fail(f"every --latency-ms sweep must have the same number of budgets, got {sorted(lengths)}", EXIT_USAGE)
    n = max(lengths)
    return [b * n if len(b) == 1 else b for b in lists]


def _search_cmd(
    db: str = typer.Option(..., "--db", help="The LUT store: a SQLite file or postgresql://user@host:port/db."),
    device: list[str] = typer.Option(..., "--device", help="Device name, selector (cpu:int8) or setting id; repeat "
                                     "for several."),
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
    import dataclasses

    from search import (
        EvolutionSettings,
        SearchError,
        independent_sweep,
        latency_constraint,
        macs_constraint,
        params_constraint,
    )
    from lut.selectors import with_precision

    device = [str(with_precision(d, precision)) for d in device]
    if len(set(device)) != len(device):
        fail(f"each --device may appear once, got {device}", EXIT_USAGE)
    budgets = _parse_budgets(latency_ms, device)
    for value, flag in ((max_macs, "--max-macs"), (max_params, "--max-params")):
        if value is not None:
            positive_number(value, flag)
    settings = EvolutionSettings()
    if generations is not None:
        settings = dataclasses.replace(settings, generations=generations)
    if population is not None:
        settings = dataclasses.replace(settings, population_size=population)
    if distinct_parents:
        settings = dataclasses.replace(settings, distinct_parents=True)
    with _input_errors():
        settings.validate()
        pred = _load_any(predictor)
    space_name, tables, few_shot = _compiled_tables(db, device, space, pred, predictor, calibrated=not raw)
    with _input_errors():
        extra = []
        if max_macs is not None:
            extra.append(macs_constraint(space_name, max_macs))
        if max_params is not None:
            extra.append(params_constraint(space_name, max_params))
        n_points = len(budgets[0])
        points = [[latency_constraint(dev, tables[dev], budgets[j][i]) for j, dev in enumerate(device)]
                  for i in range(n_points)]
        points.sort(key=lambda cons: [c.limit for c in cons])
    # The sweep returns a budget no subnet meets as that point's outcome (reported below), so what it raises
    # is a failure of the search itself, not of the input.
    with work_failed("search"):
        # Every budget is searched as if alone with --seed: its answer does not depend on the others.
        outcomes = independent_sweep(space_name, points, pred, settings, seed, extra_constraints=extra)
    infeasible = [o for o in outcomes if isinstance(o, SearchError)]
    if len(infeasible) == len(outcomes):
        fail("; ".join(dict.fromkeys(str(e) for e in infeasible)), EXIT_USAGE)
    results = [o for o in outcomes if not isinstance(o, SearchError)]
    if plot is not None:
        _plot_front(results, device[0], plot)
    # Say which latency model priced each device: the calibrated LUT or its plain sums.
    latency_model = {dev: _latency_model(tables[dev]) for dev in device}
    rows = [_result_row(o, cons, tables, settings, pred, space_name) for o, cons in zip(outcomes, points)]
    # Say which accuracy the predictor models: top-1 measured at fp32, or at int8 (supernet collect --precision).
    accuracy_model = f"top-1 at {getattr(pred, 'accuracy_precision_', 'fp32')} (the predictor's training data)"
    if json_out:
        emit_json({"space": space_name, "devices": list(device), "latency_model": latency_model,
                   "accuracy_model": accuracy_model, "seed": seed, "few_shot": few_shot, "results": rows})
        return
    _print_results(rows, device)
    for dev, how in latency_model.items():
        err_console.print(literal(f"{dev} latency: {how}"))
    err_console.print(literal(f"accuracy: {accuracy_model}"))
    if plot is not None:
        err_console.print(literal(f"front drawn to {plot}"))


def _result_row(outcome: Any, constraints: list[Any], tables: dict[str, Any], settings: Any, pred: Any,
                space_name: str) -> dict[str, Any]:
    """One budget's JSON row: the search result, or why no subnet fits with each device's achievable range."""
    from search import SearchError, search_resolutions

    if not isinstance(outcome, SearchError):
        return {"feasible": True, **outcome.to_dict()}
    res = search_resolutions(space_name, constraints, pred, settings.resolutions)
    achievable = {c.name: [round(v, 4) for v in tables[c.name].value_range(res)] for c in constraints}
    return {"feasible": False, "limits": {c.name: c.limit for c in constraints}, "reason": str(outcome),
            "achievable_ms": achievable}


def _latency_model(compiled: Any) -> str:
    cal = getattr(compiled, "calibration", None)
    return "raw LUT sum (no calibration)" if cal is None else f"calibrated LUT ({cal.describe()})"


def _compiled_tables(db: str, devices: list[str], space: str | None, pred: Any, pred_path: Path,
                     calibrated: bool) -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
    """The space every LUT and the predictor fit (``space`` when given), each device's compiled LUT, and
    the few-shot status of those whose LUT has predicted rows (a note for each is printed on stderr)."""
    from lut import CompiledLut, LutError, LutStore

    from lutnas._spaces import predictor_source, store_space

    try:
        with LutStore(db, create=False) as store:
            stored = {dev: find_setting(store, dev) for dev in devices}
            space_name = store_space(store, stored, [predictor_source(str(pred_path), pred)], space)
            tables = {dev: CompiledLut.from_store(store, s, space_name, calibrated=calibrated) for dev, s in stored.items()}
            few_shot = [note for s in stored.values() if (note := predicted_note(store, s)) is not None]
            return space_name, tables, few_shot
    except (LutError, ValueError) as err:
        fail(str(err), EXIT_USAGE)


def _print_results(rows: list[dict[str, Any]], devices: list[str]) -> None:
    import json

    table = Table(title="search results")
    for dev in devices:
        table.add_column(literal(f"{dev} budget (ms)"), justify="right", overflow="fold")  # the device whole
        table.add_column(literal(f"{dev} latency (ms)"), justify="right", overflow="fold")
    extra = sorted({k for r in rows for k in r.get("costs", {})})
    for name in extra:
        table.add_column(name, justify="right")
    for col in ("predicted top-1 (%)", "r", "search (s)"):
        table.add_column(col, justify="right")
    for r in rows:
        row = []
        for dev in devices:
            if r["feasible"]:
                row += [f"{r['limits'][dev]:g}", f"{r['latency_ms'][dev]:.2f}"]
            else:
                lo, hi = r["achievable_ms"][dev]
                what = "not binding" if r["limits"][dev] >= hi else "infeasible"
                row += [f"{r['limits'][dev]:g}", literal((what, "red"), f": achievable {lo:.1f}..{hi:.1f} ms")]
        if r["feasible"]:
            row += [f"{r['costs'][name]:.4g}" for name in extra]
            row += [f"{r['predicted_accuracy']:.2f}", str(r["arch"]["r"]), f"{r['search_seconds']:.2f}"]
        else:
            row += ["-"] * (len(extra) + 3)
        table.add_row(*row)
    err_console.print(table)
    for r in rows:
        budget = ", ".join(f"{dev} <= {r['limits'][dev]:g} ms" for dev in devices)
        detail = json.dumps(r["arch"]) if r["feasible"] else r["reason"]
        err_console.print(literal((budget, "bold"), ": ", detail), soft_wrap=True)  # a reason may quote a name


def _plot_front(results: list[Any], device: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from search import pareto_front

    lat = [r.latency_ms[device] for r in results]
    acc = [r.predicted_accuracy for r in results]
    front = pareto_front(results, device)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter(lat, acc, color="tab:blue", label="best subnet per budget")
    ax.plot([lat[i] for i in front], [acc[i] for i in front], color="tab:orange", label="front")
    for r in results:
        ax.axvline(r.limits[device], color="grey", linewidth=0.5, linestyle=":")
    ax.set_xlabel(f"LUT latency on {device} (ms)")
    ax.set_ylabel("predicted top-1 (%)")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=120)
    except OSError as err:
        fail(f"cannot write --plot {path}: {err.strerror or err}", EXIT_FAILED)
    finally:
        plt.close(fig)


def register(app: typer.Typer) -> None:
    """Add ``predictor train|eval`` and ``search`` to app."""
    app.add_typer(predictor_app, name="predictor")
    app.command("search")(_search_cmd)
