"""Training and collection as jobs: plain, picklable descriptions that run in this process or on N ranks.

A job names its data instead of holding it, so every rank loads its own copy; :func:`run_job` runs
a job here (one process, or one rank of a group a launcher such as torchrun started) or spawns
``nproc`` ranks with :func:`supernet.distributed.launch`. Only rank 0 reports: progress events go to
``on_message`` and the result is returned.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from supernet.checkpoint import load_supernet
from supernet.collect import collect_accuracy_data
from supernet.data import ImageDataset, load_dataset, split_dataset
from supernet.distributed import DistContext, Send, current_context, launch, launched_by_torchrun, process_group
from supernet.evaluate import DEFAULT_CALIB_IMAGES, SubnetResult
from supernet._family import AnyConfig, net_from_config
from supernet.train import TrainConfig, TrainResult, train_supernet

__all__ = ["CollectJob", "DataSpec", "JobResult", "TrainJob", "run_collect_job", "run_job", "run_train_job"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataSpec:
    """Where the images come from and how they split into training and held-out sets."""

    dataset: str  # "digits" or an ImageFolder directory
    image_size: int  # side ImageFolder images are stored at
    holdout_fraction: float  # share held out for evaluation
    split_seed: int  # seeds the split

    def load(self) -> tuple[ImageDataset, ImageDataset]:
        """``(train, held_out)``.

        Raises:
            FileNotFoundError: the folder does not exist.
            ValueError: the folder holds no images, or a bad split fraction.
        """
        return split_dataset(load_dataset(self.dataset, self.image_size), self.holdout_fraction, self.split_seed)


@dataclass(frozen=True)
class TrainJob:
    """A ``train_supernet`` call described by value."""

    net_config: AnyConfig  # the supernet to build (its type names the family) (initialized from ``config.seed``)
    data: DataSpec
    config: TrainConfig
    out_dir: str  # checkpoints
    resume: bool = False  # continue from out_dir/last.pt
    validate: bool = True  # measure largest and smallest subnet after each phase
    meta: dict[str, Any] = field(default_factory=dict)  # stored in every checkpoint
    threads: int | None = None  # torch threads per rank (default: the cores shared out over the ranks)


@dataclass(frozen=True)
class CollectJob:
    """A ``collect_accuracy_data`` call described by value."""

    checkpoint: str  # the trained supernet
    data: DataSpec
    n_samples: int  # subnets, stratified over MACs
    resolutions: tuple[int, ...]  # r is drawn from these
    seed: int = 0
    calib_images: int = DEFAULT_CALIB_IMAGES
    precision: str = "fp32"  # "fp32" or "int8" (see supernet.quantize)
    threads: int | None = None  # torch threads per rank


JobResult = TrainResult | list[SubnetResult]
Runner = Callable[[Any, DistContext, Send], JobResult]


def run_train_job(job: TrainJob, ctx: DistContext, send: Send | None) -> TrainResult:
    """Load the data, build the supernet and train it (``send`` gets rank 0's progress events)."""
    _set_threads(job.threads, ctx)
    train_data, held = job.data.load()
    torch.manual_seed(job.config.seed)  # the same initial weights for any number of processes
    net = net_from_config(job.net_config)
    progress = send if (send is not None and ctx.is_main) else None
    return train_supernet(
        net,
        train_data,
        job.config,
        out_dir=job.out_dir,
        resume=job.resume,
        val_data=held if job.validate else None,
        progress=progress,
        meta=job.meta,
    )


def run_collect_job(job: CollectJob, ctx: DistContext, send: Send | None) -> list[SubnetResult]:
    """Evaluate the job's subnets, this rank's share of them; ``send`` gets one message per subnet done."""
    _set_threads(job.threads, ctx)
    net, _ = load_supernet(job.checkpoint)
    net.to(ctx.device)
    train_data, held = job.data.load()
    return collect_accuracy_data(
        net,
        train_data,
        held,
        job.n_samples,
        list(job.resolutions),
        seed=job.seed,
        calib_images=job.calib_images,
        precision=job.precision,
        progress=(lambda done, total, result: send(("subnet", ctx.rank, done, total))) if send else None,
    )


def run_job(
    runner: Runner, job: Any, nproc: int = 1, on_message: Callable[[Any], None] | None = None
) -> JobResult | None:
    """Run ``job`` with ``runner`` (:func:`run_train_job` or :func:`run_collect_job`).

    With ``nproc`` > 1 it spawns that many ranks here; under torchrun (``nproc`` 1) this process is
    one rank of torchrun's group; otherwise it runs in this process alone.

    Returns:
        The job's result on rank 0; None on the other ranks of a torchrun group.

    Raises:
        ValueError: ``nproc`` < 1, or ``nproc`` > 1 under torchrun.
        supernet.distributed.LaunchError: a spawned rank failed.
    """
    if nproc < 1:
        raise ValueError(f"nproc must be >= 1, got {nproc}")
    if launched_by_torchrun():
        if nproc > 1:
            raise ValueError("torchrun already started the processes; drop --nproc")
        with process_group() as ctx:
            result = runner(job, ctx, on_message)
        return result if ctx.is_main else None
    if nproc == 1:
        return runner(job, current_context(), on_message)
    results: list[JobResult] = []

    def receive(message: Any) -> None:
        if isinstance(message, _Result):
            results.append(message.value)
        elif on_message is not None:
            on_message(message)

    launch(_report_result, (runner, job), nproc, receive)
    return results[0] if results else None


@dataclass(frozen=True)
class _Result:
    value: Any  # rank 0's return value


def _report_result(payload: tuple[Runner, Any], ctx: DistContext, send: Send) -> None:
    runner, job = payload
    result = runner(job, ctx, send)
    if ctx.is_main:
        send(_Result(result))


def _set_threads(threads: int | None, ctx: DistContext) -> None:
    # N ranks on one host share its cores; torch's default (all cores each) oversubscribes them.
    if threads is None and ctx.is_distributed:
        local_ranks = int(os.environ.get("LOCAL_WORLD_SIZE", ctx.world_size))
        threads = max(1, (os.cpu_count() or 1) // local_ranks)
    if threads is not None:
        torch.set_num_threads(threads)
