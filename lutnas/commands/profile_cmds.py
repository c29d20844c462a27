"""``lutnas profile`` (fill LUTs from a fleet of agents) and ``lutnas validate`` (LUT sums vs whole networks)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from lutnas._common import (
    EXIT_FAILED,
    EXIT_USAGE,
    agent_device_name,
    connect_timeout_option,
    emit_json,
    err_console,
    fail,
    find_setting,
    note,
    note_case_twin,
    parse_agent_spec,
    parse_options,
    parse_resolutions,
    positive_number,
    predicted_note,
    read_token,
    resolution_option,
)
from lutnas._text import escape_controls, literal

__all__ = ["failure_reasons", "register", "parse_resolutions", "run_profile"]


def run_profile(store, agents, settings, token, tls_ca=None, show_progress: bool = True,
                interrupted: threading.Event | None = None):
    """Run a profile with rich progress bars on stderr; Ctrl-C stops cleanly (the store stays consistent)
    and sets ``interrupted`` when given."""
    from profiler.fleet import profile

    stop = threading.Event()
    previous = signal.getsignal(signal.SIGINT)

    def on_sigint(signum, frame):  # noqa: ARG001 - signal handler signature
        err_console.print(literal(("stopping: finishing in-flight jobs; rerun to resume", "yellow")))
        if interrupted is not None:
            interrupted.set()
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, on_sigint)
    # Descriptions name devices: never read as markup, their controls escaped.
    columns = (TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[failed]} failed"), TimeElapsedColumn(), TimeRemainingColumn())
    try:
        with Progress(*columns, console=err_console, disable=not show_progress, transient=False) as bars:
            tasks: dict[str, int] = {}

            def on_progress(p) -> None:
                if p.device not in tasks:
                    tasks[p.device] = bars.add_task(escape_controls(f"profile {p.device}"), total=p.total, failed=0)
                bars.update(tasks[p.device], completed=p.done + p.failed, failed=p.failed)

            return profile(store, agents, settings, token=token, tls_ca=tls_ca, on_progress=on_progress, stop=stop)
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, previous)


# 128 + SIGINT, as a shell reports a command stopped by Ctrl-C.
EXIT_INTERRUPTED = 130


def _remaining(d) -> int:
    """Blocks of a device neither stored before, timed now nor recorded as failed."""
    return d.total - d.skipped - d.timed - len(d.failed)


def _check_calib_dir(calib_dir: Path | None) -> None:
    """An int8 calibration folder must hold images (else every image-input export would fail)."""
    from profiler.quantize import list_images

    if calib_dir is not None and not list_images(calib_dir):
        raise ValueError(f"--calib-dir {calib_dir} holds no images (jpg, png, bmp, webp)")


def failure_reasons(failed) -> dict[str, int]:
    """Failed blocks counted by reason (most common first), for the one-line-per-reason summary."""
    from collections import Counter

    return dict(Counter(f.reason for f in failed).most_common())


def _summary_table(report) -> Table:
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
    connect_timeout_s: float = connect_timeout_option(),
    few_shot: Optional[int] = typer.Option(None, "--few-shot", help="Time only K informative blocks; predict the rest from --from."),
    from_: Optional[str] = typer.Option(None, "--from", help="Source settings for --few-shot: names or ids, comma-separated."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
) -> None:
    """Time every block of a space on every device (resumes by default) and fill the LUT store.

    With --few-shot K --from A,B: time only K blocks and store predicted rows for the rest, marked as
    predicted with the model's cross-validated error; a later plain profile measures them."""
    from lut import LutError, LutStore
    from lut.transfer import load_sources, plan_few_shot
    from profiler.fleet import AgentRef, ProfileError, ProfileSettings
    from space import get_space

    from lutnas._spaces import profile_resolutions

    try:
        specs = [parse_agent_spec(a) for a in agent]
        get_space(space)
        res = resolution_option(resolutions) or profile_resolutions(space)
        options = parse_options(option)
        _check_calib_dir(calib_dir)
        settings = ProfileSettings(space=space, resolutions=res, runtime=runtime, threads=threads, fmt=fmt or "",
                                   precision=precision, calib_dir=str(calib_dir) if calib_dir else None,
                                   options=options, rounds=rounds, sentinel_every=sentinel_every,
                                   sentinel_threshold=sentinel_threshold, max_attempts=max_attempts,
                                   cache_dir=str(cache_dir) if cache_dir else None,
                                   connect_timeout_s=positive_number(connect_timeout_s, "--connect-timeout-s"))
        settings.validate()
    except ValueError as err:
        fail(str(err), EXIT_USAGE)
    if (few_shot is None) != (from_ is None):
        fail("--few-shot K and --from SETTING,... go together", EXIT_USAGE)
    token = read_token(token_file)
    sources = None
    if few_shot is not None:  # the sources are input, read before the agents are asked anything (exit 2 at once)
        try:
            with LutStore(db, create=False) as store:
                sources = load_sources(store, [r.strip() for r in str(from_).split(",") if r.strip()])
            settings = replace(settings, only_keys=tuple(plan_few_shot(sources, space, res, few_shot)))
        except LutError as err:
            fail(str(err), EXIT_USAGE)
    # The agents are asked their names before the store is opened: an unreachable one leaves no store behind.
    specs = _agent_names(agent, specs, token, tls_ca, connect_timeout_s, "rows are stored under {name!r}")
    interrupted = threading.Event()
    with _removed_unless_filled(db):
        try:
            store = LutStore(db, create=True)
        except LutError as err:
            fail(str(err), EXIT_USAGE)
        with store:
            for name in dict.fromkeys(s.name for s in specs):
                note_case_twin(store, name)
            try:
                report = run_profile(store, [AgentRef(s.name, s.address) for s in specs], settings, token,
                                     str(tls_ca) if tls_ca else None, show_progress=not json_out, interrupted=interrupted)
            except (ProfileError, LutError) as err:
                fail(str(err), EXIT_FAILED)
            transfers = {}
            if sources is not None and not interrupted.is_set():
                transfers = _few_shot_fill(store, report, sources, space, res, few_shot)
            counts = {d.setting_id: _row_counts(store, d.setting_id, space, res) for d in report.devices}
        _report(report, transfers, counts, interrupted.is_set(), json_out)


