"""Progressive shrinking: train the supernet so that every subnet works without retraining.

The schedule (Once-for-All, Cai et al. 2020) first trains the full network at random resolutions,
then opens the space one dimension at a time, each phase sampling subnets from the enlarged space and
distilling from the full network (loss = CE + λ·KD):

    full → kernel {7,5} → kernel {7,5,3} → depth {4,3} → depth {4,3,2} → expand {6,4} → expand {6,4,3}

ProxylessNAS shrinks the same three dimensions. ResNet50 has no elastic kernel; it shrinks depth, expand
ratio and then width (``resnet_shrinking_phases``).

Before each expand phase the middle channels are re-sorted by importance so that the narrower
widths keep the most important channels. A phase is a :class:`Phase`; any list of phases can be
trained (``sample_all_phases`` gives the "everything from the start" baseline).

Files written to ``out_dir``: ``last.pt`` after every epoch (resumable), ``phase<i>-<name>.pt`` after
each phase and ``supernet.pt`` at the end (both weights-only checkpoints).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler

from supernet._arch import ArchChoices, sample_arch
from supernet._family import net_from_config
from supernet.bn_calibration import recalibrate_bn
from supernet.checkpoint import load_checkpoint, save_checkpoint
from supernet.data import ImageDataset, iter_batches, resize_batch
from supernet.distributed import DistContext, current_context, synced_batch_norm
from supernet.evaluate import evaluate_subnet
from supernet.ofa_mbv3 import OFAMobileNetV3
from supernet.ofa_proxyless import sample_proxyless_arch

__all__ = [
    "FINAL_CHECKPOINT",
    "LAST_CHECKPOINT",
    "PHASE_NAMES",
    "Phase",
    "ProgressCallback",
    "TrainConfig",
    "TrainEvent",
    "TrainResult",
    "progressive_shrinking_phases",
    "resnet_shrinking_phases",
    "sample_all_phases",
    "soft_cross_entropy",
    "train_supernet",
]

logger = logging.getLogger(__name__)

LAST_CHECKPOINT = "last.pt"  # resumable state, rewritten after every epoch
FINAL_CHECKPOINT = "supernet.pt"  # weights after the last phase
# Names of the default progressive-shrinking phases, in order.
PHASE_NAMES = ("full", "kernel-1", "kernel-2", "depth-1", "depth-2", "expand-1", "expand-2")


@dataclass(frozen=True)
class Phase:
    """One stage of training: which subnets are sampled, for how long, at what learning rate."""

    name: str  # label used in checkpoints and progress
    ks: tuple[int, ...]  # kernel sizes sampled per slot
    e: tuple[float, ...]  # expand ratios sampled per slot
    d: tuple[int, ...]  # depths sampled per stage
    epochs: int  # passes over the training set
    lr: float  # peak learning rate (cosine-decayed over the phase)
    subnets_per_step: int = 1  # subnets sampled per batch; their gradients add up
    kd_ratio: float = 1.0  # λ in CE + λ·KD (used only when a teacher exists)
    reorganize_expand_stage: int | None = None  # re-sort middle channels at phase start with this stage
    w: tuple[int, ...] = ()  # width indices sampled per stage (ResNet50; empty for families without elastic width)

    @property
    def is_full_net(self) -> bool:
        """True when the phase trains one network only (a single choice everywhere)."""
        return len(self.ks) <= 1 and len(self.e) == 1 and len(self.d) == 1 and len(self.w) <= 1

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON and checkpoints (``w`` only where the family has elastic width)."""
        out = asdict(self)
        for key in ("ks", "e", "d", "w"):
            out[key] = list(out[key])
        if not self.w:
            del out["w"]  # MobileNetV3 runs read back as they were written before widths existed
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Phase:
        """Inverse of :meth:`to_dict`."""
        return cls(**{**data, "ks": tuple(data["ks"]), "e": tuple(data["e"]), "d": tuple(data["d"]),
                      "w": tuple(data.get("w", ()))})


# One phase of a schedule before its epochs and learning rate: name, ks, e, d, w, re-sort stage.
_PhaseSpec = tuple[str, tuple, tuple, tuple, tuple, int | None]


