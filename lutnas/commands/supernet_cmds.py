"""``lutnas supernet train|collect|extract|eval``: the elastic supernet from the command line."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from lutnas._common import EXIT_FAILED, EXIT_USAGE, emit_json, err_console, fail, warn, work_failed
from lutnas._text import escape_controls, literal

from supernet.presets import DEFAULT_CALIB_IMAGES, DIGITS_PRESET

if TYPE_CHECKING:
    from supernet import ImageDataset, OFAMobileNetV3, SupernetConfig, TrainConfig, TrainEvent

__all__ = ["register"]

supernet_app = typer.Typer(
    help="The elastic OFA-MobileNetV3 supernet: progressive shrinking, accuracy data, subnet extraction.",
    no_args_is_help=True,
)

_DATASET_HELP = "'digits' (scikit-learn's 8x8 digits) or an ImageFolder directory ROOT/<class>/<image>."


def register(app: typer.Typer) -> None:
    """Add the ``supernet`` command group to ``app``."""
    app.add_typer(supernet_app, name="supernet")


# --------------------------------------------------------------------------- parsing helpers


def _int_list(text: str, flag: str) -> list[int]:
    try:
        values = [int(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        fail(f"{flag} expects comma-separated ints, got {text!r}", EXIT_USAGE)
    if not values:
        fail(f"{flag} expects at least one int, got {text!r}", EXIT_USAGE)
    return values


def _parse_epochs(text: str) -> int | list[int] | dict[str, int]:
    """``"2"`` (every phase), ``"3,1,1,1,1,1,1"`` (phase order) or ``"full=3,kernel-1=1"`` (by name)."""
    text = text.replace(" ", "")
    try:
        if "=" in text:
            pairs = (item.split("=", 1) for item in text.split(",") if item)
            return {name: int(value) for name, value in pairs}
        values = [int(v) for v in text.split(",") if v]
    except ValueError:
        fail(f"--epochs expects N, N,N,... or name=N,...; got {text!r}", EXIT_USAGE)
    if not values:
        fail(f"--epochs expects N, N,N,... or name=N,...; got {text!r}", EXIT_USAGE)
    return values[0] if len(values) == 1 else values


def _epochs_setting(text: str, preset_epochs: tuple[int, ...]) -> int | list[int] | dict[str, int]:
    """``--epochs`` merged with the preset: phases a ``name=N`` list leaves out keep the preset's epochs."""
    from supernet.train import PHASE_NAMES

    parsed = _parse_epochs(text)
    if isinstance(parsed, dict):
        return {**dict(zip(PHASE_NAMES, preset_epochs)), **parsed}
    return parsed


def _parse_arch(text: str) -> dict[str, Any]:
    """An arch dict from JSON text or from a file holding it."""
    from space.bounds import loads_json

    candidate = Path(text)
    source = text
    if not text.lstrip().startswith("{") and candidate.is_file():
        source = candidate.read_text()
    try:
        arch = loads_json(source)  # nesting bounded: one line, not a RecursionError
    except json.JSONDecodeError as err:
        fail(f"--arch must be a JSON object or a file holding one: {err.msg} at position {err.pos}", EXIT_USAGE)
    if not isinstance(arch, dict):
        fail(f"--arch must be a JSON object with ks, e, d, r; got {type(arch).__name__}", EXIT_USAGE)
    return arch


def _subnet_of(net: Any, arch: dict[str, Any]) -> Any:
    """The ``--arch`` subnet, checked against the supernet (exit 2 when it lies outside it)."""
    from space import Subnet

    try:
        sub = Subnet.parse(arch)
        net.set_active_subnet(sub)
    except ValueError as err:
        fail(f"--arch: {err}", EXIT_USAGE)
    return sub


def _load_splits(
    dataset: str, image_size: int, holdout_fraction: float, split_seed: int
) -> tuple[ImageDataset, ImageDataset]:
    from supernet import load_dataset, split_dataset

    try:
        data = load_dataset(dataset, image_size)
    except (FileNotFoundError, ValueError) as err:
        fail(f"--dataset {dataset!r}: {err}", EXIT_USAGE)
    return split_dataset(data, holdout_fraction, split_seed)


