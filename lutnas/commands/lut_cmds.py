"""``lutnas lut list|import|export|predict|rm|copy`` and ``lutnas compare``: thin wrappers over :mod:`lut`."""

from __future__ import annotations

import json
import sys
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
    predicted_note,
    resolution_option,
    setting_doc,
    warn,
    work_failed,
)
from lutnas._text import escape_controls, literal

__all__ = ["register", "lut_app"]

lut_app = typer.Typer(help="Per-device latency lookup tables: list, import, export, predict, remove, copy.",
                      no_args_is_help=True)

_DB = typer.Option(..., "--db", help="The LUT store: a SQLite file or postgresql://user@host:port/db.")
_JSON = typer.Option(False, "--json", help="Print one JSON document on stdout.")
_PRECISION = typer.Option(None, "--precision", help="The device's setting at this precision (fp32, fp16, int8); "
                          "same as the selector NAME:PRECISION.")


@contextmanager
def _store(db: str, *, create: bool = False) -> Iterator[Any]:
    """Open the store, turning lut errors into one-line CLI failures (2: bad input, 1: the work failed).

    Only commands that write pass ``create``: a read never leaves a new store behind.
    """
    from lut import LutError, LutStore, MissingBlocksError

    try:
        with LutStore(db, create=create) as store:
            yield store
    except MissingBlocksError as err:
        fail(str(err), EXIT_FAILED)
    except (LutError, ValueError) as err:
        fail(str(err), EXIT_USAGE)


# -- lut list ------------------------------------------------------------------------------------
@lut_app.command("list")
def list_cmd(db: str = _DB, json_out: bool = _JSON) -> None:
    """List device settings with their row counts, predicted (few-shot) rows, coverage per space and resolution,
    and calibration."""
    from lut.listing import list_settings

    with _store(db) as store:
        out = list_settings(store)
    if json_out:
        emit_json({"devices": out})
        return
    table_ = Table(title=literal(f"LUT store {db}"))
    for col in ("id", "device", "--device", "runtime", "threads", "precision", "format", "rows", "predicted",
                "round spread", "calibration"):
        # the selector is what users copy into --device: wrapped when the terminal is narrow, never cut short
        table_.add_column(col, overflow="fold" if col == "--device" else "ellipsis")
    for d in out:
        spread = d["round_spread_pct"]
        cells = (d["id"], d["device"], d["selector"], f"{d['runtime']} {d['runtime_version'] or ''}".strip(),
                 d["threads"] or "-", d["precision"], d["model_format"] or "-", d["rows"],
                 _predicted_text(d), "-" if spread is None else f"{spread:.0f}%", d["calibration"] or "-")
        table_.add_row(*map(literal, cells))  # names and fields come from the store: shown as they read
    err_console.print(table_)
    if any(d["round_spread_pct"] is not None for d in out):
        err_console.print("round spread: rows timed in several rounds (profile --rounds), the median over blocks of "
                          "how far the slowest round's median is above the fastest; the row keeps the fastest",
                          highlight=False)
    err_console.print(_coverage_table(out))


def _predicted_text(d: dict[str, Any]) -> str:
    """``90 (±8%)``: few-shot rows and their cross-validated error; ``-`` when every row is measured."""
    if not d["predicted_rows"]:
        return "-"
    err = d["expected_error_pct"]
    return f"{d['predicted_rows']} (±{err:.0f}%)" if err is not None else str(d["predicted_rows"])


