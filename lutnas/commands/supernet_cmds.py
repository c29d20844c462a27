"""``lutnas supernet train|collect|extract|eval``: parse the flags, make one :mod:`supernet.runs` call, render."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from lutnas._calls import flag_errors
from lutnas._common import resolution_option, show, tell, warn
from lutnas._options import JSON
from lutnas._progress import rich_progress
from lutnas.views import supernet as view

from supernet.presets import DEFAULT_CALIB_IMAGES, DIGITS_PRESET

__all__ = ["register"]

supernet_app = typer.Typer(
    help="Elastic OFA supernets (MobileNetV3, ProxylessNAS, ResNet50): progressive shrinking, accuracy data, "
    "subnet extraction.",
    no_args_is_help=True,
)

_DATASET_HELP = "'digits' (scikit-learn's 8x8 digits) or an ImageFolder directory ROOT/<class>/<image>."
_PRESET_HELP = (
    "Defaults are the small-data preset (supernet.DIGITS_PRESET), shown beside each option: a 0.25-wide "
    "OFA-MobileNetV3 trained at 12 and 16 px, 6 epochs of the full network (it becomes the distillation "
    "teacher) then 1 epoch per shrinking phase. Off a terminal, progress is a line per tenth of each phase."
)
_NPROC_HELP = "Processes to run on this host (torch.distributed: gloo on CPUs, NCCL on GPUs). Under torchrun leave it at 1."
_PRESET = DIGITS_PRESET


def register(app: typer.Typer) -> None:
    """Add the ``supernet`` command group to ``app``."""
    app.add_typer(supernet_app, name="supernet")


def _preset(flag: str, help_text: str, value: Any, default: Any = None) -> Any:
    """An option whose default (None or []) means the preset's value, shown in its help."""
    shown = ",".join(map(str, value)) if isinstance(value, tuple) else value
    return typer.Option(default, flag, show_default=False, help=f"{help_text} \\[default: {shown}]")  # \\[ is not markup


def _old_resolution() -> Any:
    # The singular spelling profile also takes; hidden so the help shows one name per flag.
    return typer.Option([], "--resolution", hidden=True)


# --------------------------------------------------------------------------- train


@supernet_app.command("train", help="Train an elastic supernet with progressive shrinking (full → kernel → depth → "
                      "expand). " + _PRESET_HELP)
def train_cmd(
    ctx: typer.Context,
    out: Path = typer.Option(..., "--out", help="Directory for checkpoints (last.pt, phase*.pt, supernet.pt)."),
    dataset: str = typer.Option("digits", "--dataset", help=_DATASET_HELP),
    family: str | None = typer.Option(
        None, "--family", help="Supernet family: ofa-mbv3 (default), ofa-proxyless or ofa-resnet50 (phases full, "
        "depth-1, depth-2, expand-1, expand-2, width-1, width-2: no kernel); each has its digits-scale preset. "
        "A resumed run keeps its own."
    ),
    resume: bool = typer.Option(
        False, "--resume", help="Continue from OUT/last.pt (with the run's own settings unless flags are given)."
    ),
    epochs: str | None = _preset("--epochs", "Epochs per phase: N,N,... in phase order (full, kernel-1, kernel-2, "
                                 "depth-1, depth-2, expand-1, expand-2), or name=N,... for some phases (the rest keep "
                                 "the default), or one N for every phase.", _PRESET.epochs),
    resolutions: list[str] = _preset("--resolutions", "Training sides, e.g. 12,16 or 12-24:4.", _PRESET.resolutions, []),
    resolution: list[str] = _old_resolution(),
    width_mult: float | None = _preset("--width-mult", "Channel multiplier.", _PRESET.width_mult),
    batch_size: int | None = _preset("--batch-size", "Images per step, over all processes.", _PRESET.batch_size),
    lr: float | None = _preset("--lr", "Peak LR of the shrinking phases.", _PRESET.lr),
    full_lr: float | None = _preset("--full-lr", "Peak LR of the full-network phase.", _PRESET.full_lr),
    kd_ratio: float | None = _preset("--kd-ratio", "Distillation weight λ in CE + λ·KD.", _PRESET.kd_ratio),
    seed: int = typer.Option(0, "--seed", help="Seeds the initial weights, sampling and shuffling."),
    validate: bool = typer.Option(
        True, "--validate/--no-validate", help="Measure the largest and smallest subnet after each phase."
    ),
    threads: int | None = typer.Option(
        None, "--threads", help="torch CPU threads per process (default: the host's cores shared out over the processes)."
    ),
    nproc: int = typer.Option(1, "--nproc", help=_NPROC_HELP),
    json_out: bool = JSON,
) -> None:
    from supernet.runs import train

    with flag_errors(ctx):
        res = resolution_option([*resolutions, *resolution]) or None
        parsed_epochs = None if epochs is None else _parse_epochs(epochs)
        if isinstance(parsed_epochs, int):
            warn(f"--epochs {epochs} gives every phase {epochs} epoch(s), the full-network phase that trains the "
                 f"teacher too (default {_PRESET.epochs[0]}); name=N changes one phase")
        with rich_progress() as progress:
            report = train(out, dataset=dataset, family=family, resume=resume, epochs=parsed_epochs, resolutions=res,
                           width_mult=width_mult, batch_size=batch_size, lr=lr, full_lr=full_lr, kd_ratio=kd_ratio,
                           seed=seed, validate=validate, threads=threads, nproc=nproc, progress=progress)
    if report is not None:  # else another rank of a torchrun group reports
        show(report, json_out, view.render_train)