def _largest(values: Sequence[Any], n: int) -> tuple[Any, ...]:
    return tuple(sorted(values, reverse=True)[:n])


def progressive_shrinking_phases(
    ks_list: Sequence[int] = (3, 5, 7),
    expand_ratio_list: Sequence[float] = (3, 4, 6),
    depth_list: Sequence[int] = (2, 3, 4),
    epochs: int | Mapping[str, int] | Sequence[int] = 2,
    lr: float | Mapping[str, float] = 0.05,
    full_lr: float | None = None,
    subnets_per_step: int = 2,
    kd_ratio: float = 1.0,
) -> list[Phase]:
    """OFA's schedule for the given choices: full, then one phase per extra kernel, depth, expand choice.

    Args:
        ks_list: kernel choices.
        expand_ratio_list: expand ratio choices.
        depth_list: depth choices.
        epochs: epochs per phase: one int for all, a list in phase order, or a dict by phase name.
        lr: peak learning rate of the shrinking phases (a dict by phase name also works).
        full_lr: peak learning rate of the full-network phase (default: 2 × ``lr``).
        subnets_per_step: subnets per batch in the shrinking phases (the full phase uses 1).
        kd_ratio: distillation weight in the shrinking phases.

    Raises:
        ValueError: ``epochs`` names an unknown phase or has the wrong length.
    """
    ks_all = tuple(sorted(set(ks_list), reverse=True))
    e_all = tuple(sorted(set(expand_ratio_list), reverse=True))
    d_all = tuple(sorted(set(depth_list), reverse=True))
    specs: list[_PhaseSpec] = [("full", ks_all[:1], e_all[:1], d_all[:1], (), None)]
    for i in range(2, len(ks_all) + 1):
        specs.append((f"kernel-{i - 1}", _largest(ks_all, i), e_all[:1], d_all[:1], (), None))
    for i in range(2, len(d_all) + 1):
        specs.append((f"depth-{i - 1}", ks_all, e_all[:1], _largest(d_all, i), (), None))
    for i in range(2, len(e_all) + 1):
        specs.append((f"expand-{i - 1}", ks_all, _largest(e_all, i), d_all, (), i - 2))
    return _phases_from_specs(specs, epochs, lr, full_lr, subnets_per_step, kd_ratio)


def resnet_shrinking_phases(
    depth_list: Sequence[int] = (0, 1, 2),
    expand_ratio_list: Sequence[float] = (0.2, 0.25, 0.35),
    n_widths: int = 3,
    epochs: int | Mapping[str, int] | Sequence[int] = 2,
    lr: float | Mapping[str, float] = 0.05,
    full_lr: float | None = None,
    subnets_per_step: int = 2,
    kd_ratio: float = 1.0,
) -> list[Phase]:
    """ResNet50's schedule: full, then one phase per extra depth, expand ratio and width choice (no kernel).

    Arguments as :func:`progressive_shrinking_phases`; ``n_widths`` is the number of elastic widths
    (``w`` holds indices into them, the largest last).

    Raises:
        ValueError: ``epochs`` names an unknown phase or has the wrong length.
    """
    d_all = tuple(sorted(set(depth_list), reverse=True))
    e_all = tuple(sorted(set(expand_ratio_list), reverse=True))
    w_all = tuple(range(n_widths - 1, -1, -1))
    specs: list[_PhaseSpec] = [("full", (), e_all[:1], d_all[:1], w_all[:1], None)]
    for i in range(2, len(d_all) + 1):
        specs.append((f"depth-{i - 1}", (), e_all[:1], _largest(d_all, i), w_all[:1], None))
    for i in range(2, len(e_all) + 1):
        specs.append((f"expand-{i - 1}", (), _largest(e_all, i), d_all, w_all[:1], i - 2))
    for i in range(2, len(w_all) + 1):
        specs.append((f"width-{i - 1}", (), e_all, d_all, _largest(w_all, i), None))
    return _phases_from_specs(specs, epochs, lr, full_lr, subnets_per_step, kd_ratio)