def _coverage_table(devices: list[dict[str, Any]]) -> Table:
    """Per device and space: the resolutions complete, and those begun with how many blocks of how many."""
    from space import describe_resolutions

    table = Table(title="coverage (resolutions whose blocks the LUT holds)")
    for col in ("id", "device", "space", "complete", "partial"):
        table.add_column(col)
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
    from lut import FORMATS, Calibration, DeviceSetting, detect_format, import_files, read_metadata
    from lut import SETTING_FILE

    if fmt is not None and fmt not in FORMATS:
        fail(f"--format {fmt!r} is unknown; valid: {', '.join(FORMATS)}", EXIT_USAGE)
    for f in files:
        if not f.is_file():
            fail(f"no such file: {f}", EXIT_USAGE)
    fields = {"runtime": runtime, "runtime_version": runtime_version, "threads": threads, "precision": precision,
              "model_format": model_format, "delegate": delegate}
    given = {k: v for k, v in fields.items() if v is not None}
    with _store(db, create=True) as store:
        fmt = fmt or detect_format(next((f for f in files if f.name != SETTING_FILE), files[0]))
        meta = read_metadata(files[0], fmt) or {}
        if not given and (device.isdigit() or store.settings(device)):
            target: Any = find_setting(store, device)  # the existing setting (ambiguous names fail here)
            before = len(store.keys(target.id))
        else:
            try:
                target = DeviceSetting(name=device, **{"runtime": "unknown", **meta.get("setting", {}), **given})
            except (TypeError, ValueError) as err:
                fail(f"cannot file the rows as a device setting: {err}", EXIT_USAGE)
            same = [s for s in store.settings(device) if s.setting == target]
            before = len(store.keys(same[0].id)) if same else 0
        result = import_files(store, target, files, fmt)
        stored = store.setting(result.setting_id)
        new = len(store.keys(stored.id)) - before
        n_cal = 0
        if meta.get("calibrations") and not store.calibration_docs(stored.id):
            for doc in meta["calibrations"]:
                store.save_calibration(stored.id, Calibration.from_json(doc))
                n_cal += 1
    doc = {**setting_doc(stored.setting), "setting_id": stored.id, "format": fmt, "files": [str(f) for f in files],
           "rows": result.n_rows, "new_rows": new, "replaced_rows": result.n_rows - new,
           "assumed_rows": result.n_assumed, "calibrations": n_cal}
    if json_out:
        emit_json(doc)
        return
    notes = [f"{new} new, {result.n_rows - new} replaced"]
    if result.n_assumed:
        notes.append(f"{result.n_assumed} AvgPool2D rows absent in source, assumed 0 ms")
    if n_cal:
        notes.append(f"{n_cal} calibration(s) from the file")
    err_console.print(literal(f"imported {result.n_rows} rows ({'; '.join(notes)}) from {len(files)} file(s) into "
                              f"{stored.describe()}"))


# -- lut export ----------------------------------------------------------------------------------
@lut_app.command("export")
def export_cmd(
    db: str = _DB,
    device: str = typer.Option(..., "--device", help="Device name or setting id."),
    fmt: str | None = typer.Option(None, "--format", help="ofa-yaml (a directory) | csv | parquet "
                                   "(default: from --out: .csv, .parquet, else a directory of OFA yaml files)."),
    out: Path = typer.Option(..., "--out", help="Output directory (ofa-yaml) or file."),
    json_out: bool = _JSON,
) -> None:
    """Export a device's LUT."""
    from lut import EXPORT_FORMATS, export_table

    fmt = fmt or _export_format(out)
    if fmt not in EXPORT_FORMATS:
        fail(f"--format {fmt!r} is unknown; valid: {', '.join(EXPORT_FORMATS)}", EXIT_USAGE)
    with _store(db) as store:
        stored = find_setting(store, device)
        few_shot = predicted_note(store, stored)
        if few_shot is not None and fmt == "ofa-yaml":  # CSV and Parquet keep each row's source; OFA yaml cannot
            warn("OFA yaml has no field for it: the exported files do not say which rows are predicted")
        try:
            paths = export_table(store, stored, fmt, out)
        except OSError as err:
            fail(f"cannot write {out}: {err.strerror or err}", EXIT_FAILED)
    if json_out:
        emit_json({**setting_doc(stored.setting), "setting_id": stored.id, "format": fmt,
                   "files": [str(p) for p in paths]})
        return
    err_console.print(literal(f"wrote {len(paths)} file(s) for {stored.describe()} to {out}"))


