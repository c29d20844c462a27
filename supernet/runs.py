"""The ``lutnas supernet train|collect|extract|eval`` commands as library calls.

Each call takes paths and plain settings, does the command's whole work and returns a report whose
``to_dict()`` is the command's ``--json`` document; ``lutnas`` re-exports them as ``train_supernet``,
``collect_accuracies``, ``extract_subnet`` and ``evaluate_subnet``. Long calls report progress through
``progress(task, done, total)``; nothing is printed. (The in-memory building blocks they drive,
:func:`supernet.train_supernet` and :func:`supernet.evaluate_subnet`, take a module and datasets instead.)

Errors: bad input raises ValueError (FileNotFoundError for a missing checkpoint) naming the argument, before
any work starts; a failure of the work itself raises :class:`RunError`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from space import Subnet

from supernet.checkpoint import SupernetCheckpoint, load_checkpoint
from supernet.evaluate import DEFAULT_CALIB_IMAGES, SubnetResult
from supernet.jobs import DataSpec
from supernet.presets import DIGITS_PRESET, SmallDataPreset, check_family, digits_preset
from supernet.train import FINAL_CHECKPOINT, LAST_CHECKPOINT, Phase, TrainConfig, TrainEvent

__all__ = [
    "EXTRACT_FORMATS",
    "CollectReport",
    "EvalReport",
    "Exporter",
    "ExtractReport",
    "Progress",
    "RunError",
    "TrainReport",
    "checkpoint_file",
    "collect",
    "phase_names",
    "evaluate",
    "extract",
    "train",
]

#: ``progress(task, done, total)``: the same task text for the same bar; total None when unknown.
Progress = Callable[[str, int, "int | None"], None]
#: Writes a module made of :mod:`layers` as model bytes: ``exporter(module, nchw_input_shape, format)``
#: (``profiler.export.export_module``, which ``lutnas.extract_subnet`` passes).
Exporter = Callable[[Any, Sequence[int], str], bytes]

#: ``extract`` writes these: lutnas's own ``.pt`` (weights and config), or the profiler's ONNX and TFLite.
EXTRACT_FORMATS = ("pt", "onnx", "tflite")
_SUFFIX_FORMAT = {".onnx": "onnx", ".tflite": "tflite"}
_PRESET = DIGITS_PRESET  # the settings train uses where a caller gives none


class RunError(RuntimeError):
    """The work itself failed (its input had passed the checks); the message names what failed and why."""


# --------------------------------------------------------------------------- reports


@dataclass(frozen=True)
class TrainReport:
    """What :func:`train` did: per phase its epochs, seconds, last loss and validation accuracies."""

    phases: tuple[dict[str, Any], ...]  # name, epochs, seconds, loss, val_acc_largest, val_acc_smallest
    seconds: float  # wall time of this call
    checkpoint: str | None  # the final checkpoint (OUT/supernet.pt)
    processes: int  # ranks that trained together

    def to_dict(self) -> dict[str, Any]:
        """The ``supernet train --json`` document."""
        return {"phases": list(self.phases), "seconds": self.seconds, "checkpoint": self.checkpoint,
                "processes": self.processes}


@dataclass(frozen=True)
class CollectReport:
    """What :func:`collect` wrote: the CSV, its subnets and their accuracy and MAC ranges."""

    out: str  # the CSV
    precision: str  # fp32 or int8
    space: str | None  # the registered search space of the supernet's subnets (None: none matches)
    processes: int
    results: tuple[SubnetResult, ...]  # one per subnet, as written
    warnings: tuple[str, ...] = ()  # things the caller should be told (not in to_dict)

    def to_dict(self) -> dict[str, Any]:
        """The ``supernet collect --json`` document."""
        accs = [r.accuracy for r in self.results]
        return {
            "out": self.out,
            "samples": len(self.results),
            "precision": self.precision,
            "space": self.space,
            "processes": self.processes,
            "accuracy_min": min(accs),
            "accuracy_mean": sum(accs) / len(accs),
            "accuracy_max": max(accs),
            "macs_min": min(r.macs for r in self.results),
            "macs_max": max(r.macs for r in self.results),
        }


@dataclass(frozen=True)
class ExtractReport:
    """What :func:`extract` wrote."""

    out: str
    format: str  # pt, onnx or tflite
    arch: dict[str, Any]  # the subnet, canonical
    macs: int
    params: int
    bn_recalibrated: bool  # BN statistics re-estimated on the training images first
    warnings: tuple[str, ...] = ()  # not in to_dict

    def to_dict(self) -> dict[str, Any]:
        """The ``supernet extract --json`` document."""
        return {"out": self.out, "format": self.format, "arch": self.arch, "macs": self.macs, "params": self.params,
                "bn_recalibrated": self.bn_recalibrated}


@dataclass(frozen=True)
class EvalReport:
    """One subnet's top-1 accuracy on the held-out split (after BN recalibration)."""

    result: SubnetResult  # arch, accuracy (percent), MACs, params, precision
    dataset: str  # "digits" or the image folder
    eval_images: int  # held-out images measured on

    def to_dict(self) -> dict[str, Any]:
        """The ``supernet eval --json`` document."""
        return {**self.result.to_dict(), "dataset": self.dataset, "eval_images": self.eval_images}