def _load_supernet(checkpoint: Path) -> tuple[OFAMobileNetV3, dict[str, Any]]:
    from supernet import CheckpointError, load_supernet

    try:
        return load_supernet(_checkpoint_file(checkpoint))
    except (FileNotFoundError, CheckpointError) as err:
        fail(f"--checkpoint: {err}", EXIT_USAGE)


def _checkpoint(path: Path) -> Any:
    from supernet import CheckpointError, load_checkpoint

    try:
        return load_checkpoint(path)
    except (FileNotFoundError, CheckpointError) as err:
        fail(f"--checkpoint: {err}", EXIT_USAGE)


def _warn_untrained_resolution(resolution: int, meta: dict[str, Any]) -> None:
    trained = meta.get("resolutions")
    if trained and resolution not in trained:
        _warn(f"the supernet was trained at r = {', '.join(map(str, trained))}, never at r = {resolution}: "
              "its accuracy there is untested (BN recalibration adapts the statistics, not the weights)")


def _set_threads(threads: int | None) -> None:
    if threads is not None:
        import torch

        if threads < 1:
            fail(f"--threads must be >= 1, got {threads}", EXIT_USAGE)
        torch.set_num_threads(threads)


def _data_settings(meta: dict[str, Any], dataset: str | None) -> tuple[str, int, float, int]:
    from supernet import DIGITS, DIGITS_PRESET

    return (
        dataset or meta.get("dataset") or DIGITS,
        int(meta.get("image_size", DIGITS_PRESET.image_size)),
        float(meta.get("holdout_fraction", DIGITS_PRESET.holdout_fraction)),
        int(meta.get("split_seed", DIGITS_PRESET.split_seed)),
    )


# --------------------------------------------------------------------------- train

_PRESET_HELP = (
    "Defaults are the small-data preset (supernet.DIGITS_PRESET), shown beside each option: a 0.25-wide "
    "OFA-MobileNetV3 trained at 12 and 16 px, 6 epochs of the full network (it becomes the distillation "
    "teacher) then 1 epoch per shrinking phase."
)
_NPROC_HELP = "Processes to run on this host (torch.distributed: gloo on CPUs, NCCL on GPUs). Under torchrun leave it at 1."
_PRESET = DIGITS_PRESET


@supernet_app.command("train", help="Train an elastic supernet with progressive shrinking (full → kernel → depth → "
                      "expand). " + _PRESET_HELP)