def _export_format(out: Path) -> str:
    """The export format an ``--out`` path implies: its extension, else a directory of OFA yaml files."""
    suffix = out.suffix.lower()
    if suffix in (".yaml", ".yml"):
        fail(f"--out {out}: OFA yaml is one file per resolution; give a directory", EXIT_USAGE)
    return {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}.get(suffix, "ofa-yaml")


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
    from lut import CalibrationError, CompiledLut, block_features
    from lut.selectors import with_precision
    from space import read_net_config
    from space.bounds import loads_json

    from lutnas._spaces import net_config_source, store_space

    if (arch is None) == (net_config is None):
        fail("give exactly one of --arch JSON or --net-config FILE", EXIT_USAGE)
    if arch is not None and resolution is not None:
        fail("--resolution goes with --net-config; put r in the --arch JSON", EXIT_USAGE)
    blocks = None
    if net_config is not None:
        resolution = resolution or _run_config_resolution(net_config)
        try:
            blocks = read_net_config(net_config, resolution)
        except ValueError as err:
            fail(str(err), EXIT_USAGE)
    with _store(db) as store:
        stored = find_setting(store, with_precision(device, precision))
        others = [net_config_source(str(net_config), blocks)] if blocks is not None else []
        space_name = store_space(store, {stored.name: stored}, others, space)
        compiled = CompiledLut.from_store(store, stored, space_name, calibrated=not raw)
        cal = compiled.calibration
        if arch is not None:
            try:
                arch_obj = loads_json(arch)  # nesting bounded: one line, not a RecursionError
            except json.JSONDecodeError as err:
                fail(f"--arch is not JSON ({err.msg} at column {err.colno})", EXIT_USAGE)
            sub = compiled.space.validate(arch_obj)
            raw_ms = compiled.predict(sub, calibrated=False)
            latency = compiled.predict(sub, calibrated=True)
        else:
            raw_ms = compiled.predict_blocks(blocks)
            latency = raw_ms
            if cal is not None:
                try:
                    latency = float(cal.predict({k: [v] for k, v in block_features(compiled, blocks).items()})[0])
                except CalibrationError as err:
                    warn(f"calibration not applied: {err}")
                    cal = None
        few_shot = predicted_note(store, stored)
    doc = {"device": compiled.device, "space": space_name, "latency_ms": latency, "calibrated": cal is not None,
           "raw_ms": raw_ms, "calibration": cal.kind if cal is not None else None, "few_shot": few_shot}
    if json_out:
        emit_json(doc)
        return
    how = f"calibrated ({cal.kind}; raw LUT sum {raw_ms:.3f} ms)" if cal is not None else "raw LUT sum"
    err_console.print(literal(f"{compiled.device} ({space_name}): {latency:.3f} ms, {how}"))


def _run_config_resolution(net_config: Path) -> int:
    """``image_size`` from the OFA run.config beside a net.config (OFA's specialized nets ship one)."""
    folder = net_config if net_config.is_dir() else net_config.parent
    run_config = folder / "run.config"
    try:
        size = json.loads(run_config.read_text()).get("image_size")
    except (OSError, ValueError, AttributeError):
        size = None
    if not isinstance(size, int) or isinstance(size, bool):
        found = f"image_size {size!r}" if size is not None else "no image_size"
        fail(f"--net-config needs --resolution R ({found} in {run_config})", EXIT_USAGE)
    return size


