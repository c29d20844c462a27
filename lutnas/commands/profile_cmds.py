"""``lutnas profile`` (fill LUTs from a fleet of agents) and ``lutnas validate`` (LUT sums vs whole networks).

The work is :func:`profiler.profile_run.profile_lut` and :func:`profiler.validate_run.validate_lut`
(``from lutnas import profile, validate``); these commands parse flags, make that call and render its report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from lutnas._calls import connect_timeout, connect_timeout_option, ctrl_c_stops, library_call
from lutnas._common import EXIT_FAILED, emit_json, err_console, note, parse_options, read_token, resolution_option, warn
from lutnas._progress import rich_progress
from lutnas._text import literal

__all__ = ["register"]

# 128 + SIGINT, as a shell reports a command stopped by Ctrl-C.
EXIT_INTERRUPTED = 130


def profile_cmd(
    agent: list[str] = typer.Option(..., "--agent", help="[NAME=]HOST:PORT; repeat; agents sharing a NAME split that "
                                    "device's work. NAME names the LUT (it wins over the agent's own --name); a bare "
                                    "HOST:PORT uses the name the agent reports."),
    space: str = typer.Option("ofa-mbv3-w1.2", help="Search space whose blocks are timed."),
    resolutions: list[str] = typer.Option([], "--resolutions", "--resolution", show_default=False,
                                          help="Resolutions: a comma list or a range like 128-224:4 (repeatable). "
                                          "Default: the space's resolutions; for the ImageNet OFA spaces (w1.0, "
                                          "w1.2) OFA's five LUT resolutions 160,176,192,208,224."),
    runtime: str = typer.Option("onnxruntime", help="Runtime on the agents: onnxruntime, tflite, torch, benchmark_model."),
    threads: int = typer.Option(1, help="Runtime threads."),
    fmt: Optional[str] = typer.Option(None, "--format", help="Model format: onnx, tflite or pt2 (default: the runtime's "
                                      "own: onnx for onnxruntime, pt2 for torch, tflite for the others)."),
    option: list[str] = typer.Option([], "--option", help="Runtime option KEY=VALUE (e.g. device=cuda); repeatable."),
    precision: str = typer.Option("fp32", "--precision", help="Precision of the timed blocks: fp32, fp16 or int8 "
                                  "(int8: static quantization, integer I/O; torch: fp32, or fp16 with --option "
                                  "device=cuda; part of the device setting)."),
    calib_dir: Optional[Path] = typer.Option(None, "--calib-dir", help="Image folder for int8 calibration "
                                             "(default: seeded random inputs)."),
    db: str = typer.Option(..., "--db", help="LUT store, created if missing: a SQLite file or "
                           "postgresql://user@host:port/db (several hosts may profile one device into it)."),
    rounds: int = typer.Option(1, min=1, help="Time every block once per round, rounds interleaved; keep the lowest median."),
    sentinel_every: int = typer.Option(25, help="Re-time the drift sentinel every N jobs per agent (0: off)."),
    sentinel_threshold: float = typer.Option(0.05, help="Relative sentinel drift that triggers cooldown and re-timing."),
    max_attempts: int = typer.Option(3, help="Attempts per block before it is recorded as failed."),
    cache_dir: Optional[Path] = typer.Option(None, help="Host artifact cache (default ~/.cache/lutnas/artifacts)."),
    token_file: Optional[Path] = typer.Option(None, help="Bearer token file (else $LUTNAS_TOKEN)."),
    tls_ca: Optional[Path] = typer.Option(None, help="CA certificate to trust for TLS agents."),
    connect_timeout_s: Optional[float] = connect_timeout_option(),
    few_shot: Optional[int] = typer.Option(None, "--few-shot", help="Time only K informative blocks; predict the rest from --from."),
    from_: Optional[str] = typer.Option(None, "--from", help="Source settings for --few-shot: names or ids, comma-separated."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
) -> None:
    """Time every block of a space on every device (resumes by default) and fill the LUT store.

    With --few-shot K --from A,B: time only K blocks and store predicted rows for the rest, marked as
    predicted with the model's cross-validated error; a later plain profile measures them."""
    from profiler.fleet import ProfileSettings
    from profiler.profile_run import profile_lut

    from lutnas._spaces import profile_resolutions

    with library_call():
        settings = ProfileSettings(
            space=space, resolutions=resolution_option(resolutions) or profile_resolutions(space), runtime=runtime,
            threads=threads, fmt=fmt or "", precision=precision, calib_dir=str(calib_dir) if calib_dir else None,
            options=parse_options(option), rounds=rounds, sentinel_every=sentinel_every,
            sentinel_threshold=sentinel_threshold, max_attempts=max_attempts,
            cache_dir=str(cache_dir) if cache_dir else None, connect_timeout_s=connect_timeout(connect_timeout_s))
        sources = [s for s in (from_ or "").split(",") if s.strip()]
        token = read_token(token_file)
        with ctrl_c_stops() as stop, rich_progress(enabled=not json_out) as progress:
            run = profile_lut(db, agent, settings, few_shot=few_shot, sources=sources, token=token, tls_ca=tls_ca,
                              progress=progress, stop=stop, notify=note)
    if json_out:
        emit_json(run.to_dict())
    else:
        err_console.print(_summary_table(run.report))
        for line in run.describe():
            err_console.print(literal(line), soft_wrap=True)
    if run.interrupted:
        err_console.print(literal(("interrupted", "yellow"), f": not timed yet: {run.untimed()}. Run the same command "
                                  "again to time the rest (stored blocks are skipped)."))
        raise typer.Exit(EXIT_INTERRUPTED)
    if not run.ok:
        raise typer.Exit(EXIT_FAILED)