# --------------------------------------------------------------------------- train


def train(
    out: str | os.PathLike[str],
    *,
    dataset: str = "digits",
    family: str | None = None,
    resume: bool = False,
    epochs: int | Sequence[int] | Mapping[str, int] | None = None,
    resolutions: Sequence[int] | None = None,
    width_mult: float | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    full_lr: float | None = None,
    kd_ratio: float | None = None,
    seed: int = 0,
    validate: bool = True,
    threads: int | None = None,
    nproc: int = 1,
    progress: Progress | None = None,
) -> TrainReport | None:
    """Train an elastic OFA supernet with progressive shrinking (MobileNetV3 and ProxylessNAS: full, kernel,
    depth, expand; ResNet50: full, depth, expand, width).

    Settings left None take the family's small-data preset (:func:`supernet.digits_preset`); on ``resume`` with
    none of them given the run continues with its own settings.

    Args:
        out: Directory for checkpoints (``last.pt`` after every epoch, ``phase*.pt``, ``supernet.pt``).
        dataset: ``"digits"`` or an ImageFolder directory ``ROOT/<class>/<image>``.
        family: ``ofa-mbv3`` (default), ``ofa-proxyless`` or ``ofa-resnet50``; a resumed run keeps its own.
        resume: Continue from ``out/last.pt``; without it, a directory holding a run is refused.
        epochs: Per phase: one int for every phase, a list in phase order, or ``{phase name: epochs}``
            (the phases it leaves out keep the preset's).
        resolutions: Training sides; width_mult, batch_size, lr, full_lr, kd_ratio: as in the preset.
        seed: Seeds the initial weights, sampling and shuffling.
        validate: Measure the largest and smallest subnet after each phase.
        threads: torch CPU threads per process (default: the cores shared out over the processes).
        nproc: Processes on this host (torch.distributed); under torchrun leave it at 1.
        progress: Called with one task per phase (``"phase 1/7 full, 6 epochs"``) and its steps.

    Returns:
        The report; None on the ranks of a torchrun group that do not report.

    Raises:
        ValueError: bad settings, dataset or resume state. RunError: training failed.
    """
    _check_counts(nproc=nproc, threads=threads)
    if family is not None:
        check_family(family)
    world = _world_size(nproc)
    data = DataSpec(dataset, _PRESET.image_size, _PRESET.holdout_fraction, _PRESET.split_seed)
    train_data, _ = _load_splits(data)
    settings = {"epochs": epochs, "resolutions": resolutions, "batch_size": batch_size, "lr": lr,
                "full_lr": full_lr, "kd_ratio": kd_ratio}
    net_config, config, position = _train_plan(Path(out), resume, family, width_mult, train_data.n_classes,
                                               settings, seed)
    config.validate(len(train_data), world)
    from supernet._family import config_family

    meta = {"dataset": dataset, "family": config_family(net_config), "image_size": data.image_size, "holdout_fraction": data.holdout_fraction,
            "split_seed": data.split_seed, "class_names": list(train_data.class_names)}
    from supernet.jobs import TrainJob, run_train_job

    job = TrainJob(net_config, data, config, str(out), resume, validate, meta, threads)
    steps = (len(train_data) // world) // (config.batch_size // world)
    on_event = _PhaseProgress(progress, config.phases, steps, position) if progress and _reports_here() else None
    result = _run(run_train_job, job, nproc, on_event)
    if result is None:
        return None
    checkpoint = None if result.checkpoint is None else str(result.checkpoint)
    return TrainReport(tuple(result.phases), result.seconds, checkpoint, result.processes)


def _train_plan(
    out: Path, resume: bool, family: str | None, width_mult: float | None, n_classes: int, settings: dict[str, Any],
    seed: int,
) -> tuple[Any, TrainConfig, tuple[int, int]]:
    """The supernet's config, the training config and where a resumed run stands (phase, epoch)."""
    last = out / LAST_CHECKPOINT
    saved = load_checkpoint(last) if resume and last.is_file() else None
    if saved is None and last.exists():
        raise ValueError(f"out {out} already holds a training run; pass resume=True or choose another out")
    if saved is not None and family is not None and saved.family != family:
        raise ValueError(f"family: {last} is a run of {saved.family}, got {family}")
    net_config = saved.config if saved else _new_supernet_config(family or "ofa-mbv3", width_mult, n_classes)
    if net_config.n_classes != n_classes:
        raise ValueError(f"dataset has {n_classes} classes but the checkpoint has {net_config.n_classes}")
    stored = saved.meta.get("train_config") if saved else None
    given = any(value is not None for value in settings.values())
    if stored and not given:
        config = TrainConfig.from_dict(stored)  # a bare resume: the run as it was started
    else:
        config = _train_config(net_config, settings, seed)
        if stored and TrainConfig.from_dict(stored).phases != config.phases:
            raise ValueError(f"{last} was written for other phases (epochs, learning rates or KD); resume with "
                             "the run's own settings (resume alone) or start a new out directory")
    state = (saved.train_state or {}) if saved else {}
    return net_config, config, (int(state.get("phase_index", 0)), int(state.get("epoch", 0)))


def _new_supernet_config(family: str, width_mult: float | None, n_classes: int) -> Any:
    from supernet.factory import build_supernet

    width = digits_preset(family).width_mult if width_mult is None else width_mult
    try:
        return build_supernet(family, width_mult=width, n_classes=n_classes).config
    except ValueError as err:
        raise ValueError(f"width_mult: {err}") from None


def phase_names(family: str = "ofa-mbv3") -> tuple[str, ...]:
    """The progressive-shrinking phases a family's digits-scale supernet trains, in order."""

    config = _new_supernet_config(family, None, 10)
    return tuple(p.name for p in _phases(config, 1, 0.05, None, 1.0, digits_preset(family)))


def _phases(net_config: Any, epochs: Any, lr: Any, full_lr: Any, kd_ratio: Any, preset: SmallDataPreset) -> list:
    from supernet.train import progressive_shrinking_phases, resnet_shrinking_phases

    if hasattr(net_config, "width_mult_list"):  # ResNet50: no kernel, an elastic width instead
        return resnet_shrinking_phases(
            net_config.depth_list, net_config.expand_ratio_list, len(net_config.width_mult_list), epochs=epochs,
            lr=lr, full_lr=full_lr, subnets_per_step=preset.subnets_per_step, kd_ratio=kd_ratio,
        )
    return progressive_shrinking_phases(
        net_config.ks_list, net_config.expand_ratio_list, net_config.depth_list, epochs=epochs, lr=lr,
        full_lr=full_lr, subnets_per_step=preset.subnets_per_step, kd_ratio=kd_ratio,
    )


def _train_config(net_config: Any, settings: dict[str, Any], seed: int) -> TrainConfig:
    from supernet._family import config_family

    preset = digits_preset(config_family(net_config))

    def pick(name: str) -> Any:
        return getattr(preset, name) if settings[name] is None else settings[name]

    epochs = pick("epochs")
    names = [p.name for p in _phases(net_config, 1, 0.05, None, 1.0, preset)]
    if isinstance(epochs, Mapping):  # the phases it leaves out keep the preset's epochs
        epochs = {**dict(zip(names, preset.epochs)), **epochs}
    phases = _phases(net_config, epochs, pick("lr"), pick("full_lr"), pick("kd_ratio"), preset)
    return TrainConfig(phases=tuple(phases), resolutions=tuple(int(r) for r in pick("resolutions")),
                       batch_size=pick("batch_size"), seed=seed)


class _PhaseProgress:
    """TrainEvents as ``progress`` calls: every phase is announced at the start, so a log says what to expect."""

    def __init__(self, progress: Progress, phases: Sequence[Phase], steps_per_epoch: int, at: tuple[int, int]):
        self.progress = progress
        n = len(phases)
        self.tasks = [f"phase {i + 1}/{n} {p.name}, {p.epochs} epoch{'' if p.epochs == 1 else 's'}"
                      for i, p in enumerate(phases)]
        for i, phase in enumerate(phases):
            total = phase.epochs * steps_per_epoch
            done = total if i < at[0] else at[1] * steps_per_epoch if i == at[0] else 0
            progress(self.tasks[i], done, total)

    def __call__(self, event: Any) -> None:
        if isinstance(event, TrainEvent):
            self.progress(self.tasks[event.phase_index], event.step, event.n_steps)


# --------------------------------------------------------------------------- collect


def collect(
    checkpoint: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    samples: int = 100,
    dataset: str | None = None,
    resolutions: Sequence[int] | None = None,
    calib_images: int = DEFAULT_CALIB_IMAGES,
    precision: str = "fp32",
    seed: int = 0,
    threads: int | None = None,
    nproc: int = 1,
    progress: Progress | None = None,
) -> CollectReport | None:
    """Evaluate subnets (stratified over MACs, BN recalibrated, held-out split) and write the predictor's CSV.

    Args:
        checkpoint: A supernet checkpoint, or a training ``out`` folder (its ``supernet.pt``).
        out: The CSV to write (``arch,accuracy,macs,params,precision,space``).
        samples: Subnets to evaluate.
        dataset: ``"digits"`` or an ImageFolder directory (default: the training set).
        resolutions: Sides to draw r from (default: the training resolutions).
        calib_images: BN recalibration images per subnet.
        precision: ``fp32``, or ``int8`` (each subnet fake-quantized, static int8 on the CPU).
        seed: Seeds subnet sampling.
        threads, nproc: torch threads per process, processes on this host (subnets are shared out).
        progress: Called with the task ``"collect"`` and the subnets done.

    Returns:
        The report; None on the ranks of a torchrun group that do not report.

    Raises:
        ValueError, FileNotFoundError: bad settings, checkpoint or dataset. RunError: the evaluation failed.
    """
    from supernet.quantize import check_precision

    _check_counts(samples=samples, calib_images=calib_images, nproc=nproc, threads=threads)
    check_precision(precision, "precision")
    world = _world_size(nproc)
    path = checkpoint_file(checkpoint)
    ckpt = load_checkpoint(path)
    spec = _data_spec(ckpt.meta, dataset)
    res = tuple(resolutions or ckpt.meta.get("resolutions") or ())
    if not res:
        raise ValueError("resolutions must be given for a checkpoint that does not record its training resolutions")
    _load_splits(spec)  # a bad dataset fails here, before any process starts
    from supernet.jobs import CollectJob, run_collect_job

    job = CollectJob(str(path), spec, samples, res, seed, calib_images, precision, threads)
    results = _run(run_collect_job, job, nproc, _SubnetCount(progress, samples) if progress and _reports_here() else None)
    if results is None:
        return None
    return _write_collected(results, Path(out), ckpt, precision, world)


def _write_collected(
    results: list[SubnetResult], out: Path, ckpt: SupernetCheckpoint, precision: str, world: int
) -> CollectReport:
    from supernet.collect import search_space_name, write_accuracy_csv

    space = search_space_name(ckpt.config)
    warnings = ()
    if space is None:
        warnings = (f"this supernet (width {ckpt.config.width_mult:g}, {ckpt.config.n_classes} classes) is no "
                    "registered search space: the CSV's space column stays empty, and no LUT can price its subnets",)
    with _work("writing the CSV"):
        path = write_accuracy_csv(results, out, space=space)
    return CollectReport(str(path), precision, space, world, tuple(results), warnings)


class _SubnetCount:
    """One message per subnet done, from any rank, as ``progress("collect", done, samples)``."""

    def __init__(self, progress: Progress, total: int) -> None:
        self.progress, self.total, self.done = progress, total, 0
        progress("collect", 0, total)

    def __call__(self, message: Any) -> None:
        self.done += 1
        self.progress("collect", self.done, self.total)


# --------------------------------------------------------------------------- extract and evaluate


def extract(
    checkpoint: str | os.PathLike[str],
    arch: Mapping[str, Any] | Subnet,
    out: str | os.PathLike[str],
    *,
    format: str | None = None,  # noqa: A002 - the command's --format
    dataset: str | None = None,
    calibrate: bool = True,
    exporter: Exporter | None = None,
) -> ExtractReport:
    """Extract one subnet as a standalone network: lutnas ``.pt`` (weights and config), ONNX or TFLite.

    Args:
        checkpoint: A supernet checkpoint or a training ``out`` folder.
        arch: The subnet, OFA's arch dict ``{ks, e, d, r}``.
        out: File to write.
        format: ``pt``, ``onnx`` or ``tflite`` (default: from ``out``'s suffix, else ``pt``).
        dataset: Recalibrate BN on this data first (default: the training set, when the checkpoint names one).
        calibrate: False keeps the supernet's BN statistics.
        exporter: Writes ONNX and TFLite (``lutnas.extract_subnet`` passes the profiler's, which exports LUT blocks).

    Raises:
        ValueError, FileNotFoundError: bad format, checkpoint, arch or dataset. RunError: the export failed.
    """
    out = Path(out)
    chosen = format or _SUFFIX_FORMAT.get(out.suffix.lower(), "pt")
    if chosen not in EXTRACT_FORMATS:
        raise ValueError(f"format must be one of {', '.join(EXTRACT_FORMATS)}, got {chosen!r}")
    if chosen != "pt" and exporter is None:
        raise ValueError(f"format {chosen} needs an exporter (lutnas.extract_subnet passes the profiler's)")
    ckpt = load_checkpoint(checkpoint_file(checkpoint))
    net = ckpt.build()
    sub, r = _active_subnet(net, arch)
    calib = None
    if calibrate and (dataset or ckpt.meta.get("dataset")):
        calib = _load_splits(_data_spec(ckpt.meta, dataset))[0]
    with _work(f"{chosen} extraction"):
        _write_subnet(net, sub, r, calib, chosen, out, exporter)
    from supernet._family import subnet_counts

    macs, params = subnet_counts(net, sub)
    warnings = _untrained_resolution(r, ckpt.meta)
    return ExtractReport(str(out), chosen, sub, macs, params, calib is not None, warnings)


def _write_subnet(
    net: Any, sub: dict[str, Any], r: int, calib: Any, fmt: str, out: Path, exporter: Exporter | None
) -> None:
    from supernet._family import block_model
    from supernet.evaluate import calibrated_subnet
    from supernet.static_subnet import save_subnet

    subnet = calibrated_subnet(net, sub, calib) if calib is not None else net.get_active_subnet().eval()
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "pt":
        save_subnet(subnet, out)
        return
    model = block_model(subnet.eval(), r)  # the subnet's own layers, as the profiler exports its blocks
    out.write_bytes(exporter(model, model.input_shape, fmt))


def evaluate(
    checkpoint: str | os.PathLike[str],
    arch: Mapping[str, Any] | Subnet,
    *,
    dataset: str | None = None,
    calib_images: int = DEFAULT_CALIB_IMAGES,
    threads: int | None = None,
) -> EvalReport:
    """Top-1 accuracy of one subnet on the held-out split, after BN recalibration.

    Args:
        checkpoint: A supernet checkpoint or a training ``out`` folder.
        arch: The subnet, OFA's arch dict ``{ks, e, d, r}``.
        dataset: ``"digits"`` or an ImageFolder directory (default: the training set).
        calib_images: BN recalibration images.
        threads: torch CPU threads (sets torch's process-wide number).

    Raises:
        ValueError, FileNotFoundError: bad checkpoint, arch or dataset. RunError: the evaluation failed.
    """
    _check_counts(calib_images=calib_images, threads=threads)
    ckpt = load_checkpoint(checkpoint_file(checkpoint))
    net = ckpt.build()
    sub, _ = _active_subnet(net, arch)
    spec = _data_spec(ckpt.meta, dataset)
    train_data, held = _load_splits(spec)
    if train_data.n_classes != net.n_classes:
        raise ValueError(f"dataset has {train_data.n_classes} classes but the supernet has {net.n_classes}")
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    from supernet.evaluate import evaluate_subnet

    with _work("evaluation"):
        result = evaluate_subnet(net, sub, train_data, held, calib_images)
    return EvalReport(result, spec.dataset, len(held))


# --------------------------------------------------------------------------- shared steps


def checkpoint_file(path: str | os.PathLike[str]) -> Path:
    """A checkpoint file, or the final checkpoint inside a training ``out`` folder.

    Raises:
        ValueError: a training folder whose run has not finished, or a folder without a checkpoint.
    """
    path = Path(path)
    if not path.is_dir():
        return path
    if (path / FINAL_CHECKPOINT).is_file():
        return path / FINAL_CHECKPOINT
    if (path / LAST_CHECKPOINT).is_file():
        raise ValueError(f"checkpoint {path}: training has not finished ({LAST_CHECKPOINT} but no {FINAL_CHECKPOINT}); "
                         f"finish it with `lutnas supernet train --out {path} --resume` or pass a phase*.pt file")
    raise ValueError(f"checkpoint {path} is a folder without {FINAL_CHECKPOINT}")


def _check_counts(**values: int | None) -> None:
    for name, value in values.items():
        if value is not None and value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")


def _world_size(nproc: int) -> int:
    from supernet.distributed import launched_by_torchrun

    if launched_by_torchrun():
        if nproc > 1:
            raise ValueError(f"nproc must be 1 under torchrun (it already started the processes), got {nproc}")
        return int(os.environ["WORLD_SIZE"])
    return nproc


def _reports_here() -> bool:
    """False on the ranks of a torchrun group other than 0: they stay quiet."""
    from supernet.distributed import launched_by_torchrun

    return not launched_by_torchrun() or os.environ.get("RANK") == "0"


def _run(runner: Callable[..., Any], job: Any, nproc: int, on_message: Callable[[Any], None] | None) -> Any:
    """Run a job here or on ``nproc`` processes; any failure is a RunError."""
    from supernet.jobs import run_job

    with _work("the run", prefix=False):
        return run_job(runner, job, nproc, on_message)


@contextmanager
def _work(what: str, prefix: bool = True) -> Iterator[None]:
    try:
        yield
    except RunError:
        raise
    except Exception as err:  # noqa: BLE001 - whatever the cause, the work failed; its input was checked before
        raise RunError(f"{what} failed: {type(err).__name__}: {err}" if prefix else str(err)) from err


def _data_spec(meta: Mapping[str, Any], dataset: str | None) -> DataSpec:
    from supernet.data import DIGITS

    return DataSpec(
        dataset or meta.get("dataset") or DIGITS,
        int(meta.get("image_size", _PRESET.image_size)),
        float(meta.get("holdout_fraction", _PRESET.holdout_fraction)),
        int(meta.get("split_seed", _PRESET.split_seed)),
    )


def _load_splits(spec: DataSpec) -> tuple[Any, Any]:
    try:
        return spec.load()
    except (FileNotFoundError, ValueError) as err:
        raise ValueError(f"dataset {spec.dataset!r}: {err}") from None


def _active_subnet(net: Any, arch: Mapping[str, Any] | Subnet) -> tuple[dict[str, Any], int]:
    """``arch`` made the supernet's active subnet: its canonical arch dict and ``r`` (ValueError when it lies
    outside the supernet)."""
    from supernet._family import activate_arch

    try:
        return activate_arch(net, arch)
    except ValueError as err:
        raise ValueError(f"arch: {err}") from None


def _untrained_resolution(resolution: int, meta: Mapping[str, Any]) -> tuple[str, ...]:
    trained = meta.get("resolutions")
    if not trained or resolution in trained:
        return ()
    return (f"the supernet was trained at r = {', '.join(map(str, trained))}, never at r = {resolution}: its accuracy "
            "there is untested (BN recalibration adapts the statistics, not the weights)",)