def _phases_from_specs(
    specs: Sequence[_PhaseSpec],
    epochs: int | Mapping[str, int] | Sequence[int],
    lr: float | Mapping[str, float],
    full_lr: float | None,
    subnets_per_step: int,
    kd_ratio: float,
) -> list[Phase]:
    """The phases of a schedule: the full phase trains one network at ``full_lr`` without KD, the others
    sample ``subnets_per_step`` subnets and distil at ``kd_ratio``."""
    epoch_list = _phase_epochs([s[0] for s in specs], epochs)
    phases = []
    for (name, ks, e, d, w, stage), n_epochs in zip(specs, epoch_list):
        if name == "full":
            phase_lr = full_lr if full_lr is not None else 2 * (lr if isinstance(lr, float | int) else 0.05)
            phases.append(Phase(name, ks, e, d, n_epochs, float(phase_lr), 1, 0.0, None, w))
            continue
        phase_lr = lr.get(name, 0.05) if isinstance(lr, Mapping) else lr
        phases.append(Phase(name, ks, e, d, n_epochs, float(phase_lr), subnets_per_step, kd_ratio, stage, w))
    return phases


def _phase_epochs(names: list[str], epochs: int | Mapping[str, int] | Sequence[int]) -> list[int]:
    if isinstance(epochs, Mapping):
        unknown = set(epochs) - set(names)
        if unknown:
            raise ValueError(f"epochs names unknown phases {sorted(unknown)}; phases: {', '.join(names)}")
        epoch_list = [int(epochs.get(n, 2)) for n in names]
    elif isinstance(epochs, int):
        epoch_list = [epochs] * len(names)
    else:
        epoch_list = [int(v) for v in epochs]
        if len(epoch_list) != len(names):
            raise ValueError(f"epochs needs {len(names)} values ({', '.join(names)}), got {len(epoch_list)}")
    if any(v < 0 for v in epoch_list):
        raise ValueError(f"epochs must be >= 0, got {epoch_list}")
    return epoch_list


def sample_all_phases(
    ks_list: Sequence[int] = (3, 5, 7),
    expand_ratio_list: Sequence[float] = (3, 4, 6),
    depth_list: Sequence[int] = (2, 3, 4),
    epochs: int = 10,
    lr: float = 0.1,
    subnets_per_step: int = 2,
) -> list[Phase]:
    """The baseline without progressive shrinking: one phase sampling the whole space, no teacher."""
    return [
        Phase(
            "all",
            tuple(sorted(set(ks_list), reverse=True)),
            tuple(sorted(set(expand_ratio_list), reverse=True)),
            tuple(sorted(set(depth_list), reverse=True)),
            epochs,
            lr,
            subnets_per_step,
            0.0,
        )
    ]


@dataclass(frozen=True)
class TrainConfig:
    """Settings shared by all phases."""

    phases: tuple[Phase, ...]  # what to train, in order
    resolutions: tuple[int, ...] = (32, 40, 48)  # one is drawn per step
    batch_size: int = 64  # images per step
    momentum: float = 0.9  # SGD (Nesterov) momentum
    weight_decay: float = 3e-5  # on conv/linear weights only (not BN, not biases)
    label_smoothing: float = 0.1  # for the cross-entropy term
    augment: bool = False  # random translations (helps long runs, slows short ones)
    seed: int = 0  # subnet sampling, shuffling, augmentation
    calib_images: int = 256  # BN recalibration images for end-of-phase validation

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON and checkpoints."""
        out = asdict(self)
        out["phases"] = [p.to_dict() for p in self.phases]
        out["resolutions"] = list(self.resolutions)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`."""
        phases = tuple(Phase.from_dict(p) for p in data["phases"])
        return cls(**{**data, "phases": phases, "resolutions": tuple(data["resolutions"])})

    def validate(self, n_train: int, world_size: int = 1) -> None:
        """Check the settings against the training set size and the number of processes.

        Raises:
            ValueError: naming the setting, its value and what is allowed.
        """
        if not self.phases:
            raise ValueError("TrainConfig.phases is empty; give at least one phase")
        if self.batch_size < 1 or self.batch_size > n_train:
            raise ValueError(f"batch_size must be in [1, {n_train}] (training images), got {self.batch_size}")
        if self.batch_size % world_size:
            raise ValueError(
                f"batch_size {self.batch_size} does not split evenly over {world_size} processes; "
                f"use a multiple of {world_size}"
            )
        if not self.resolutions or any(r < 8 for r in self.resolutions):
            raise ValueError(f"resolutions must be ints >= 8, got {list(self.resolutions)}")
        for phase in self.phases:
            if phase.epochs < 0 or phase.lr <= 0 or phase.subnets_per_step < 1:
                raise ValueError(f"phase {phase.name!r} needs epochs >= 0, lr > 0 and subnets_per_step >= 1")


