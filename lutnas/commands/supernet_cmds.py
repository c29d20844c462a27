"""``lutnas supernet train|collect|extract|eval``: the elastic supernet from the command line."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from lutnas._common import EXIT_FAILED, EXIT_USAGE, emit_json, err_console, fail

if TYPE_CHECKING:
    from supernet import ImageDataset, OFAMobileNetV3, TrainEvent

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


def _epochs_setting(text: str | None, preset_epochs: tuple[int, ...]) -> int | list[int] | dict[str, int]:
    """``--epochs`` merged with the preset: phases a ``name=N`` list leaves out keep the preset's epochs."""
    from supernet.train import PHASE_NAMES

    if not text:
        return list(preset_epochs)
    parsed = _parse_epochs(text)
    if isinstance(parsed, dict):
        return {**dict(zip(PHASE_NAMES, preset_epochs)), **parsed}
    return parsed


def _parse_arch(text: str) -> dict[str, Any]:
    """An arch dict from JSON text or from a file holding it."""
    candidate = Path(text)
    source = text
    if not text.lstrip().startswith("{") and candidate.is_file():
        source = candidate.read_text()
    try:
        arch = json.loads(source)
    except json.JSONDecodeError as err:
        fail(f"--arch must be a JSON object or a file holding one: {err.msg} at position {err.pos}", EXIT_USAGE)
    if not isinstance(arch, dict):
        fail(f"--arch must be a JSON object with ks, e, d, r; got {type(arch).__name__}", EXIT_USAGE)
    return arch


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
        return load_supernet(checkpoint)
    except (FileNotFoundError, CheckpointError) as err:
        fail(f"--checkpoint: {err}", EXIT_USAGE)


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