def _report(report, transfers: dict, counts: dict, interrupted: bool, json_out: bool) -> None:
    """Print the profile's summary (a table on stderr, or JSON on stdout) and exit 130 when it was interrupted,
    1 when a device failed."""
    if json_out:
        doc = report.to_dict()
        for d, out in zip(report.devices, doc["devices"]):
            out["remaining"] = _remaining(d)
            out.update(counts[d.setting_id])
            out["few_shot"] = transfers[d.setting_id].summary() if d.setting_id in transfers else None
        emit_json({**doc, "interrupted": interrupted})
    else:
        err_console.print(_summary_table(report))
        for d in report.devices:
            if d.setting_id in transfers:
                fs = transfers[d.setting_id].summary()
                err_console.print(literal(f"{d.name}: measured {counts[d.setting_id]['measured']} blocks, predicted "
                                          f"{fs['predicted']} from {', '.join(fs['sources'])} ({fs['candidate']}, "
                                          f"cross-validated error {fs['cv_error_pct']:.1f}% per block); "
                                          "check them with lutnas validate"))
        for d in report.devices:
            for reason, count in failure_reasons(d.failed).items():
                keys = [f.block_key for f in d.failed if f.reason == reason]
                shown = ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")
                err_console.print(literal((f"{d.name}: {count} block(s) failed:", "red"), f" {reason} ({shown})"))
            if d.aborted:
                err_console.print(literal(("aborted", "red"), f" {d.name}: {d.aborted}"))
    if interrupted:
        left = [f"{d.name}: {_remaining(d)} of {d.total} blocks" for d in report.devices if _remaining(d)]
        err_console.print(literal(("interrupted", "yellow"), f": not timed yet: {'; '.join(left) or 'none'}. Run the "
                                  "same command again to time the rest (stored blocks are skipped)."))
        raise typer.Exit(EXIT_INTERRUPTED)
    if not report.ok:
        raise typer.Exit(EXIT_FAILED)


