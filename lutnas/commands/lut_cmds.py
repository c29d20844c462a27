"""``lutnas lut list|import|export|predict|rm|copy`` and ``lutnas compare``: parse, call :mod:`lut`, render."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

from lutnas._common import EXIT_USAGE, device_names, fail, library_errors, parse_floats, resolution_option, show, tell
from lutnas._options import DB, GENERATIONS, JSON, SETTING_PRECISION
from lutnas._progress import rich_progress
from lutnas._text import escape_controls
from lutnas.views import compare as compare_view
from lutnas.views import lut as lut_view

__all__ = ["register", "lut_app"]

lut_app = typer.Typer(help="Per-device latency lookup tables: list, import, export, predict, rm (remove), copy.",
                      no_args_is_help=True)

_DEVICE = typer.Option(..., "--device", help="Device name, selector or setting id.")


# -- lut list ------------------------------------------------------------------------------------
@lut_app.command("list")
def list_cmd(db: str = DB, json_out: bool = JSON) -> None:
    """List device settings with their row counts, predicted (few-shot) rows, coverage per space and resolution,
    and calibration."""
    from lut.manage import list_luts

    with library_errors("listing"):
        report = list_luts(db)
    show(report, json_out, lut_view.render_list, db)


# -- lut import ----------------------------------------------------------------------------------
@lut_app.command("import")
def import_cmd(
    files: list[Path] = typer.Argument(..., help="Files to import (one per resolution for OFA yaml)."),
    db: str = DB,
    device: str = typer.Option(..., "--device", help="Device name (or an existing setting's id)."),
    fmt: str | None = typer.Option(None, "--format", help="ofa-yaml | nsganetv2-yaml | csv | parquet (default: detected)."),
    runtime: str | None = typer.Option(None, "--runtime", help="Runtime the table was measured with (default: "
                                       "what a lutnas CSV or Parquet export says, else unknown)."),
    runtime_version: str | None = typer.Option(None, "--runtime-version"),
    threads: int | None = typer.Option(None, "--threads", min=0),
    precision: str | None = typer.Option(None, "--precision"),
    model_format: str | None = typer.Option(None, "--model-format"),
    delegate: str | None = typer.Option(None, "--delegate"),
    json_out: bool = JSON,
) -> None:
    """Import LUT files as one device setting (all rows or, on any error, none); says how many rows were new
    and how many replaced rows already there."""
    from lut.manage import import_luts

    with library_errors("import"):
        report = import_luts(db, files, device, fmt=fmt, runtime=runtime, runtime_version=runtime_version,
                             threads=threads, precision=precision, model_format=model_format, delegate=delegate)
    show(report, json_out, lut_view.render_import)


# -- lut export ----------------------------------------------------------------------------------
@lut_app.command("export")
def export_cmd(
    db: str = DB,
    device: str = _DEVICE,
    fmt: str | None = typer.Option(None, "--format", help="ofa-yaml (a directory) | csv | parquet "
                                   "(default: from --out: .csv, .parquet, else a directory of OFA yaml files)."),
    out: Path = typer.Option(..., "--out", help="Output directory (ofa-yaml) or file."),
    json_out: bool = JSON,
) -> None:
    """Export a device's LUT."""
    from lut.manage import export_lut

    with library_errors("export"):
        report = export_lut(db, device, out, fmt)
    tell(report)
    show(report, json_out, lut_view.render_export)


# -- lut predict ---------------------------------------------------------------------------------
@lut_app.command("predict")
def predict_cmd(
    db: str = DB,
    device: str = typer.Option(..., "--device", help="Device name, selector (cpu:int8) or setting id."),
    precision: str | None = SETTING_PRECISION,
    space: str | None = typer.Option(None, "--space", help="Search space (default: the one the LUT and the "
                                     "net.config fit)."),
    arch: str | None = typer.Option(None, "--arch", help='Subnet as JSON: {"ks": [...], "e": [...], "d": [...], "r": 224}.'),
    net_config: Path | None = typer.Option(None, "--net-config", help="OFA net.config file (or its folder)."),
    resolution: int | None = typer.Option(None, "--resolution", "--resolutions", help="Input resolution for "
                                          "--net-config (default: image_size of the run.config beside it)."),
    raw: bool = typer.Option(False, "--raw", help="Ignore the device's calibration; print the plain LUT sum."),
    json_out: bool = JSON,
) -> None:
    """Predict a subnet's latency on a device from its LUT (calibrated when a calibration exists)."""
    from lut.latency import predict_latency

    with library_errors("prediction"):
        report = predict_latency(db, device, arch=_arch(arch), net_config=net_config, resolution=resolution,
                                 space=space, precision=precision, raw=raw)
    tell(report)
    show(report, json_out, lut_view.render_predict)


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
    db: str = DB,
    device: str = _DEVICE,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    json_out: bool = JSON,
) -> None:
    """Remove a device setting with its rows, failures, validation runs and calibrations."""
    from lut.manage import remove_lut

    with library_errors("removal"):
        report = remove_lut(db, device, confirm=None if yes else _confirm_removal)
    show(report, json_out, lut_view.render_remove)


def _confirm_removal(description: str, n_rows: int) -> bool:
    if not sys.stdin.isatty():
        fail(f"removing {description} ({n_rows} rows) needs --yes when not interactive", EXIT_USAGE)
    return typer.confirm(escape_controls(f"remove {description} and its {n_rows} rows?"), err=True)


# -- lut copy ------------------------------------------------------------------------------------
@lut_app.command("copy")
def copy_cmd(
    src: str = typer.Option(..., "--from", help="Store to copy from (SQLite file or postgresql://...)."),
    dst: str = typer.Option(..., "--to", help="Store to copy into (created when absent or empty)."),
    device: list[str] | None = typer.Option(None, "--device", help="Device name or setting id; repeatable "
                                            "(default: every setting)."),
    replace: bool = typer.Option(False, "--replace", help="Overwrite settings the destination already has."),
    json_out: bool = JSON,
) -> None:
    """Copy device settings (rows, failures, calibrations, validation runs) between stores, all or nothing."""
    from lut.manage import copy_luts

    with library_errors("copy"):
        report = copy_luts(src, dst, device or None, replace=replace)
    show(report, json_out, lut_view.render_copy)


# -- compare -------------------------------------------------------------------------------------
def compare_cmd(
    ctx: typer.Context,
    db: str = DB,
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
    generations: int | None = GENERATIONS,
    json_out: bool = JSON,
) -> None:
    """Compare devices' LUTs: block latency ratios, rank correlations, dominant block kinds; with --predictor,
    the best subnet per device at matched budgets and the cross-device regret."""
    from search import compare

    names = device_names(device, ctx.args)
    with library_errors("comparison"), rich_progress() as progress:
        report = compare(db, names, precision=precision, space=space,
                         resolutions=list(resolution_option(resolutions)) or None, subnets=subnets, seed=seed,
                         plot=plot, predictor=predictor, quantiles=_quantiles(budgets), generations=generations,
                         progress=progress)
    tell(report)
    show(report, json_out, compare_view.render, plot)


def _quantiles(text: str | None) -> list[float] | None:
    return None if text is None else parse_floats(text, f"--budgets expects quantiles like 0.25,0.5,0.75, got {text!r}")


def register(app: typer.Typer) -> None:
    """Add ``lut ...`` and ``compare`` to ``app``."""
    app.add_typer(lut_app, name="lut")
    app.command("compare", context_settings={"allow_extra_args": True})(compare_cmd)