def train_cmd(
    ctx: typer.Context,
    out: Path = typer.Option(..., "--out", help="Directory for checkpoints (last.pt, phase*.pt, supernet.pt)."),
    dataset: str = typer.Option("digits", "--dataset", help=_DATASET_HELP),
    resume: bool = typer.Option(
        False, "--resume", help="Continue from OUT/last.pt (with the run's own settings unless flags are given)."
    ),
    epochs: str = typer.Option(
        ",".join(map(str, _PRESET.epochs)),
        "--epochs",
        help="Epochs per phase: N,N,... in phase order (full, kernel-1, kernel-2, depth-1, depth-2, expand-1, "
        "expand-2), or name=N,... for some phases (the rest keep the default), or one N for every phase.",
    ),
    resolutions: str = typer.Option(",".join(map(str, _PRESET.resolutions)), "--resolutions", help="Training sides."),
    width_mult: float = typer.Option(_PRESET.width_mult, "--width-mult", help="Channel multiplier."),
    batch_size: int = typer.Option(_PRESET.batch_size, "--batch-size", help="Images per step, over all processes."),
    lr: float = typer.Option(_PRESET.lr, "--lr", help="Peak LR of the shrinking phases."),
    full_lr: float = typer.Option(_PRESET.full_lr, "--full-lr", help="Peak LR of the full-network phase."),
    kd_ratio: float = typer.Option(_PRESET.kd_ratio, "--kd-ratio", help="Distillation weight λ in CE + λ·KD."),
    seed: int = typer.Option(0, "--seed", help="Seeds the initial weights, sampling and shuffling."),
    validate: bool = typer.Option(
        True, "--validate/--no-validate", help="Measure the largest and smallest subnet after each phase."
    ),
    threads: int | None = typer.Option(
        None, "--threads", help="torch CPU threads per process (default: the host's cores shared out over the processes)."
    ),
    nproc: int = typer.Option(1, "--nproc", help=_NPROC_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
) -> None:
    from supernet import TrainConfig, load_checkpoint
    from supernet.jobs import DataSpec, TrainJob, run_train_job
    from supernet.train import LAST_CHECKPOINT

    _check_positive(nproc, "--nproc")
    if threads is not None:
        _check_positive(threads, "--threads")
    data = DataSpec(dataset, _PRESET.image_size, _PRESET.holdout_fraction, _PRESET.split_seed)
    train_data, _ = _load_splits(data.dataset, data.image_size, data.holdout_fraction, data.split_seed)
    given = _given_options(ctx, ("epochs", "resolutions", "batch_size", "lr", "full_lr", "kd_ratio"))
    last = out / LAST_CHECKPOINT
    stored_config = None
    if resume and last.is_file():
        saved = load_checkpoint(last)
        net_config = saved.config
        if saved.meta.get("train_config") and not given:
            stored_config = TrainConfig.from_dict(saved.meta["train_config"])  # a bare --resume: the run as started
    else:
        if last.exists():
            fail(f"{out} already holds a training run; pass --resume or choose another --out", EXIT_USAGE)
        net_config = _new_supernet_config(width_mult, train_data.n_classes)
    if net_config.n_classes != train_data.n_classes:
        fail(f"the checkpoint has {net_config.n_classes} classes but --dataset has {train_data.n_classes}", EXIT_USAGE)
    config = stored_config or _train_config(net_config, epochs, resolutions, batch_size, lr, full_lr, kd_ratio, seed)
    if resume and last.is_file() and stored_config is None:
        _check_same_phases(load_checkpoint(last).meta.get("train_config"), config, last)
    try:
        config.validate(len(train_data), _world_size(nproc))
    except ValueError as err:
        fail(str(err), EXIT_USAGE)
    if "epochs" in given and "," not in epochs and "=" not in epochs:
        _warn(f"--epochs {epochs} gives every phase {epochs} epoch(s), the full-network phase that trains the "
              f"teacher too (default {_PRESET.epochs[0]}); name=N changes one phase")
    meta = {
        "dataset": dataset,
        "image_size": data.image_size,
        "holdout_fraction": data.holdout_fraction,
        "split_seed": data.split_seed,
        "class_names": list(train_data.class_names),
    }
    job = TrainJob(net_config, data, config, str(out), resume, validate, meta, threads)
    with _TrainProgress(enabled=_reports()) as on_event:
        result = _run_job(run_train_job, job, nproc, on_event)
    if result is None:
        return  # another rank of a torchrun group reports
    if json_out:
        emit_json(result.to_dict())
        return
    title = f"progressive shrinking → {result.checkpoint} ({result.processes} process(es))"
    table = Table(title=literal(title), title_justify="left")
    for column in ("phase", "epochs", "seconds", "loss", "largest %", "smallest %"):
        table.add_column(column, justify="left" if column == "phase" else "right")
    for row in result.phases:
        table.add_row(
            literal(row["name"]),
            str(row["epochs"]),
            f"{row['seconds']:.1f}",
            "-" if row["loss"] is None else f"{row['loss']:.3f}",
            _pct(row.get("val_acc_largest")),
            _pct(row.get("val_acc_smallest")),
        )
    err_console.print(table)


def _new_supernet_config(width_mult: float, n_classes: int) -> SupernetConfig:
    from supernet import OFAMobileNetV3

    try:
        return OFAMobileNetV3(width_mult=width_mult, n_classes=n_classes).config
    except ValueError as err:
        fail(f"--width-mult: {err}", EXIT_USAGE)


def _train_config(
    net_config: SupernetConfig,
    epochs: str,
    resolutions: str,
    batch_size: int,
    lr: float,
    full_lr: float,
    kd_ratio: float,
    seed: int,
) -> TrainConfig:
    from supernet import TrainConfig, progressive_shrinking_phases

    try:
        phases = progressive_shrinking_phases(
            net_config.ks_list,
            net_config.expand_ratio_list,
            net_config.depth_list,
            epochs=_epochs_setting(epochs, _PRESET.epochs),
            lr=lr,
            full_lr=full_lr,
            subnets_per_step=_PRESET.subnets_per_step,
            kd_ratio=kd_ratio,
        )
        res = tuple(_int_list(resolutions, "--resolutions"))
        return TrainConfig(phases=tuple(phases), resolutions=res, batch_size=batch_size, seed=seed)
    except ValueError as err:
        fail(str(err), EXIT_USAGE)


def _check_same_phases(stored: dict[str, Any] | None, config: TrainConfig, path: Path) -> None:
    from supernet import TrainConfig

    if stored and TrainConfig.from_dict(stored).phases != config.phases:
        fail(f"{path} was written for other phases (epochs, learning rates or KD); resume with the run's own "
             "settings (a bare --resume) or start a new --out directory", EXIT_USAGE)


def _given_options(ctx: typer.Context, names: tuple[str, ...]) -> set[str]:
    """The options among ``names`` the user set (on the command line or through the environment)."""
    # By the enum member's name: typer carries its own copy of click's ParameterSource.
    unset = {"DEFAULT", "DEFAULT_MAP"}
    return {n for n in names if getattr(ctx.get_parameter_source(n), "name", "DEFAULT") not in unset}


def _check_positive(value: int, flag: str) -> None:
    if value < 1:
        fail(f"{flag} must be >= 1, got {value}", EXIT_USAGE)


def _world_size(nproc: int) -> int:
    from supernet.distributed import launched_by_torchrun

    if launched_by_torchrun():
        if nproc > 1:
            fail("torchrun already started the processes; drop --nproc", EXIT_USAGE)
        return int(os.environ["WORLD_SIZE"])
    return nproc


def _reports() -> bool:
    """False on the ranks of a torchrun group other than 0: they stay quiet."""
    from supernet.distributed import launched_by_torchrun

    return not launched_by_torchrun() or os.environ.get("RANK") == "0"


def _run_job(runner: Callable[..., Any], job: Any, nproc: int, on_message: Callable[[Any], None] | None) -> Any:
    """Run a supernet job here or on ``nproc`` processes; a failure is one line and exit 1."""
    from supernet.distributed import LaunchError
    from supernet.jobs import run_job

    try:
        return run_job(runner, job, nproc, on_message)
    except (LaunchError, ValueError, RuntimeError, OSError) as err:
        fail(str(err), EXIT_FAILED)


def _warn(message: str) -> None:
    warn(message)  # messages quote what a checkpoint file says


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


class _TrainProgress:
    """A rich progress bar on stderr driven by ``TrainEvent``s (silent when not ``enabled``)."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled

    def __enter__(self) -> Callable[[TrainEvent], None] | None:
        if not self.enabled:
            return None
        self.progress = Progress(
            TextColumn("{task.description}", style="bold", markup=False),  # a resumed run's phases: the file's word
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err_console,
            transient=False,
        )
        self.progress.start()
        self.tasks: dict[int, Any] = {}
        return self.on_event

    def on_event(self, event: Any) -> None:
        task = self.tasks.get(event.phase_index)
        if task is None:
            label = f"{event.phase_index + 1}/{event.n_phases} {event.phase}"
            task = self.progress.add_task(escape_controls(label), total=max(event.n_steps, 1), completed=event.step, loss="-")
            self.tasks[event.phase_index] = task
        loss = "-" if event.loss is None else f"{event.loss:.3f}"
        if event.kind == "phase_end":
            self.progress.update(task, completed=max(event.n_steps, 1), loss=loss)
        else:
            self.progress.update(task, completed=event.step, loss=loss)

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.progress.stop()


# --------------------------------------------------------------------------- collect


@supernet_app.command("collect")
def collect_cmd(
    checkpoint: Path = typer.Option(
        ..., "--checkpoint", help="A supernet checkpoint, or a training --out folder (its supernet.pt is used)."
    ),
    out: Path = typer.Option(..., "--out", help="CSV to write (arch,accuracy,macs,params,precision,space)."),
    samples: int = typer.Option(100, "--samples", help="Subnets to evaluate (stratified over MACs)."),
    dataset: str | None = typer.Option(None, "--dataset", help=_DATASET_HELP + " [default: the training set]"),
    resolutions: str | None = typer.Option(None, "--resolutions", help="Sides to sample r from. [default: training]"),
    calib_images: int = typer.Option(DEFAULT_CALIB_IMAGES, "--calib-images", help="BN recalibration images per subnet."),
    precision: str = typer.Option(
        "fp32", "--precision", help="fp32, or int8: accuracy of each subnet fake-quantized (static int8, on the CPU)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seeds subnet sampling."),
    threads: int | None = typer.Option(None, "--threads", help="torch CPU threads per process."),
    nproc: int = typer.Option(1, "--nproc", help=_NPROC_HELP + " Subnets are shared out over the processes."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
) -> None:
    """Evaluate N subnets (BN recalibrated, held-out split) and write the predictor's accuracy CSV."""
    from supernet import search_space_name, write_accuracy_csv
    from supernet.jobs import CollectJob, DataSpec, run_collect_job
    from supernet.quantize import check_precision

    _check_positive(samples, "--samples")
    _check_positive(nproc, "--nproc")
    _check_positive(calib_images, "--calib-images")
    if threads is not None:
        _check_positive(threads, "--threads")
    try:
        check_precision(precision, "--precision")
    except ValueError as err:
        fail(str(err), EXIT_USAGE)
    _world_size(nproc)
    path = _checkpoint_file(checkpoint)
    ckpt = _checkpoint(path)
    meta = ckpt.meta
    spec, image_size, holdout, split_seed = _data_settings(meta, dataset)
    res_list = _int_list(resolutions, "--resolutions") if resolutions else meta.get("resolutions")
    if not res_list:
        fail("--resolutions is required for a checkpoint that does not record its training resolutions", EXIT_USAGE)
    _load_splits(spec, image_size, holdout, split_seed)  # bad --dataset fails here, before any process starts
    job = CollectJob(str(path), DataSpec(spec, image_size, holdout, split_seed), samples, tuple(res_list), seed,
                     calib_images, precision, threads)
    progress = Progress(
        TextColumn("[bold]collect"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        disable=not _reports(),
    )
    with progress:
        task = progress.add_task("collect", total=samples)

        def on_message(message: Any) -> None:
            # (done, total, result) from this process, or ("subnet", rank, done, total) from a spawned rank.
            progress.advance(task)

        results = _run_job(run_collect_job, job, nproc, on_message)
    if results is None:
        return  # another rank of a torchrun group writes the file
    space = search_space_name(ckpt.config)
    if space is None:
        _warn(f"this supernet (width {ckpt.config.width_mult:g}, {ckpt.config.n_classes} classes) is no registered "
              "search space: the CSV's space column stays empty, and no LUT can price its subnets")
    path = write_accuracy_csv(results, out, space=space)
    accs = [r.accuracy for r in results]
    summary = {
        "out": str(path),
        "samples": len(results),
        "precision": precision,
        "space": space,
        "processes": _world_size(nproc),
        "accuracy_min": min(accs),
        "accuracy_mean": sum(accs) / len(accs),
        "accuracy_max": max(accs),
        "macs_min": min(r.macs for r in results),
        "macs_max": max(r.macs for r in results),
    }
    if json_out:
        emit_json(summary)
        return
    err_console.print(literal(
        f"wrote {len(results)} subnets of {space or 'an unregistered space'} to {path}: {precision} top-1 {summary['accuracy_min']:.1f}–"
        f"{summary['accuracy_max']:.1f}% (mean {summary['accuracy_mean']:.1f}%), "
        f"MACs {summary['macs_min']:,}–{summary['macs_max']:,}"
    ))


def _checkpoint_file(path: Path) -> Path:
    """A checkpoint file, or the final checkpoint inside a training ``--out`` folder."""
    from supernet.train import FINAL_CHECKPOINT, LAST_CHECKPOINT

    if not path.is_dir():
        return path
    if (path / FINAL_CHECKPOINT).is_file():
        return path / FINAL_CHECKPOINT
    if (path / LAST_CHECKPOINT).is_file():
        fail(f"--checkpoint {path}: training has not finished ({LAST_CHECKPOINT} but no {FINAL_CHECKPOINT}); "
             f"finish it with `lutnas supernet train --out {path} --resume` or pass a phase*.pt file", EXIT_USAGE)
    fail(f"--checkpoint {path} is a folder without {FINAL_CHECKPOINT}", EXIT_USAGE)


# --------------------------------------------------------------------------- extract

_EXTRACT_FORMATS = ("pt", "onnx", "tflite")
_EXTRACT_SUFFIX_FORMAT = {".onnx": "onnx", ".tflite": "tflite"}


@supernet_app.command("extract")
def extract_cmd(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="A supernet checkpoint or a training --out folder."),
    arch: str = typer.Option(..., "--arch", help="Subnet as JSON {ks, e, d, r} or a file holding it."),
    out: Path = typer.Option(..., "--out", help="File to write."),
    fmt: str | None = typer.Option(
        None,
        "--format",
        help="pt (weights + config), onnx or tflite (NHWC), the last two as the profiler exports LUT blocks. "
        "[default: from --out suffix]",
    ),
    dataset: str | None = typer.Option(
        None, "--dataset", help="Recalibrate BN on this data first. [default: the training set when known]"
    ),
    no_calibrate: bool = typer.Option(False, "--no-calibrate", help="Keep the supernet's BN statistics."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
) -> None:
    """Extract one subnet as a standalone network (lutnas .pt file, ONNX or TFLite)."""
    from supernet import calibrated_subnet, save_subnet, subnet_complexity

    chosen = fmt or _EXTRACT_SUFFIX_FORMAT.get(out.suffix.lower(), "pt")
    if chosen not in _EXTRACT_FORMATS:
        fail(f"--format must be one of {', '.join(_EXTRACT_FORMATS)}, got {chosen!r}", EXIT_USAGE)
    arch_dict = _parse_arch(arch)
    net, meta = _load_supernet(checkpoint)
    sub = _subnet_of(net, arch_dict)
    _warn_untrained_resolution(sub.r, meta)
    calibrated = False
    if not no_calibrate and (dataset or meta.get("dataset")):
        spec, image_size, holdout, split_seed = _data_settings(meta, dataset)
        train_data, _ = _load_splits(spec, image_size, holdout, split_seed)
        subnet = calibrated_subnet(net, sub, train_data)
        calibrated = True
    else:
        subnet = net.get_active_subnet().eval()
    out.parent.mkdir(parents=True, exist_ok=True)
    if chosen == "pt":
        save_subnet(subnet, out)
    else:
        from profiler.export import export_module

        model = subnet.block_model(sub.r)  # the subnet's own layers, as the profiler exports its blocks
        try:
            data = export_module(model, model.input_shape, chosen)
        except ValueError as err:
            fail(f"{chosen} export failed: {err}", EXIT_FAILED)
        out.write_bytes(data)
    macs, params = subnet_complexity(net.config, sub)
    summary = {
        "out": str(out),
        "format": chosen,
        "arch": sub.to_arch(),
        "macs": macs,
        "params": params,
        "bn_recalibrated": calibrated,
    }
    if json_out:
        emit_json(summary)
        return
    err_console.print(literal(f"wrote {chosen} subnet to {out} ({macs:,} MACs, {params:,} params)"))


# --------------------------------------------------------------------------- eval


@supernet_app.command("eval")
def eval_cmd(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="A supernet checkpoint or a training --out folder."),
    arch: str = typer.Option(..., "--arch", help="Subnet as JSON {ks, e, d, r} or a file holding it."),
    dataset: str | None = typer.Option(None, "--dataset", help=_DATASET_HELP + " [default: the training set]"),
    calib_images: int = typer.Option(DEFAULT_CALIB_IMAGES, "--calib-images", help="BN recalibration images."),
    threads: int | None = typer.Option(None, "--threads", help="torch CPU threads."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
) -> None:
    """Top-1 accuracy of one subnet on the held-out split, after BN recalibration."""
    from supernet import evaluate_subnet

    _set_threads(threads)
    arch_dict = _parse_arch(arch)
    net, meta = _load_supernet(checkpoint)
    sub = _subnet_of(net, arch_dict)
    spec, image_size, holdout, split_seed = _data_settings(meta, dataset)
    train_data, hold_data = _load_splits(spec, image_size, holdout, split_seed)
    if train_data.n_classes != net.n_classes:
        fail(f"--dataset has {train_data.n_classes} classes but the supernet has {net.n_classes}", EXIT_USAGE)
    with work_failed("evaluation"):
        result = evaluate_subnet(net, sub, train_data, hold_data, calib_images)
    if json_out:
        emit_json({**result.to_dict(), "dataset": spec, "eval_images": len(hold_data)})
        return
    table = Table(show_header=False)
    table.add_row("top-1", literal(f"{result.accuracy:.2f}% on {len(hold_data)} held-out images of {spec}"))
    table.add_row("MACs", f"{result.macs:,}")
    table.add_row("params", f"{result.params:,}")
    table.add_row("arch", json.dumps(result.arch, separators=(",", ":")))
    err_console.print(table)