@dataclass(frozen=True)
class TrainEvent:
    """A progress report: sent at phase start, after every step, and at phase end."""

    kind: str  # "phase_start" | "step" | "phase_end"
    phase: str  # phase name
    phase_index: int  # 0-based
    n_phases: int
    step: int  # steps done in this phase
    n_steps: int  # steps in this phase
    epoch: int  # epochs done in this phase
    n_epochs: int
    loss: float | None = None  # last step's loss
    metrics: dict[str, float] = field(default_factory=dict)  # phase_end: validation accuracies


ProgressCallback = Callable[[TrainEvent], None]


@dataclass
class TrainResult:
    """What ``train_supernet`` did."""

    phases: list[dict[str, Any]]  # per phase: name, epochs, seconds, loss, validation accuracies
    seconds: float  # wall time of this call
    checkpoint: Path | None  # final checkpoint, when out_dir was given
    processes: int = 1  # ranks that trained together

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON."""
        return {"phases": self.phases, "seconds": self.seconds, "checkpoint": self.checkpoint, "processes": self.processes}


def soft_cross_entropy(logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``-sum(p * log_softmax(logits))`` (the KD term)."""
    return torch.mean(torch.sum(-target_probs * F.log_softmax(logits, dim=1), dim=1))


def _param_groups(net: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    decay, no_decay = [], []
    for name, param in net.named_parameters():
        if not param.requires_grad:
            continue
        if param.ndim <= 1 or ".bn." in name or name.endswith((".bias", "_matrix")):
            no_decay.append(param)
        else:
            decay.append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _phase_choices(net: nn.Module, phase: Phase) -> ArchChoices | Phase:
    """What a phase samples from: MobileNetV3's ArchChoices; for other families the phase itself, checked."""
    base = net.choices
    allowed_w = tuple(range(base.n_widths)) if hasattr(base, "n_widths") else ()
    for field_name, allowed in (("ks", getattr(base, "ks", ())), ("e", base.e), ("d", base.d), ("w", allowed_w)):
        bad = [v for v in getattr(phase, field_name) if v not in allowed]
        if bad:
            raise ValueError(f"phase {phase.name!r} {field_name} values {bad} are not in the supernet's {allowed}")
    if isinstance(base, ArchChoices):
        return ArchChoices(ks=phase.ks, e=phase.e, d=phase.d, n_stages=base.n_stages, max_depth=base.max_depth)
    return phase


def _sample_phase_arch(net: nn.Module, choices: ArchChoices | Phase, rng: np.random.Generator) -> dict[str, Any]:
    """One subnet of a phase, drawn uniformly per entry (as OFA samples)."""
    if isinstance(choices, ArchChoices):
        return sample_arch(choices, rng)
    base = net.choices
    if choices.w:  # ResNet50: the stem block is kept (largest d) or skipped; depth, expand and width per entry
        stem = int(rng.choice(np.asarray([min(choices.d), max(choices.d)])))
        return {
            "d": [stem] + [int(v) for v in rng.choice(np.asarray(choices.d), size=len(net.block_group_info))],
            "e": [float(v) for v in rng.choice(np.asarray(choices.e), size=base.n_blocks)],
            "w": [int(v) for v in rng.choice(np.asarray(choices.w), size=2 + len(net.block_group_info))],
        }
    return sample_proxyless_arch(replace(base, ks=choices.ks, e=choices.e, d=choices.d), rng)  # ProxylessNAS


def _extreme_arch(net: nn.Module, phase: Phase, pick: Callable[[Sequence[Any]], Any], r: int) -> dict[str, Any]:
    """The phase's largest (``pick=max``) or smallest (``pick=min``) subnet at side ``r``."""
    arch = dict(_sample_phase_arch(net, _phase_choices(net, phase), np.random.default_rng(0)))
    for key in arch:
        values = getattr(phase, key)
        arch[key] = [pick(values)] * len(arch[key])
    if "ks" in arch and not isinstance(net.choices, ArchChoices):
        arch["d"] = [min(v, n) for v, n in zip(arch["d"], net.choices.stage_slots)]
    return {**arch, "r": r}


def _validation_metrics(
    net: nn.Module, train_data: ImageDataset, val_data: ImageDataset, phase: Phase, config: TrainConfig
) -> dict[str, float]:
    largest = _extreme_arch(net, phase, max, max(config.resolutions))
    smallest = _extreme_arch(net, phase, min, min(config.resolutions))
    was_training = net.training
    out = {
        "val_acc_largest": evaluate_subnet(net, largest, train_data, val_data, config.calib_images).accuracy,
        "val_acc_smallest": evaluate_subnet(net, smallest, train_data, val_data, config.calib_images).accuracy,
    }
    net.train(was_training)
    return out


@dataclass
class _Position:
    """Where a run stands; the resumable checkpoint stores it beside the weights."""

    phase_index: int = 0  # the phase to run next (or running)
    epoch: int = 0  # epochs of that phase already done
    history: list[dict[str, Any]] = field(default_factory=list)  # summaries of the finished phases
    optimizer_state: dict[str, Any] | None = None  # SGD momentum of the phase in progress
    teacher: OFAMobileNetV3 | None = None  # the frozen full network, once the full phase ended

    def train_state(self, config: TrainConfig, rng: np.random.Generator) -> dict[str, Any]:
        """The checkpoint's ``train_state``."""
        return {
            "phases": [p.to_dict() for p in config.phases],
            "phase_index": self.phase_index,
            "epoch": self.epoch,
            "history": self.history,
            "rng": rng.bit_generator.state,
            "optimizer": self.optimizer_state,
            "teacher_state": self.teacher.state_dict() if self.teacher is not None else None,
        }

    @classmethod
    def restore(cls, path: Path, net: OFAMobileNetV3, config: TrainConfig, rng: np.random.Generator) -> _Position:
        """Load ``path`` into ``net`` and ``rng`` and return the position it records.

        Every rank reads the same file, so all of them continue from one state.

        Raises:
            ValueError: the file was written for other phases.
        """
        ckpt = load_checkpoint(path)
        state = ckpt.train_state or {}
        if state.get("phases") != [p.to_dict() for p in config.phases]:
            raise ValueError(f"{path} was written for other phases; start a new --out directory")
        net.load_state_dict(ckpt.state_dict, strict=True)
        rng.bit_generator.state = state["rng"]
        teacher = None
        if state.get("teacher_state") is not None:
            teacher = net_from_config(net.config)
            teacher.load_state_dict(state["teacher_state"], strict=True)
            teacher.to(next(net.parameters()).device)
        logger.info("resuming at phase %s epoch %s from %s", state["phase_index"], state["epoch"], path)
        return cls(
            phase_index=int(state["phase_index"]),
            epoch=int(state["epoch"]),
            history=list(state.get("history", [])),
            optimizer_state=state.get("optimizer"),
            teacher=teacher,
        )


@dataclass
class _Checkpoints:
    """The files of a run; only the main rank writes them (``out_dir`` is None on the others)."""

    out_dir: Path | None  # where to write, or None to write nothing
    meta: dict[str, Any]  # facts stored in every file
    config: TrainConfig

    def after_epoch(self, net: OFAMobileNetV3, phase: Phase, position: _Position, rng: np.random.Generator) -> None:
        if self.out_dir is not None:
            state = position.train_state(self.config, rng)
            save_checkpoint(self.out_dir / LAST_CHECKPOINT, net, {**self.meta, "phase": phase.name}, state)

    def after_phase(
        self, net: OFAMobileNetV3, phase_index: int, phase: Phase, position: _Position, rng: np.random.Generator
    ) -> None:
        # ``position`` already points at the next phase (teacher included).
        if self.out_dir is None:
            return
        phase_meta = {**self.meta, "phase": phase.name, "phases_done": phase_index + 1}
        save_checkpoint(self.out_dir / f"phase{phase_index}-{phase.name}.pt", net, phase_meta)
        save_checkpoint(self.out_dir / LAST_CHECKPOINT, net, phase_meta, position.train_state(self.config, rng))

    def final(self, net: OFAMobileNetV3, history: list[dict[str, Any]]) -> None:
        if self.out_dir is not None:
            save_checkpoint(self.out_dir / FINAL_CHECKPOINT, net, {**self.meta, "phase": "done", "history": history})


class _Trainer:
    """Runs the phases of one ``train_supernet`` call on this rank.

    Every rank holds the whole dataset and an identically seeded RNG, so all ranks draw the same
    resolution, augmentation and subnet at every step (OFA's rule); the DistributedSampler gives each
    rank its slice of the same global batch, and DistributedDataParallel averages the gradients.
    """

    def __init__(
        self,
        net: OFAMobileNetV3,
        train_data: ImageDataset,
        config: TrainConfig,
        ctx: DistContext,
        progress: ProgressCallback | None,
    ) -> None:
        self.net = net.to(ctx.device)
        self.train_data = train_data
        self.config = config
        self.ctx = ctx
        self.progress = progress
        self.rng = np.random.default_rng(config.seed)
        self.choices = [_phase_choices(net, phase) for phase in config.phases]
        self.sampler = DistributedSampler(
            range(len(train_data)), ctx.world_size, ctx.rank, shuffle=True, seed=config.seed, drop_last=True
        )
        self.local_batch = config.batch_size // ctx.world_size
        self.steps_per_epoch = len(self.sampler) // self.local_batch
        self.model: nn.Module = net
        self.bn_group = None
        if ctx.is_distributed:
            # Subnets leave parameters unused; the same subnet on every rank keeps the unused set equal.
            device_ids = [ctx.device] if ctx.device != "cpu" else None
            self.model = DistributedDataParallel(
                net, device_ids=device_ids, find_unused_parameters=True, forward_sync_buffers=False
            )
            self.bn_group = dist.new_group()  # batch-norm all-reduces apart from DDP's gradient buckets

    def run_phase(self, phase_index: int, position: _Position, files: _Checkpoints, val_data: ImageDataset | None):
        """Train one phase from ``position`` and move ``position`` to the next phase."""
        phase = self.config.phases[phase_index]
        if position.epoch == 0 and phase.reorganize_expand_stage is not None:
            self.net.re_organize_middle_weights(phase.reorganize_expand_stage)
        optimizer = torch.optim.SGD(
            _param_groups(self.net, self.config.weight_decay),
            lr=phase.lr,
            momentum=self.config.momentum,
            nesterov=True,
        )
        if position.optimizer_state is not None:
            optimizer.load_state_dict(position.optimizer_state)
        started = time.perf_counter()
        n_steps = phase.epochs * self.steps_per_epoch
        self._emit("phase_start", phase_index, position.epoch * self.steps_per_epoch, n_steps, position.epoch)
        loss = None
        if position.teacher is not None:
            position.teacher.eval().set_max_net()
        self.net.train()
        for epoch in range(position.epoch, phase.epochs):
            loss = self._epoch(phase_index, epoch, optimizer, position.teacher)
            position.epoch, position.optimizer_state = epoch + 1, optimizer.state_dict()
            files.after_epoch(self.net, phase, position, self.rng)
        self.net.set_max_net()
        if phase.is_full_net and position.teacher is None and phase_index < len(self.config.phases) - 1:
            position.teacher = _make_teacher(self.net, self.train_data, self.config, self.rng)
        metrics = self._validate(phase, val_data)
        self.net.set_max_net()
        self.net.train()
        seconds = round(time.perf_counter() - started, 3)
        position.history.append({"name": phase.name, "epochs": phase.epochs, "seconds": seconds, "loss": loss, **metrics})
        self._emit("phase_end", phase_index, n_steps, n_steps, phase.epochs, loss, metrics)
        position.phase_index, position.epoch, position.optimizer_state = phase_index + 1, 0, None
        files.after_phase(self.net, phase_index, phase, position, self.rng)

    def _epoch(
        self, phase_index: int, epoch: int, optimizer: torch.optim.Optimizer, teacher: OFAMobileNetV3 | None
    ) -> float | None:
        phase = self.config.phases[phase_index]
        # A different shuffle every epoch of every phase, the same one on every rank.
        self.sampler.set_epoch(sum(p.epochs for p in self.config.phases[:phase_index]) + epoch)
        order = torch.as_tensor(list(self.sampler))
        n_steps = phase.epochs * self.steps_per_epoch
        step = epoch * self.steps_per_epoch
        loss = None
        for batch in range(self.steps_per_epoch):
            index = order[batch * self.local_batch : (batch + 1) * self.local_batch]
            lr = 0.5 * phase.lr * (1.0 + math.cos(math.pi * step / max(1, n_steps)))
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss = self._step(index, phase_index, optimizer, teacher)
            step += 1
            self._emit("step", phase_index, step, n_steps, epoch, loss)
        return loss

    def _step(
        self, index: torch.Tensor, phase_index: int, optimizer: torch.optim.Optimizer, teacher: OFAMobileNetV3 | None
    ) -> float:
        phase, config = self.config.phases[phase_index], self.config
        res = int(self.rng.choice(np.asarray(config.resolutions)))
        x = resize_batch(self.train_data.images[index], res)
        if config.augment:
            x = _translate(x, self.rng)
        x, y = x.to(self.ctx.device), self.train_data.labels[index].to(self.ctx.device)
        soft = None
        if teacher is not None and phase.kd_ratio > 0:
            with torch.no_grad():
                soft = F.softmax(teacher(x), dim=1)
        optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for _ in range(phase.subnets_per_step):
            arch = _sample_phase_arch(self.net, self.choices[phase_index], self.rng)
            if isinstance(self.net, OFAMobileNetV3):
                self.net.set_active_subnet(ks=arch["ks"], e=arch["e"], d=arch["d"])
            else:
                self.net.set_active_subnet(arch)
            with synced_batch_norm(self.bn_group):
                logits = self.model(x)
            loss = F.cross_entropy(logits, y, label_smoothing=config.label_smoothing)
            if soft is not None:
                loss = loss + phase.kd_ratio * soft_cross_entropy(logits, soft)
            loss.backward()
            total += float(loss.detach())
        nn.utils.clip_grad_norm_(self.net.parameters(), 5.0)
        optimizer.step()
        return self._mean_over_ranks(total / phase.subnets_per_step)

    def _mean_over_ranks(self, value: float) -> float:
        if not self.ctx.is_distributed:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=self.ctx.device)
        dist.all_reduce(tensor)
        return float(tensor) / self.ctx.world_size

    def _validate(self, phase: Phase, val_data: ImageDataset | None) -> dict[str, float]:
        # The main rank measures; the others wait for its numbers so every rank returns the same history.
        if val_data is None:
            return {}
        metrics = _validation_metrics(self.net, self.train_data, val_data, phase, self.config) if self.ctx.is_main else {}
        if not self.ctx.is_distributed:
            return metrics
        names = ("val_acc_largest", "val_acc_smallest")
        shared = torch.tensor([metrics.get(n, 0.0) for n in names], dtype=torch.float64, device=self.ctx.device)
        dist.broadcast(shared, src=0)
        return dict(zip(names, (float(v) for v in shared)))

    def _emit(
        self,
        kind: str,
        phase_index: int,
        step: int,
        n_steps: int,
        epoch: int,
        loss: float | None = None,
        metrics: dict[str, float] | None = None,
    ) -> None:
        if self.progress is None:
            return
        phase = self.config.phases[phase_index]
        n_phases = len(self.config.phases)
        event = TrainEvent(kind, phase.name, phase_index, n_phases, step, n_steps, epoch, phase.epochs, loss, metrics or {})
        self.progress(event)