# -- lut rm --------------------------------------------------------------------------------------
@lut_app.command("rm")
def rm_cmd(
    db: str = _DB,
    device: str = typer.Option(..., "--device", help="Device name or setting id."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    json_out: bool = _JSON,
) -> None:
    """Remove a device setting with its rows, failures, validation runs and calibrations."""
    with _store(db) as store:
        stored = find_setting(store, device)
        n_rows = len(store.keys(stored.id))
        if not yes:
            if not sys.stdin.isatty():
                fail(f"removing {stored.describe()} ({n_rows} rows) needs --yes when not interactive", EXIT_USAGE)
            if not typer.confirm(escape_controls(f"remove {stored.describe()} and its {n_rows} rows?"), err=True):
                fail("nothing removed", EXIT_FAILED)
        store.remove_setting(stored.id)
    if json_out:
        emit_json({"device": stored.name, "setting_id": stored.id, "removed_rows": n_rows})
        return
    err_console.print(literal(f"removed {stored.describe()} ({n_rows} rows)"))


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
    from lut import copy_settings

    with _store(src) as source, _store(dst, create=True) as dest:
        copied = copy_settings(source, dest, device or None, replace=replace)
        counts = dest.count_rows()
    doc = {"from": source.path, "to": dest.path,
           "copied": [{"device": s.name, "from_id": s.id, "to_id": new_id, "rows": counts.get(new_id, 0)}
                      for s, new_id in copied]}
    if json_out:
        emit_json(doc)
        return
    for item, (stored, _) in zip(doc["copied"], copied):
        err_console.print(literal(f"copied {stored.describe()} ({item['rows']} rows) to {dest.path} as #{item['to_id']}"))


# -- compare -------------------------------------------------------------------------------------
def compare_cmd(
    ctx: typer.Context,
    db: str = _DB,
    device: list[str] = typer.Option([], "--device", help="A device to compare (name, selector like cpu:int8, or "
                                     "id); repeat (or A,B): two or more. One device with --precision A,B compares "
                                     "two precisions of it."),
    precision: str | None = typer.Option(None, "--precision", help="Every device's setting at this precision; "
                                         "or two precisions (fp32,int8) of one device: speedups by kind, stage "
                                         "and resolution, and the blocks that get slower."),
    devices: list[str] = typer.Option([], "--devices", hidden=True),  # old spelling: --devices A B [...]
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
    from lut import CompiledLut, MissingBlocksError
    from lut.compare import comparable_resolutions, compare_luts, plot_comparison
    from lut.selectors import with_precision

    from lutnas._spaces import predictor_source, store_space

    extra = [a for a in ctx.args]
    bad = [a for a in extra if a.startswith("-")]
    if bad:
        fail(f"unknown option(s) {bad}", EXIT_USAGE)
    names = [n for item in [*device, *devices, *extra] for n in item.split(",") if n]
    precisions = [p for p in (precision or "").split(",") if p]
    if len(precisions) == 2 and len(names) == 1:
        names = [f"{names[0]}:{p}" for p in precisions]  # two precisions of one device
    elif len(precisions) == 1:
        names = [with_precision(n, precisions[0]) for n in names]
    elif precisions:
        fail(f"--precision takes one precision, or two (A,B) with one device; got {precision!r} for {names}",
             EXIT_USAGE)
    if len(names) < 2 or len(set(names)) != len(names):
        fail(f"compare needs two or more distinct devices (--device A --device B), got {names}", EXIT_USAGE)
    try:
        resolution = list(resolution_option(resolutions))
    except ValueError as err:
        fail(str(err), EXIT_USAGE)
    if predictor is None and (budgets is not None or generations is not None):
        fail("--budgets and --generations go with --predictor P", EXIT_USAGE)
    quantiles = _parse_quantiles(budgets) if budgets is not None else None
    if predictor is not None and not predictor.is_file():
        fail(f"--predictor file not found: {predictor}", EXIT_USAGE)
    pred = _load_predictor(predictor) if predictor is not None else None
    with _store(db) as store:
        stored = {name: find_setting(store, name) for name in names}
        others = [predictor_source(str(predictor), pred)] if pred is not None else []
        space_name = store_space(store, stored, others, space)
        # Raw sums: a ratio of two devices' blocks means the same whether or not either is calibrated.
        luts = {name: CompiledLut.from_store(store, s, space_name, calibrated=False) for name, s in stored.items()}
        few_shot = [note for s in stored.values() if (note := predicted_note(store, s)) is not None]
    try:
        compared = comparable_resolutions(luts, resolution or None)
    except (MissingBlocksError, ValueError) as err:  # the devices' LUTs do not fit together (or --resolutions)
        fail(str(err), EXIT_USAGE)
    with work_failed("comparison"):
        cmp = compare_luts(luts, resolutions=compared, n_subnets=subnets, random_state=seed)
    regret = None
    if pred is not None:
        regret = _regret(space_name, luts, pred, quantiles, generations, resolution or None, seed)
    if plot is not None:
        try:
            plot_comparison(cmp, plot)
        except OSError as err:
            fail(f"cannot write --plot {plot}: {err.strerror or err}", EXIT_FAILED)
    doc = {**cmp.to_dict(), "latency_model": _COMPARE_MODEL, "few_shot": few_shot}
    if plot is not None:
        doc["plot"] = str(plot)
    if regret is not None:
        doc["regret"] = regret.to_dict()
    if json_out:
        emit_json(doc)
        return
    _print_comparison(cmp, plot)
    err_console.print(literal(f"latencies: {_COMPARE_MODEL}"))
    if regret is not None:
        _print_regret(regret)


def _parse_quantiles(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        fail(f"--budgets expects quantiles like 0.25,0.5,0.75, got {text!r}", EXIT_USAGE)
    if not values or any(not 0.0 < v < 1.0 for v in values):
        fail(f"--budgets values must lie strictly between 0 and 1, got {text!r}", EXIT_USAGE)
    return values


_COMPARE_MODEL = "raw LUT sums (device calibrations are not applied)"


def _load_predictor(path: Path) -> Any:
    from search import SearchError, load_predictor

    try:
        return load_predictor(path)
    except (SearchError, ValueError, OSError) as err:
        fail(str(err), EXIT_USAGE)


def _regret(space_name: str, luts: dict[str, Any], pred: Any, quantiles: list[float] | None,
            generations: int | None, resolutions: list[int] | None, seed: int) -> Any:
    """Run the matched-budget searches, turning search errors into one-line failures."""
    import dataclasses

    from search import EvolutionSettings, InfeasibleSearchError, cross_device_regret

    settings = EvolutionSettings()
    if generations is not None:
        settings = dataclasses.replace(settings, generations=generations)
    if resolutions is not None:
        settings = dataclasses.replace(settings, resolutions=tuple(resolutions))
    try:
        settings.validate()
    except ValueError as err:
        fail(str(err), EXIT_USAGE)
    # The input was checked above and by the caller (devices, space, budgets): what the searches raise is
    # their own failure (exit 1), not bad usage.
    with work_failed("regret search"):
        try:
            with err_console.status("searching the best subnet per device and budget"):
                return cross_device_regret(space_name, luts, pred, quantiles, settings, random_state=seed)
        except InfeasibleSearchError as err:
            fail(str(err), EXIT_FAILED)


def _arch_summary(arch: dict[str, Any], space_name: str) -> str:
    """``r=208 d=4,3,4,4,4 k=5.2 e=4.6`` (kernel and expand averaged over the active slots)."""
    from space import get_space

    space = get_space(space_name)
    sub = space.validate(arch)
    active = space.active_slots(sub)
    ks = sum(sub.ks[i] for i in active) / len(active)
    e = sum(sub.e[i] for i in active) / len(active)
    return f"r={sub.r} d={','.join(str(d) for d in sub.d)} k={ks:.1f} e={e:.1f}"


def _print_regret(report: Any) -> None:
    from space import describe_resolutions

    err_console.print(literal(f"matched budgets: {report.space}, resolutions "
                              f"{describe_resolutions(report.resolutions)}, {report.generations} generations per search"))
    for qr in report.by_quantile:
        picks = Table(title=f"best subnet per device, budget quantile {qr.quantile:g}")
        for col in ("device", "range (ms)", "budget (ms)", "pick", "predicted top-1 (%)", "latency (ms)"):
            picks.add_column(col, overflow="fold" if col == "device" else "ellipsis")
        for p in qr.picks.values():
            found = "" if p.found_by == p.device else f" (from {p.found_by}'s search; own {p.searched_accuracy:.2f})"
            picks.add_row(*map(literal, (p.device, f"{p.range_ms[0]:.2f}..{p.range_ms[1]:.2f}", f"{p.budget_ms:.2f}",
                                         _arch_summary(p.arch, report.space), f"{p.predicted_accuracy:.2f}{found}",
                                         f"{p.latency_ms:.2f}")))
        err_console.print(picks)
        matrix = Table(title=f"regret at quantile {qr.quantile:g}",
                       caption="the row's pick on the column's device: predicted top-1 points lost "
                               "(its latency), or how far over that device's budget it runs")
        matrix.add_column("pick of", overflow="fold")
        for d in report.devices:
            matrix.add_column(literal(d), overflow="fold")
        for a in report.devices:
            cells = []
            for b in report.devices:
                c = qr.price(a, b)
                if c.feasible:
                    cells.append(literal(f"{c.regret:+.2f} ({c.latency_ms:.2f} ms)"))
                else:
                    cells.append(literal(("over budget", "red"),
                                         f" +{c.over_budget_ms:.2f} ms (+{c.over_budget_pct:.1f}%)"))
            matrix.add_row(literal(a), *cells)
        err_console.print(matrix)


def _print_comparison(cmp: Any, plot: Path | None) -> None:
    from space import describe_resolutions

    err_console.print(literal(f"{cmp.space}, resolutions {describe_resolutions(cmp.resolutions)}, "
                              f"{cmp.n_subnets} random subnets"))
    pairs = Table(title="pairs (ratio = B / A)")
    for col in ("A", "B", "shared blocks", "median ratio", "block Spearman", "block Kendall",
                "subnet Spearman", "subnet Kendall"):
        pairs.add_column(col, overflow="fold" if col in ("A", "B") else "ellipsis")  # device selectors: never cut
    for p in cmp.pairs:
        pairs.add_row(literal(p.a), literal(p.b), str(p.n_shared_blocks), f"{p.median_ratio:.3f}",
                      f"{p.block_spearman:.3f}", f"{p.block_kendall:.3f}", f"{p.subnet_spearman:.3f}",
                      f"{p.subnet_kendall:.3f}")
    err_console.print(pairs)
    for p in cmp.pairs:
        for by, frame in (("kind", p.ratio_by_kind), ("group", p.ratio_by_group)):
            table = Table(title=literal(f"{p.b} / {p.a} by {by}"))
            for col in (by, "n", "median", "geomean", "min", "max"):
                table.add_column(col)
            for g, row in frame.iterrows():
                table.add_row(literal(g), str(int(row["n"])),
                              *(f"{row[c]:.3f}" for c in ("median", "geomean", "min", "max")))
            err_console.print(table)
        _print_slower(p)
    for device, shares in cmp.dominant.items():
        top = ", ".join(f"{g} {100 * s:.1f}%" for g, s in shares[:4])
        err_console.print(literal(f"{device}: latency dominated by {top}"))
    if plot is not None:
        err_console.print(literal(f"plot written to {plot}"))


def _print_slower(pair: Any, shown: int = 10) -> None:
    """The blocks slower on B (for two precisions: where the lower precision loses)."""
    if pair.slower.empty:
        err_console.print(literal(f"no block is slower on {pair.b} than on {pair.a}"))
        return
    table = Table(title=literal(f"{len(pair.slower)} of {pair.n_ratio_blocks} blocks slower on {pair.b} than on "
                                f"{pair.a}" + (f" (slowest {shown})" if len(pair.slower) > shown else "")))
    for col in ("block", "group", f"{pair.a} ms", f"{pair.b} ms", "ratio"):
        table.add_column(literal(col), overflow="ellipsis" if col == "block" else "fold")
    for row in pair.slower.head(shown).itertuples():  # block keys come from imported files
        table.add_row(literal(row.block_key), literal(row.group), f"{row.a_ms:.3f}", f"{row.b_ms:.3f}",
                      f"{row.ratio:.2f}")
    err_console.print(table)


def register(app: typer.Typer) -> None:
    """Add ``lut ...`` and ``compare`` to ``app``."""
    app.add_typer(lut_app, name="lut")
    app.command("compare", context_settings={"allow_extra_args": True})(compare_cmd)
