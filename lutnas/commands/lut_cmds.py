"""``lutnas lut list|import|export|predict|rm|copy`` and ``lutnas compare``: parse, call :mod:`lut`, render."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

from lutnas._common import (
    EXIT_FAILED,
    EXIT_USAGE,
    emit_json,
    err_console,
    fail,
    library_errors,
    note,
    resolution_option,
    split_names,
    warn,
)
from lutnas._progress import rich_progress
from lutnas._tables import summary_table
from lutnas._text import escape_controls, literal

__all__ = ["register", "lut_app"]

lut_app = typer.Typer(help="Per-device latency lookup tables: list, import, export, predict, rm (remove), copy.",
                      no_args_is_help=True)

_DB = typer.Option(..., "--db", help="The LUT store: a SQLite file or postgresql://user@host:port/db.")
_JSON = typer.Option(False, "--json", help="Print one JSON document on stdout.")
_PRECISION = typer.Option(None, "--precision", help="The device's setting at this precision (fp32, fp16, int8); "
                          "same as the selector NAME:PRECISION.")


def _notes(report: Any) -> None:
    for line in getattr(report, "notes", ()):
        note(line)


# -- lut list ------------------------------------------------------------------------------------
@lut_app.command("list")
def list_cmd(db: str = _DB, json_out: bool = _JSON) -> None:
    """List device settings with their row counts, predicted (few-shot) rows, coverage per space and resolution,
    and calibration."""
    from lut.manage import list_luts

    with library_errors("listing"):
        report = list_luts(db)
    if json_out:
        emit_json(report.to_dict())
        return
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


# -- lut import ----------------------------------------------------------------------------------
@lut_app.command("import")
def import_cmd(
    files: list[Path] = typer.Argument(..., help="Files to import (one per resolution for OFA yaml)."),
    db: str = _DB,
    device: str = typer.Option(..., "--device", help="Device name (or an existing setting's id)."),
    fmt: str | None = typer.Option(None, "--format", help="ofa-yaml | nsganetv2-yaml | csv | parquet (default: detected)."),
    runtime: str | None = typer.Option(None, "--runtime", help="Runtime the table was measured with (default: "
                                       "what a lutnas CSV or Parquet export says, else unknown)."),
    runtime_version: str | None = typer.Option(None, "--runtime-version"),
    threads: int | None = typer.Option(None, "--threads", min=0),
    precision: str | None = typer.Option(None, "--precision"),
    model_format: str | None = typer.Option(None, "--model-format"),
    delegate: str | None = typer.Option(None, "--delegate"),
    json_out: bool = _JSON,
) -> None:
    """Import LUT files as one device setting (all rows or, on any error, none); says how many rows were new
    and how many replaced rows already there."""
    from lut.manage import import_luts

    with library_errors("import"):
        report = import_luts(db, files, device, fmt=fmt, runtime=runtime, runtime_version=runtime_version,
                             threads=threads, precision=precision, model_format=model_format, delegate=delegate)
    if json_out:
        emit_json(report.to_dict())
        return
    notes = [f"{report.new_rows} new, {report.rows - report.new_rows} replaced"]
    if report.assumed_rows:
        notes.append(f"{report.assumed_rows} AvgPool2D rows absent in source, assumed 0 ms")
    if report.calibrations:
        notes.append(f"{report.calibrations} calibration(s) from the file")
    err_console.print(literal(f"imported {report.rows} rows ({'; '.join(notes)}) from {len(files)} file(s) into "
                              f"{report.description}"))


# -- lut export ----------------------------------------------------------------------------------
@lut_app.command("export")
def export_cmd(
    db: str = _DB,
    device: str = typer.Option(..., "--device", help="Device name, selector or setting id."),
    fmt: str | None = typer.Option(None, "--format", help="ofa-yaml (a directory) | csv | parquet "
                                   "(default: from --out: .csv, .parquet, else a directory of OFA yaml files)."),
    out: Path = typer.Option(..., "--out", help="Output directory (ofa-yaml) or file."),
    json_out: bool = _JSON,
) -> None:
    """Export a device's LUT."""
    from lut.manage import export_lut

    with library_errors("export"):
        report = export_lut(db, device, out, fmt)
    _notes(report)
    if json_out:
        emit_json(report.to_dict())
        return
    err_console.print(literal(f"wrote {len(report.files)} file(s) for {report.description} to {out}"))