def train_supernet(
    net: OFAMobileNetV3,
    train_data: ImageDataset,
    config: TrainConfig,
    out_dir: str | Path | None = None,
    resume: bool = False,
    val_data: ImageDataset | None = None,
    progress: ProgressCallback | None = None,
    meta: Mapping[str, Any] | None = None,
) -> TrainResult:
    """Train ``net`` through ``config.phases`` (in place), in this process or as one rank of a process group.

    Inside a torch.distributed process group (see :mod:`supernet.distributed`) each rank trains on its
    share of every global batch of ``config.batch_size`` images, gradients are averaged with
    DistributedDataParallel and batch norm uses the global batch's statistics, so N processes train
    like one; only rank 0 writes files.

    Args:
        net: the supernet (its ``n_classes`` must cover the labels).
        train_data: training images (every rank holds all of them).
        config: phases and shared settings.
        out_dir: where checkpoints go (none written when None).
        resume: continue from ``out_dir/last.pt`` if it exists (same phases required).
        val_data: held-out images; when given, each phase ends with the validation accuracy of its
            largest and smallest subnet (after BN recalibration).
        progress: called with a :class:`TrainEvent` at phase start, after each step and at phase end.
        meta: extra facts stored in every checkpoint (e.g. the dataset).

    Returns:
        Per-phase summaries and the final checkpoint path.

    Raises:
        ValueError: bad settings, labels beyond ``n_classes``, or a resume file for other phases.
    """
    ctx = current_context()
    config.validate(len(train_data), ctx.world_size)
    if int(train_data.labels.max()) >= net.n_classes:
        raise ValueError(f"labels go up to {int(train_data.labels.max())} but the supernet has {net.n_classes} classes")
    started = time.perf_counter()
    trainer = _Trainer(net, train_data, config, ctx, progress)
    out_path = Path(out_dir) if out_dir is not None else None
    meta_base = {**(meta or {}), "resolutions": list(config.resolutions), "train_config": config.to_dict()}
    files = _Checkpoints(out_path if ctx.is_main else None, meta_base, config)
    position = _Position()
    if resume and out_path is not None and (out_path / LAST_CHECKPOINT).is_file():
        position = _Position.restore(out_path / LAST_CHECKPOINT, net, config, trainer.rng)
    for phase_index in range(position.phase_index, len(config.phases)):
        trainer.run_phase(phase_index, position, files, val_data)
    net.eval()
    files.final(net, position.history)
    final = out_path / FINAL_CHECKPOINT if out_path is not None else None
    seconds = round(time.perf_counter() - started, 3)
    return TrainResult(phases=position.history, seconds=seconds, checkpoint=final, processes=ctx.world_size)