def _summary_table(report: Any) -> Table:
    rounds = any(d.round_spread is not None for d in report.devices)
    caption = "uploaded KB: model files sent to the agents; saved KB: files not sent because the agent already had them cached"
    if rounds:
        caption += "; round spread: how far a block's slowest round median is above its fastest (median over blocks)"
    table = Table(title="profile summary", caption=caption)
    cols = ["device", "blocks", "timed", "skipped", "failed", "re-timed", "wall s", "busy", "uploaded KB", "saved KB"]
    for col in cols + (["round spread"] if rounds else []):
        table.add_column(col, justify="right" if col != "device" else "left",
                         overflow="fold" if col == "device" else "ellipsis")  # a device's name is never cut
    for d in report.devices:
        cells = [d.name, str(d.total), str(d.timed), str(d.skipped), str(len(d.failed)), str(d.retimed),
                 f"{d.wall_s:.1f}", f"{d.busy_fraction:.0%}", f"{d.uploaded_bytes / 1024:.0f}", f"{d.saved_bytes / 1024:.0f}"]
        if rounds:
            cells.append("-" if d.round_spread is None else f"{d.round_spread:.1%}")
        table.add_row(*map(literal, cells))  # the device's name is the user's or the agent's word
    return table


def validate_cmd(
    agent: Optional[str] = typer.Option(None, "--agent", help="[NAME=]HOST:PORT of the device (omit to re-render "
                                        "stored runs); a bare address means the name the agent reports."),
    db: str = typer.Option(..., "--db", help="LUT store: a SQLite file or postgresql://user@host:port/db."),
    device: Optional[str] = typer.Option(None, help="Device setting to validate: a name, a selector like cpu:int8, "
                                         "or an id (default: the --agent NAME)."),
    precision: Optional[str] = typer.Option(None, "--precision", help="The device's setting at this precision "
                                            "(fp32, fp16, int8); whole networks are exported at it."),
    calib_dir: Optional[Path] = typer.Option(None, "--calib-dir", help="int8 calibration images, as given to profile."),
    samples: int = typer.Option(100, help="Subnets to time end to end, stratified over the predicted latency range."),
    rounds: int = typer.Option(4, help="Interleaved timing rounds (even/odd rounds give the repeat noise)."),
    space: Optional[str] = typer.Option(None, help="Search space (default: the one the LUT covers)."),
    resolutions: list[str] = typer.Option([], "--resolutions", "--resolution",
                                          help="Restrict to these resolutions (default: all the LUT covers)."),
    calibrate: bool = typer.Option(False, "--calibrate", help="Fit a calibration (chosen by cross-validation) and store it."),
    seed: int = typer.Option(0, help="Seed of the subnet draw and round order."),
    option: list[str] = typer.Option([], "--option", help="Runtime option KEY=VALUE, as given to the profile; repeatable."),
    round_stat: str = typer.Option("min", help="Combine a network's round medians by min (wall-clock noise only adds) or median."),
    token_file: Optional[Path] = typer.Option(None, help="Bearer token file (else $LUTNAS_TOKEN)."),
    tls_ca: Optional[Path] = typer.Option(None, help="CA certificate to trust for a TLS agent."),
    connect_timeout_s: Optional[float] = connect_timeout_option(),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout."),
) -> None:
    """Time whole subnets on the device and check the LUT's sums against them (raw and calibrated).

    Warns when the LUT's sums are far off the device's whole networks, or when the calibration it chose
    ignores the LUT (every latency coefficient 0)."""
    from profiler.validate import ValidationSettings
    from profiler.validate_run import validate_lut

    with library_call():
        settings = ValidationSettings(samples=samples, rounds=rounds, seed=seed, space=space,
                                      resolutions=resolution_option(resolutions), calibrate=calibrate,
                                      options=parse_options(option), round_stat=round_stat,
                                      calib_dir=str(calib_dir) if calib_dir else None,
                                      connect_timeout_s=connect_timeout(connect_timeout_s))
        with rich_progress(enabled=not json_out and agent is not None) as progress:
            run = validate_lut(db, agent=agent, device=device, precision=precision, settings=settings,
                               token=read_token(token_file), tls_ca=tls_ca, progress=progress, notify=note)
    for line in run.warnings:
        warn(line)
    if json_out:
        emit_json(run.to_dict())
        return
    _render_validation(run.report)