# -- lut predict ---------------------------------------------------------------------------------
@lut_app.command("predict")
def predict_cmd(
    db: str = _DB,
    device: str = typer.Option(..., "--device", help="Device name, selector (cpu:int8) or setting id."),
    precision: str | None = _PRECISION,
    space: str | None = typer.Option(None, "--space", help="Search space (default: the one the LUT and the "
                                     "net.config fit)."),
    arch: str | None = typer.Option(None, "--arch", help='Subnet as JSON: {"ks": [...], "e": [...], "d": [...], "r": 224}.'),
    net_config: Path | None = typer.Option(None, "--net-config", help="OFA net.config file (or its folder)."),
    resolution: int | None = typer.Option(None, "--resolution", "--resolutions", help="Input resolution for "
                                          "--net-config (default: image_size of the run.config beside it)."),
    raw: bool = typer.Option(False, "--raw", help="Ignore the device's calibration; print the plain LUT sum."),
    json_out: bool = _JSON,
) -> None:
    """Predict a subnet's latency on a device from its LUT (calibrated when a calibration exists)."""
    from lut.latency import predict_latency

    with library_errors("prediction"):
        report = predict_latency(db, device, arch=_arch(arch), net_config=net_config, resolution=resolution,
                                 space=space, precision=precision, raw=raw)
    _notes(report)
    if json_out:
        emit_json(report.to_dict())
        return
    how = f"calibrated ({report.calibration}; raw LUT sum {report.raw_ms:.3f} ms)" if report.calibrated \
        else "raw LUT sum"
    err_console.print(literal(f"{report.device} ({report.space}): {report.latency_ms:.3f} ms, {how}"))


def _arch(text: str | None) -> Any:
    """``--arch`` JSON, its nesting bounded (one line, not a RecursionError)."""
    from space.bounds import loads_json

    if text is None:
        return None
    try:
        return loads_json(text)
    except json.JSONDecodeError as err:
        fail(f"--arch is not JSON ({err.msg} at column {err.colno})", EXIT_USAGE)