@contextmanager
def _removed_unless_filled(db: str) -> Iterator[None]:
    """Around a profile into ``db``: a SQLite file the profile creates is removed again when the profile fails
    or stops before storing its first row, so a failed first run leaves no empty store behind. A file that
    existed before, and a PostgreSQL store, are never removed."""
    path = None if "://" in db else Path(db)
    new = path is not None and not path.exists()
    try:
        yield
    except BaseException as err:  # exits 1, 2 and 130 (typer.Exit), Ctrl-C, errors
        if new and getattr(err, "exit_code", 1) != 0 and path.exists() and _holds_no_rows(path):
            for leftover in (path, *(path.with_name(path.name + s) for s in ("-wal", "-shm", "-journal"))):
                leftover.unlink(missing_ok=True)
        raise


def _holds_no_rows(path: Path) -> bool:
    """Whether the store at ``path`` has no LUT row (an empty file counts; an unreadable one does not)."""
    from lut import LutError, LutStore

    try:
        with LutStore(path, create=False) as store:
            return not any(store.count_rows().values())
    except LutError:
        return path.stat().st_size == 0


def _few_shot_fill(store, report, sources, space: str, res: tuple[int, ...], k: int) -> dict:
    """Predict the unmeasured blocks of every profiled device from ``sources``: ``{setting_id: TransferResult}``.

    A device whose profile aborted gets no predicted rows; a useless fit ends the command (exit 2) with
    the measured rows kept and nothing predicted stored. The picks for a larger K begin with those for
    a smaller one, so the message says how to go on without timing anything twice."""
    from lut import LutError
    from lut.transfer import UselessFitError, fill_from_sources
    from profiler.fleet import plan_blocks

    out = {}
    for d in report.devices:
        if d.aborted:
            continue
        try:
            out[d.setting_id] = fill_from_sources(store, d.setting_id, sources, space, res)
        except UselessFitError as err:
            more = min(2 * k, len(plan_blocks(space, res)))
            hint = (f"; the blocks timed are kept: --few-shot {more} times only the {more - k} next picks"
                    if more > k else "")
            fail(f"{d.name}: {err}{hint}", EXIT_USAGE)
        except LutError as err:
            fail(f"{d.name}: {err}", EXIT_USAGE)
    return out


def _row_counts(store, setting_id: int, space: str, res: tuple[int, ...]) -> dict[str, int]:
    """How many of the plan's blocks the setting has measured, and how many are predicted."""
    from lut.transfer import measured_keys
    from profiler.fleet import plan_blocks

    plan = {b.key for b in plan_blocks(space, res)}
    measured = measured_keys(store, setting_id) & plan
    return {"measured": len(measured), "predicted": len((store.keys(setting_id) & plan) - measured)}


def _agent_names(texts: list[str], specs: list, token: str | None, tls_ca: Path | None,
                 connect_timeout_s: float, consequence: str) -> list:
    """Ask each agent its name and name its device by :func:`lutnas._common.agent_device_name`'s rule
    (``consequence``: what NAME is used for, with ``{name}`` standing for it)."""
    from profiler.client import AgentClient, AgentError

    out = []
    for text, spec in zip(texts, specs):
        try:
            with AgentClient(spec.address, token=token, tls_ca=tls_ca, retry_s=connect_timeout_s) as client:
                reported = client.device_info().name
        except AgentError as err:
            if "=" in text:
                fail(f"device {spec.name!r}: {err}", EXIT_FAILED)
            fail(f"cannot ask {spec.address} its name ({err}); give --agent NAME=HOST:PORT", EXIT_FAILED)
        out.append(agent_device_name(text, spec, reported, consequence))
    return out


