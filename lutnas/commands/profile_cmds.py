"""``lutnas profile`` (fill LUTs from a fleet of agents) and ``lutnas validate`` (LUT sums vs whole networks).

The work is :func:`profiler.profile_run.profile_lut` and :func:`profiler.validate_run.validate_lut`
(``from lutnas import profile, validate``); these commands parse flags, make that call and render its report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from lutnas._calls import ctrl_c_stops, library_call
from lutnas._common import EXIT_FAILED, note, parse_options, read_token, resolution_option, show, warn
from lutnas._options import (
    CONNECT_TIMEOUT,
    DB,
    JSON,
    RUNTIME_OPTION,
    SETTING_PRECISION,
    TLS_CA,
    TOKEN_FILE,
    connect_timeout,
)
from lutnas._progress import rich_progress
from lutnas.views import profile as view

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
    option: list[str] = RUNTIME_OPTION,
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
    token_file: Optional[Path] = TOKEN_FILE,
    tls_ca: Optional[Path] = TLS_CA,
    connect_timeout_s: Optional[float] = CONNECT_TIMEOUT,
    few_shot: Optional[int] = typer.Option(None, "--few-shot", help="Time only K informative blocks; predict the rest from --from."),
    from_: Optional[str] = typer.Option(None, "--from", help="Source settings for --few-shot: names or ids, comma-separated."),
    json_out: bool = JSON,
) -> None:
    """Time every block of a space on every device (resumes by default) and fill the LUT store.

    With --few-shot K --from A,B: time only K blocks and store predicted rows for the rest, marked as
    predicted with the model's cross-validated error; a later plain profile measures them."""
    from lut.spaces import profile_resolutions
    from profiler.fleet import ProfileSettings
    from profiler.profile_run import profile_lut

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
    show(run, json_out, view.render_profile)
    if run.interrupted:
        view.render_interrupted(run)
        raise typer.Exit(EXIT_INTERRUPTED)
    if not run.ok:
        raise typer.Exit(EXIT_FAILED)


def validate_cmd(
    agent: Optional[str] = typer.Option(None, "--agent", help="[NAME=]HOST:PORT of the device (omit to re-render "
                                        "stored runs); a bare address means the name the agent reports."),
    db: str = DB,
    device: Optional[str] = typer.Option(None, help="Device setting to validate: a name, a selector like cpu:int8, "
                                         "or an id (default: the --agent NAME)."),
    precision: Optional[str] = SETTING_PRECISION,
    calib_dir: Optional[Path] = typer.Option(None, "--calib-dir", help="int8 calibration images, as given to profile."),
    samples: int = typer.Option(100, help="Subnets to time end to end, stratified over the predicted latency range."),
    rounds: int = typer.Option(4, help="Interleaved timing rounds (even/odd rounds give the repeat noise)."),
    space: Optional[str] = typer.Option(None, help="Search space (default: the one the LUT covers)."),
    resolutions: list[str] = typer.Option([], "--resolutions", "--resolution",
                                          help="Restrict to these resolutions (default: all the LUT covers)."),
    calibrate: bool = typer.Option(False, "--calibrate", help="Fit a calibration (chosen by cross-validation) and store it."),
    seed: int = typer.Option(0, help="Seed of the subnet draw and round order."),
    option: list[str] = RUNTIME_OPTION,
    round_stat: str = typer.Option("min", help="Combine a network's round medians by min (wall-clock noise only adds) or median."),
    token_file: Optional[Path] = TOKEN_FILE,
    tls_ca: Optional[Path] = TLS_CA,
    connect_timeout_s: Optional[float] = CONNECT_TIMEOUT,
    json_out: bool = JSON,
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
    show(run, json_out, view.render_validation)


def register(app: typer.Typer) -> None:
    """Add ``profile`` and ``validate``."""
    app.command("profile")(profile_cmd)
    app.command("validate")(validate_cmd)