# -- lut rm --------------------------------------------------------------------------------------
@lut_app.command("rm")
def rm_cmd(
    db: str = _DB,
    device: str = typer.Option(..., "--device", help="Device name, selector or setting id."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    json_out: bool = _JSON,
) -> None:
    """Remove a device setting with its rows, failures, validation runs and calibrations."""
    from lut.manage import remove_lut

    if not yes:
        _confirm_removal(db, device)
    with library_errors("removal"):
        report = remove_lut(db, device)
    if json_out:
        emit_json(report.to_dict())
        return
    err_console.print(literal(f"removed {report.description} ({report.removed_rows} rows)"))


def _confirm_removal(db: str, device: str) -> None:
    from lut import LutStore

    with library_errors("removal"), LutStore(db, create=False) as store:
        stored = store.setting(device)
        n_rows = len(store.keys(stored.id))
    if not sys.stdin.isatty():
        fail(f"removing {stored.describe()} ({n_rows} rows) needs --yes when not interactive", EXIT_USAGE)
    if not typer.confirm(escape_controls(f"remove {stored.describe()} and its {n_rows} rows?"), err=True):
        fail("nothing removed", EXIT_FAILED)


# -- lut copy ------------------------------------------------------------------------------------
@lut_app.command("copy")
def copy_cmd(
    src: str = typer.Option(..., "--from", help="Store to copy from (SQLite file or postgresql://...)."),
    dst: str = typer.Option(..., "--to", help="Store to copy into (created when absent or empty)."),
    device: list[str] | None = typer.Option(None, "--device", help="Device name or setting id; repeatable "
                                            "(default: every setting)."),
    replace: bool = typer.Option(False, "--replace", help="Overwrite settings the destination already has."),
    json_out: bool = _JSON,
) -> None:
    """Copy device settings (rows, failures, calibrations, validation runs) between stores, all or nothing."""
    from lut.manage import copy_luts

    with library_errors("copy"):
        report = copy_luts(src, dst, device or None, replace=replace)
    if json_out:
        emit_json(report.to_dict())
        return
    for item, what in zip(report.copied, report.descriptions):
        err_console.print(literal(f"copied {what} ({item['rows']} rows) to {report.dest} as #{item['to_id']}"))


# -- compare -------------------------------------------------------------------------------------
def compare_cmd(
    ctx: typer.Context,
    db: str = _DB,
    device: list[str] = typer.Option([], "--device", "--devices", help="A device to compare (name, selector like "
                                     "cpu:int8, or id); repeat (or A,B): two or more. One device with --precision "
                                     "A,B compares two precisions of it."),
    precision: str | None = typer.Option(None, "--precision", help="Every device's setting at this precision; "
                                         "or two precisions (fp32,int8) of one device: speedups by kind, stage "
                                         "and resolution, and the blocks that get slower."),
    space: str | None = typer.Option(None, "--space", help="Search space (default: the one every LUT (and the "
                                     "predictor) fits)."),
    resolutions: list[str] = typer.Option([], "--resolutions", "--resolution",
                                          help="Resolutions to compare at (a list or range; default: all common)."),
    subnets: int = typer.Option(10_000, "--subnets", min=2, help="Random subnets to rank."),
    seed: int = typer.Option(0, "--seed", help="Seed of the subnet draw (and of the searches with --predictor)."),
    plot: Path | None = typer.Option(None, "--plot", help="Write a PNG: latency scatter and per-stage ratio heat map."),
    predictor: Path | None = typer.Option(None, "--predictor", help="A lutnas predictor file or OFA's acc_predictor.pth: "
                                          "also search the best subnet per device at matched budgets and report "
                                          "the cross-device regret."),
    budgets: str | None = typer.Option(None, "--budgets", help="With --predictor: budget quantiles of each device's "
                                       "achievable latency range, e.g. 0.25,0.5,0.75 (the default)."),
    generations: int | None = typer.Option(None, "--generations", min=0,
                                           help="With --predictor: generations per search (default OFA's 500)."),
    json_out: bool = _JSON,
) -> None:
    """Compare devices' LUTs: block latency ratios, rank correlations, dominant block kinds; with --predictor,
    the best subnet per device at matched budgets and the cross-device regret."""
    from search import compare

    bad = [a for a in ctx.args if a.startswith("-")]
    if bad:
        fail(f"unknown option(s) {bad}", EXIT_USAGE)
    with library_errors("comparison"), rich_progress() as progress:
        report = compare(db, split_names([*device, *ctx.args]), precision=precision, space=space,
                         resolutions=list(resolution_option(resolutions)) or None, subnets=subnets, seed=seed,
                         plot=plot, predictor=predictor, quantiles=_quantiles(budgets), generations=generations,
                         progress=progress)
    _notes(report)
    if report.extrapolation is not None:
        warn(report.extrapolation["warning"])
    if json_out:
        emit_json(report.to_dict())
        return
    from lutnas.commands._compare_view import print_comparison, print_regret

    print_comparison(report.comparison, plot)
    if report.regret is not None:
        print_regret(report.regret)


def _quantiles(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        fail(f"--budgets expects quantiles like 0.25,0.5,0.75, got {text!r}", EXIT_USAGE)


def register(app: typer.Typer) -> None:
    """Add ``lut ...`` and ``compare`` to ``app``."""
    app.add_typer(lut_app, name="lut")
    app.command("compare", context_settings={"allow_extra_args": True})(compare_cmd)