@supernet_app.command("train")
def train_cmd(
    out: Path = typer.Option(..., "--out", help="Directory for checkpoints (last.pt, phase*.pt, supernet.pt)."),
    dataset: str = typer.Option("digits", "--dataset", help=_DATASET_HELP),
    resume: bool = typer.Option(
        False, "--resume", help="Continue from OUT/last.pt (with the run's own settings unless flags are given)."
    ),
    epochs: str | None = typer.Option(
        None, "--epochs", help="Epochs per phase: N, or N,N,... in phase order, or name=N,... [default: preset]"
    ),
    resolutions: str | None = typer.Option(None, "--resolutions", help="Comma-separated sides. [default: preset]"),
    width_mult: float | None = typer.Option(None, "--width-mult", help="Channel multiplier. [default: preset]"),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Images per step. [default: preset]"),
    lr: float | None = typer.Option(None, "--lr", help="Peak LR of the shrinking phases. [default: preset]"),
    full_lr: float | None = typer.Option(None, "--full-lr", help="Peak LR of the full-network phase."),
    kd_ratio: float | None = typer.Option(None, "--kd-ratio", help="Distillation weight λ in CE + λ·KD."),
    seed: int = typer.Option(0, "--seed", help="Seeds sampling and shuffling."),
    validate: bool = typer.Option(
        True, "--validate/--no-validate", help="Measure the largest and smallest subnet after each phase."
    ),
    threads: int | None = typer.Option(None, "--threads", help="torch CPU threads (1 is fastest on a busy host)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
) -> None:
    """Train an elastic supernet with progressive shrinking (full → kernel → depth → expand)."""
    from supernet import (
        DIGITS_PRESET,
        OFAMobileNetV3,
        TrainConfig,
        load_checkpoint,
        progressive_shrinking_phases,
        train_supernet,
    )
    from supernet.train import LAST_CHECKPOINT

    _set_threads(threads)
    preset = DIGITS_PRESET
    res_list = _int_list(resolutions, "--resolutions") if resolutions else list(preset.resolutions)
    train_data, hold_data = _load_splits(dataset, preset.image_size, preset.holdout_fraction, preset.split_seed)
    last = out / LAST_CHECKPOINT
    stored_config = None
    if resume and last.is_file():
        saved = load_checkpoint(last)
        net = saved.build()
        if saved.meta.get("train_config") and not any((epochs, resolutions, batch_size, lr, full_lr, kd_ratio)):
            stored_config = TrainConfig.from_dict(saved.meta["train_config"])
    else:
        if out.exists() and (out / LAST_CHECKPOINT).exists() and not resume:
            fail(f"{out} already holds a training run; pass --resume or choose another --out", EXIT_USAGE)
        net = OFAMobileNetV3(width_mult=width_mult or preset.width_mult, n_classes=train_data.n_classes)
    if net.n_classes != train_data.n_classes:
        fail(f"the checkpoint has {net.n_classes} classes but --dataset has {train_data.n_classes}", EXIT_USAGE)
    try:
        phases = progressive_shrinking_phases(
            net.ks_list,
            net.expand_ratio_list,
            net.depth_list,
            epochs=_epochs_setting(epochs, preset.epochs),
            lr=lr if lr is not None else preset.lr,
            full_lr=full_lr if full_lr is not None else preset.full_lr,
            subnets_per_step=preset.subnets_per_step,
            kd_ratio=kd_ratio if kd_ratio is not None else preset.kd_ratio,
        )
        config = TrainConfig(
            phases=tuple(phases),
            resolutions=tuple(res_list),
            batch_size=batch_size or preset.batch_size,
            seed=seed,
        )
    except ValueError as err:
        fail(str(err), EXIT_USAGE)
    if stored_config is not None:
        config = stored_config  # a bare --resume continues the run as it was started
    meta = {
        "dataset": dataset,
        "image_size": preset.image_size,
        "holdout_fraction": preset.holdout_fraction,
        "split_seed": preset.split_seed,
        "class_names": list(train_data.class_names),
    }
    with _TrainProgress() as on_event:
        try:
            result = train_supernet(
                net,
                train_data,
                config,
                out_dir=out,
                resume=resume,
                val_data=hold_data if validate else None,
                progress=on_event,
                meta=meta,
            )
        except ValueError as err:
            fail(str(err), EXIT_USAGE)
    if json_out:
        emit_json(result.to_dict())
        return
    table = Table(title=f"progressive shrinking → {result.checkpoint}", title_justify="left")
    for column in ("phase", "epochs", "seconds", "loss", "largest %", "smallest %"):
        table.add_column(column, justify="left" if column == "phase" else "right")
    for row in result.phases:
        table.add_row(
            row["name"],
            str(row["epochs"]),
            f"{row['seconds']:.1f}",
            "-" if row["loss"] is None else f"{row['loss']:.3f}",
            _pct(row.get("val_acc_largest")),
            _pct(row.get("val_acc_smallest")),
        )
    err_console.print(table)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


class _TrainProgress:
    """A rich progress bar on stderr driven by ``TrainEvent``s."""

    def __enter__(self) -> Callable[[TrainEvent], None]:
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
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
            task = self.progress.add_task(label, total=max(event.n_steps, 1), completed=event.step, loss="-")
            self.tasks[event.phase_index] = task
        loss = "-" if event.loss is None else f"{event.loss:.3f}"
        if event.kind == "phase_end":
            self.progress.update(task, completed=max(event.n_steps, 1), loss=loss)
        else:
            self.progress.update(task, completed=event.step, loss=loss)

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


# --------------------------------------------------------------------------- collect


@supernet_app.command("collect")
def collect_cmd(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="A supernet checkpoint (supernet.pt)."),
    out: Path = typer.Option(..., "--out", help="CSV to write (arch,accuracy,macs,params)."),
    samples: int = typer.Option(100, "--samples", help="Subnets to evaluate (stratified over MACs)."),
    dataset: str | None = typer.Option(None, "--dataset", help=_DATASET_HELP + " [default: the training set]"),
    resolutions: str | None = typer.Option(None, "--resolutions", help="Sides to sample r from. [default: training]"),
    calib_images: int | None = typer.Option(None, "--calib-images", help="BN recalibration images per subnet."),
    seed: int = typer.Option(0, "--seed", help="Seeds subnet sampling."),
    threads: int | None = typer.Option(None, "--threads", help="torch CPU threads."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
) -> None:
    """Evaluate N subnets (BN recalibrated, held-out split) and write the predictor's accuracy CSV."""
    from supernet import collect_accuracy_data, write_accuracy_csv
    from supernet.evaluate import DEFAULT_CALIB_IMAGES

    if samples < 1:
        fail(f"--samples must be >= 1, got {samples}", EXIT_USAGE)
    _set_threads(threads)
    net, meta = _load_supernet(checkpoint)
    spec, image_size, holdout, split_seed = _data_settings(meta, dataset)
    res_list = _int_list(resolutions, "--resolutions") if resolutions else meta.get("resolutions")
    if not res_list:
        fail("--resolutions is required for a checkpoint that does not record its training resolutions", EXIT_USAGE)
    train_data, hold_data = _load_splits(spec, image_size, holdout, split_seed)
    progress = Progress(
        TextColumn("[bold]collect"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
    )
    with progress:
        task = progress.add_task("collect", total=samples)
        results = collect_accuracy_data(
            net,
            train_data,
            hold_data,
            samples,
            res_list,
            seed=seed,
            calib_images=calib_images or DEFAULT_CALIB_IMAGES,
            progress=lambda done, total, _r: progress.update(task, completed=done, total=total),
        )
    path = write_accuracy_csv(results, out)
    accs = [r.accuracy for r in results]
    summary = {
        "out": str(path),
        "samples": len(results),
        "accuracy_min": min(accs),
        "accuracy_mean": sum(accs) / len(accs),
        "accuracy_max": max(accs),
        "macs_min": min(r.macs for r in results),
        "macs_max": max(r.macs for r in results),
    }
    if json_out:
        emit_json(summary)
        return
    err_console.print(
        f"wrote {len(results)} subnets to {path}: top-1 {summary['accuracy_min']:.1f}–{summary['accuracy_max']:.1f}% "
        f"(mean {summary['accuracy_mean']:.1f}%), MACs {summary['macs_min']:,}–{summary['macs_max']:,}",
        highlight=False,
    )


# --------------------------------------------------------------------------- extract

_EXTRACT_FORMATS = ("pt", "onnx", "tflite")
_EXTRACT_SUFFIX_FORMAT = {".onnx": "onnx", ".tflite": "tflite"}


@supernet_app.command("extract")
def extract_cmd(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="A supernet checkpoint."),
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
    from space import Subnet
    from supernet import calibrated_subnet, save_subnet, subnet_complexity

    chosen = fmt or _EXTRACT_SUFFIX_FORMAT.get(out.suffix.lower(), "pt")
    if chosen not in _EXTRACT_FORMATS:
        fail(f"--format must be one of {', '.join(_EXTRACT_FORMATS)}, got {chosen!r}", EXIT_USAGE)
    arch_dict = _parse_arch(arch)
    net, meta = _load_supernet(checkpoint)
    try:
        sub = Subnet.parse(arch_dict)
        net.set_active_subnet(sub)
    except ValueError as err:
        fail(f"--arch: {err}", EXIT_USAGE)
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
    err_console.print(f"wrote {chosen} subnet to {out} ({macs:,} MACs, {params:,} params)", highlight=False)


# --------------------------------------------------------------------------- eval


@supernet_app.command("eval")
def eval_cmd(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="A supernet checkpoint."),
    arch: str = typer.Option(..., "--arch", help="Subnet as JSON {ks, e, d, r} or a file holding it."),
    dataset: str | None = typer.Option(None, "--dataset", help=_DATASET_HELP + " [default: the training set]"),
    calib_images: int | None = typer.Option(None, "--calib-images", help="BN recalibration images."),
    threads: int | None = typer.Option(None, "--threads", help="torch CPU threads."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
) -> None:
    """Top-1 accuracy of one subnet on the held-out split, after BN recalibration."""
    from supernet import evaluate_subnet
    from supernet.evaluate import DEFAULT_CALIB_IMAGES

    _set_threads(threads)
    arch_dict = _parse_arch(arch)
    net, meta = _load_supernet(checkpoint)
    spec, image_size, holdout, split_seed = _data_settings(meta, dataset)
    train_data, hold_data = _load_splits(spec, image_size, holdout, split_seed)
    if train_data.n_classes != net.n_classes:
        fail(f"--dataset has {train_data.n_classes} classes but the supernet has {net.n_classes}", EXIT_USAGE)
    try:
        result = evaluate_subnet(net, arch_dict, train_data, hold_data, calib_images or DEFAULT_CALIB_IMAGES)
    except ValueError as err:
        fail(f"--arch: {err}", EXIT_USAGE)
    if json_out:
        emit_json({**result.to_dict(), "dataset": spec, "eval_images": len(hold_data)})
        return
    table = Table(show_header=False)
    table.add_row("top-1", f"{result.accuracy:.2f}% on {len(hold_data)} held-out images of {spec}")
    table.add_row("MACs", f"{result.macs:,}")
    table.add_row("params", f"{result.params:,}")
    table.add_row("arch", json.dumps(result.arch, separators=(",", ":")))
    err_console.print(table)