def _make_teacher(
    net: OFAMobileNetV3, train_data: ImageDataset, config: TrainConfig, rng: np.random.Generator
) -> OFAMobileNetV3:
    # A frozen copy of the full network whose BN statistics are re-estimated over the training
    # resolutions: running averages taken while the weights were still moving make a poor teacher.
    teacher = copy.deepcopy(net)
    teacher.set_max_net()
    device = next(net.parameters()).device
    n = min(config.calib_images, len(train_data))
    calib = train_data.subset(rng.choice(len(train_data), size=n, replace=False))
    batches = (
        resize_batch(x, config.resolutions[i % len(config.resolutions)]).to(device)
        for i, (x, _) in enumerate(iter_batches(calib, config.batch_size, max(config.resolutions)))
    )
    recalibrate_bn(teacher, batches)
    return teacher.eval()


def _translate(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    # One random shift per batch (cheap), up to 1/8 of the side, zero filled.
    side = x.shape[-1]
    limit = max(1, side // 8)
    dy, dx = (int(v) for v in rng.integers(-limit, limit + 1, size=2))
    shifted = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
    if dy > 0:
        shifted[:, :, :dy] = 0
    elif dy < 0:
        shifted[:, :, dy:] = 0
    if dx > 0:
        shifted[:, :, :, :dx] = 0
    elif dx < 0:
        shifted[:, :, :, dx:] = 0
    return shifted