def _render_validation(report: Any) -> None:
    """The fidelity table, the repeat noise, the report's notes and the calibration, on stderr."""
    table = Table(title=literal(f"fidelity of {report.device}'s LUT ({report.space}, {len(report.samples)} subnets)"))
    for col in ("predictor", "RMSE ms", "RMSPE %", "MAPE %", "bias %", "within ±5%", "within ±10%"):
        table.add_column(col, justify="right" if col != "predictor" else "left")
    rows = [("raw LUT sum", report.raw)]
    if report.calibrated is not None:
        rows.append((f"calibrated ({report.calibration.kind}, held-out CV)", report.calibrated))
    for label, m in rows:
        table.add_row(literal(label), f"{m['rmse_ms']:.3f}", f"{m['rmspe']:.1f}", f"{m['mape']:.1f}", f"{m['bias']:+.1f}",
                      f"{m['within_5pct']:.0f}%", f"{m['within_10pct']:.0f}%")
    err_console.print(table)
    noise = report.noise
    err_console.print(f"measurement repeat noise: median {noise['repeat_median']:.1f}%, p90 {noise['repeat_p90']:.1f}%"
                      " (two independent end-to-end measurements of each subnet)")
    for text in report.notes:
        note(text)
    if report.calibration is not None:
        err_console.print(literal(f"calibration: {report.calibration.describe()}"))


def register(app: typer.Typer) -> None:
    """Add ``profile`` and ``validate``."""
    app.command("profile")(profile_cmd)
    app.command("validate")(validate_cmd)