def _fidelity_table(report) -> Table:
    table = Table(title=literal(f"fidelity of {report.device}'s LUT ({report.space}, {len(report.samples)} subnets)"))
    for col in ("predictor", "RMSE ms", "RMSPE %", "MAPE %", "bias %", "within ±5%", "within ±10%"):
        table.add_column(col, justify="right" if col != "predictor" else "left")
    rows = [("raw LUT sum", report.raw)]
    if report.calibrated is not None:
        rows.append((f"calibrated ({report.calibration.kind}, held-out CV)", report.calibrated))
    for label, m in rows:
        table.add_row(literal(label), f"{m['rmse_ms']:.3f}", f"{m['rmspe']:.1f}", f"{m['mape']:.1f}", f"{m['bias']:+.1f}",
                      f"{m['within_5pct']:.0f}%", f"{m['within_10pct']:.0f}%")
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
    connect_timeout_s: float = connect_timeout_option(),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout."),
) -> None:
    """Time whole subnets on the device and check the LUT's sums against them (raw and calibrated)."""
    from lut import LutError, LutStore
    from lut.selectors import with_precision
    from profiler.validate import ValidationError, ValidationSettings, report_from_store

    try:
        spec = parse_agent_spec(agent) if agent else None
        res = resolution_option(resolutions)
        if samples < 3:
            raise ValueError(f"--samples must be >= 3, got {samples}")
        if round_stat not in ("min", "median"):
            raise ValueError(f"--round-stat must be min or median, got {round_stat!r}")
        options = parse_options(option)
        _check_calib_dir(calib_dir)
    except ValueError as err:
        fail(str(err), EXIT_USAGE)
    positive_number(connect_timeout_s, "--connect-timeout-s")
    ask = spec is not None and device is None  # the --agent's name names the device
    if ask and "=" not in agent:  # a bare address: the agent's own name is the device's
        (spec,) = _agent_names([agent], [spec], read_token(token_file), tls_ca, connect_timeout_s, "")
    name = device or (spec.name if spec else None)
    if name is None:
        fail("give --agent NAME=HOST:PORT to measure, or --device NAME to re-render stored runs", EXIT_USAGE)
    name = with_precision(name, precision)
    settings = ValidationSettings(samples=samples, rounds=rounds, seed=seed, space=space, resolutions=res,
                                  calibrate=calibrate, options=options, round_stat=round_stat,
                                  calib_dir=str(calib_dir) if calib_dir else None,
                                  connect_timeout_s=connect_timeout_s)
    try:
        store = LutStore(db, create=False)
        few_shot = predicted_note(store, find_setting(store, name))
    except LutError as err:
        fail(str(err), EXIT_USAGE)
    if ask and "=" in agent:  # NAME=ADDR: NAME is a stored device; say so if the agent calls itself otherwise
        _agent_names([agent], [spec], read_token(token_file), tls_ca, connect_timeout_s,
                     "the LUT of {name!r} is validated")
    with store:
        try:
            if spec is None:
                report = report_from_store(store, name, calibrate=calibrate, space=space, seed=seed)
            else:
                report = _validate_with_progress(store, name, spec.address, settings, read_token(token_file),
                                                 str(tls_ca) if tls_ca else None, show=not json_out)
        except (ValidationError, LutError) as err:
            fail(str(err), EXIT_FAILED)
    out = {**report.to_dict(), "few_shot": few_shot}
    if json_out:
        emit_json(out)
        return
    err_console.print(_fidelity_table(report))
    noise = report.noise
    err_console.print(f"measurement repeat noise: median {noise['repeat_median']:.1f}%, p90 {noise['repeat_p90']:.1f}%"
                      " (two independent end-to-end measurements of each subnet)")
    for text in report.notes:
        note(text)
    if report.calibration is not None:
        err_console.print(literal(f"calibration: {report.calibration.describe()}"))


def _validate_with_progress(store, name, address, settings, token, tls_ca, show: bool):
    from profiler.validate import validate

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=err_console, disable=not show) as bars:
        tasks: dict[str, int] = {}

        def on_progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                label = "export subnets" if stage == "export" else "time subnets (interleaved rounds)"
                tasks[stage] = bars.add_task(label, total=total)
            bars.update(tasks[stage], completed=done)

        return validate(store, name, address, settings, token=token, tls_ca=tls_ca, on_progress=on_progress)


def register(app: typer.Typer) -> None:
    """Add ``profile`` and ``validate``."""
    app.command("profile")(profile_cmd)
    app.command("validate")(validate_cmd)