def _parse_epochs(text: str) -> int | list[int] | dict[str, int]:
    """``"2"`` (every phase), ``"3,1,1,1,1,1,1"`` (phase order) or ``"full=3,kernel-1=1"`` (by name)."""
    text = text.replace(" ", "")
    message = f"--epochs expects N, N,N,... or name=N,...; got {text!r}"
    try:
        if "=" in text:
            return {name: int(value) for name, value in (item.split("=", 1) for item in text.split(",") if item)}
        values = [int(v) for v in text.split(",") if v]
    except ValueError:
        raise ValueError(message) from None
    if not values:
        raise ValueError(message)
    return values[0] if len(values) == 1 else values


# --------------------------------------------------------------------------- collect


@supernet_app.command("collect")
def collect_cmd(
    ctx: typer.Context,
    checkpoint: Path = typer.Option(
        ..., "--checkpoint", help="A supernet checkpoint, or a training --out folder (its supernet.pt is used)."
    ),
    out: Path = typer.Option(..., "--out", help="CSV to write (arch,accuracy,macs,params,precision,space)."),
    samples: int = typer.Option(100, "--samples", help="Subnets to evaluate (stratified over MACs)."),
    dataset: str | None = typer.Option(None, "--dataset", help=_DATASET_HELP + " [default: the training set]"),
    resolutions: list[str] = typer.Option([], "--resolutions", show_default=False, help="Sides to sample r from, "
                                          "e.g. 12,16 or 12-24:4. \\[default: the training sides]"),
    resolution: list[str] = _old_resolution(),
    calib_images: int = typer.Option(DEFAULT_CALIB_IMAGES, "--calib-images", help="BN recalibration images per subnet."),
    precision: str = typer.Option(
        "fp32", "--precision", help="fp32, or int8: accuracy of each subnet fake-quantized (static int8, on the CPU)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seeds subnet sampling."),
    threads: int | None = typer.Option(None, "--threads", help="torch CPU threads per process."),
    nproc: int = typer.Option(1, "--nproc", help=_NPROC_HELP + " Subnets are shared out over the processes."),
    json_out: bool = JSON,
) -> None:
    """Evaluate N subnets (BN recalibrated, held-out split) and write the predictor's accuracy CSV."""
    from supernet.runs import collect

    with flag_errors(ctx):
        res = resolution_option([*resolutions, *resolution]) or None
        with rich_progress() as progress:
            report = collect(checkpoint, out, samples=samples, dataset=dataset, resolutions=res,
                             calib_images=calib_images, precision=precision, seed=seed, threads=threads, nproc=nproc,
                             progress=progress)
    if report is not None:  # else another rank of a torchrun group writes the file
        tell(report)
        show(report, json_out, view.render_collect)


# --------------------------------------------------------------------------- extract and eval


@supernet_app.command("extract")
def extract_cmd(
    ctx: typer.Context,
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
    json_out: bool = JSON,
) -> None:
    """Extract one subnet as a standalone network (lutnas .pt file, ONNX or TFLite)."""
    from lutnas._supernet import extract_subnet

    with flag_errors(ctx):
        report = extract_subnet(checkpoint, _parse_arch(arch), out, format=fmt, dataset=dataset,
                                calibrate=not no_calibrate)
    tell(report)
    show(report, json_out, view.render_extract)


@supernet_app.command("eval")
def eval_cmd(
    ctx: typer.Context,
    checkpoint: Path = typer.Option(..., "--checkpoint", help="A supernet checkpoint or a training --out folder."),
    arch: str = typer.Option(..., "--arch", help="Subnet as JSON {ks, e, d, r} or a file holding it."),
    dataset: str | None = typer.Option(None, "--dataset", help=_DATASET_HELP + " [default: the training set]"),
    calib_images: int = typer.Option(DEFAULT_CALIB_IMAGES, "--calib-images", help="BN recalibration images."),
    threads: int | None = typer.Option(None, "--threads", help="torch CPU threads."),
    json_out: bool = JSON,
) -> None:
    """Top-1 accuracy of one subnet on the held-out split, after BN recalibration."""
    from supernet.runs import evaluate

    with flag_errors(ctx):
        report = evaluate(checkpoint, _parse_arch(arch), dataset=dataset, calib_images=calib_images, threads=threads)
    show(report, json_out, view.render_eval)


# --------------------------------------------------------------------------- shared


def _parse_arch(text: str) -> dict[str, Any]:
    """An arch dict from JSON text or from a file holding it (the library checks it against the supernet)."""
    from space.bounds import loads_json

    source = text
    if not text.lstrip().startswith("{") and Path(text).is_file():
        source = Path(text).read_text()
    try:
        arch = loads_json(source)  # nesting bounded: one line, not a RecursionError
    except json.JSONDecodeError as err:
        raise ValueError(f"--arch must be a JSON object or a file holding one: {err.msg} at position {err.pos}") from None
    if not isinstance(arch, dict):
        raise ValueError(f"--arch must be a JSON object with ks, e, d, r; got {type(arch).__name__}")
    return arch

