"""Supernet work on several processes with torch.distributed (gloo on CPUs, NCCL on GPUs).

Two ways in:

* :func:`launch` starts N local processes itself (``lutnas supernet train --nproc N``); each joins a
  process group through a rendezvous file, and what rank 0 (or any rank) sends reaches the caller's
  ``on_message`` in this process, so progress bars keep working;
* :func:`process_group` joins the group a launcher such as ``torchrun`` describes in the environment
  (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``); :func:`launched_by_torchrun` says
  whether that is the case.

Inside a group, :func:`current_context` tells code its rank, the world size and its device, and
:func:`synced_batch_norm` makes training-mode batch norm use the statistics of the global batch, so
that N processes with a global batch of B train exactly like one process with B.
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

__all__ = [
    "DistContext",
    "LaunchError",
    "Send",
    "current_context",
    "default_backend",
    "launch",
    "launched_by_torchrun",
    "process_group",
    "synced_batch_norm",
]

logger = logging.getLogger(__name__)

Send = Callable[[Any], None]  # hands one picklable message to the launching process
_POLL_S = 0.1  # how often the launcher looks for messages and finished processes
_TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


class LaunchError(RuntimeError):
    """A launched process failed; the message is its error in one line."""


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a process group (rank 0 of 1 outside one)."""

    rank: int = 0
    world_size: int = 1
    device: str = "cpu"  # torch device this rank computes on

    @property
    def is_main(self) -> bool:
        """True on the rank that writes files and reports progress."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        """True when gradients and results must be exchanged with other ranks."""
        return self.world_size > 1


def default_backend() -> str:
    """NCCL when CUDA GPUs are visible, else gloo."""
    return "nccl" if torch.cuda.is_available() else "gloo"


def current_context() -> DistContext:
    """The context of the process group this process belongs to (rank 0 of 1 when none)."""
    if not (dist.is_available() and dist.is_initialized()):
        return DistContext()
    device = "cpu"
    if dist.get_backend() == "nccl":
        device = f"cuda:{torch.cuda.current_device()}"
    return DistContext(rank=dist.get_rank(), world_size=dist.get_world_size(), device=device)


def launched_by_torchrun() -> bool:
    """True when the environment describes a process group (torchrun and similar launchers set it)."""
    return all(name in os.environ for name in _TORCHRUN_VARS)


@contextmanager
def process_group(
    backend: str | None = None,
    init_method: str = "env://",
    rank: int | None = None,
    world_size: int | None = None,
) -> Iterator[DistContext]:
    """Join a process group for the duration of the block, then leave it.

    Args:
        backend: ``gloo`` or ``nccl`` (default: :func:`default_backend`).
        init_method: rendezvous URL; ``env://`` reads torchrun's variables.
        rank: this process's rank (read from the environment when None).
        world_size: processes in the group (read from the environment when None).
    """
    backend = backend or default_backend()
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", rank or 0)) % torch.cuda.device_count())
    kwargs: dict[str, Any] = {"backend": backend, "init_method": init_method}
    if rank is not None:
        kwargs.update(rank=rank, world_size=world_size)
    dist.init_process_group(**kwargs)
    try:
        yield current_context()
    finally:
        dist.destroy_process_group()


def launch(
    fn: Callable[[Any, DistContext, Send], Any],
    payload: Any,
    nproc: int,
    on_message: Callable[[Any], None] | None = None,
    backend: str | None = None,
) -> None:
    """Run ``fn(payload, ctx, send)`` on ``nproc`` new local processes forming one process group.

    ``fn`` must be importable (a module-level function) and ``payload`` picklable: the processes are
    spawned, not forked, so a parent that already ran torch or OpenMP code cannot deadlock them.
    Every message a rank passes to ``send`` is delivered, in order per rank, to ``on_message`` here.

    Args:
        fn: the work of one rank.
        payload: its input (the same for every rank).
        nproc: processes to start (>= 1).
        on_message: receives what the ranks send.
        backend: ``gloo`` or ``nccl`` (default: :func:`default_backend`).

    Raises:
        ValueError: ``nproc`` < 1.
        LaunchError: a process failed; the others are stopped.
    """
    if nproc < 1:
        raise ValueError(f"nproc must be >= 1, got {nproc}")
    import torch.multiprocessing as mp
    from torch.multiprocessing.spawn import ProcessException

    mp_context = mp.get_context("spawn")
    messages = mp_context.Queue()
    rendezvous = tempfile.mkdtemp(prefix="lutnas-dist-")
    init_method = f"file://{os.path.join(rendezvous, 'store')}"
    args = (fn, payload, nproc, backend or default_backend(), init_method, messages)
    errors: list[str] = []

    def deliver(message: Any) -> None:
        if isinstance(message, _Failure):
            errors.append(message.text)
        elif on_message is not None:
            on_message(message)

    try:
        processes = mp.start_processes(_rank_main, args=args, nprocs=nproc, join=False, start_method="spawn")
        finished = False
        while not finished:
            try:
                finished = processes.join(timeout=_POLL_S)
            except ProcessException as err:
                _drain(messages, deliver)
                raise LaunchError(errors[0] if errors else _last_line(str(err))) from None
            _drain(messages, deliver)
    finally:
        shutil.rmtree(rendezvous, ignore_errors=True)


@dataclass(frozen=True)
class _Failure:
    text: str  # "<ExceptionType>: message" of a rank's error


def _rank_main(rank: int, fn: Callable, payload: Any, nproc: int, backend: str, init_method: str, messages) -> None:
    # The body of one spawned process: join the group, run, report an error as one line, leave.
    try:
        with process_group(backend, init_method, rank=rank, world_size=nproc) as ctx:
            fn(payload, ctx, messages.put)
    except Exception as err:
        messages.put(_Failure(f"rank {rank}: {type(err).__name__}: {err}"))
        raise


def _drain(messages, deliver: Callable[[Any], None]) -> None:
    while True:
        try:
            message = messages.get_nowait()
        except queue.Empty:
            return
        deliver(message)


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "a launched process failed"


# --------------------------------------------------------------------------- batch norm across ranks


@contextmanager
def synced_batch_norm(group: Any = None) -> Iterator[None]:
    """Within the block, every training-mode ``F.batch_norm`` normalizes with the global batch's statistics.

    Covers ``nn.BatchNorm2d`` and the supernet's channel-sliced dynamic batch norm alike, since both
    call ``F.batch_norm``. Outside a process group (or with one process) nothing changes. Use it
    around the forward passes of a distributed training step only: every rank must run the same
    layers in the same order inside it (the same subnet), because each batch norm is an all-reduce.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size(group) == 1:
        yield
        return
    with _SyncedBatchNormMode(group):
        yield


class _SyncedBatchNormMode(TorchFunctionMode):
    """Routes training-mode ``F.batch_norm`` through :func:`_global_batch_norm`."""

    def __init__(self, group: Any) -> None:
        super().__init__()
        self.group = group

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001 (torch's signature)
        kwargs = kwargs or {}
        if func is F.batch_norm:
            bound = _batch_norm_args(*args, **kwargs)
            if bound["training"]:
                return _global_batch_norm(group=self.group, **bound)
        return func(*args, **kwargs)


def _batch_norm_args(
    input: torch.Tensor,  # noqa: A002 (F.batch_norm's name)
    running_mean: torch.Tensor | None,
    running_var: torch.Tensor | None,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> dict[str, Any]:
    return {
        "x": input,
        "running_mean": running_mean,
        "running_var": running_var,
        "weight": weight,
        "bias": bias,
        "training": training,
        "momentum": momentum,
        "eps": eps,
    }


def _global_batch_norm(
    x: torch.Tensor,
    running_mean: torch.Tensor | None,
    running_var: torch.Tensor | None,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    training: bool,
    momentum: float,
    eps: float,
    group: Any,
) -> torch.Tensor:
    # One all-reduce of (sum, sum of squares, count) per channel, in float64 so the E[x^2] - E[x]^2
    # variance keeps float32 precision.
    chs = x.size(1)
    dims = [0, *range(2, x.ndim)]
    local_count = x.numel() // chs
    xd = x.double()
    stats = torch.cat([xd.sum(dims), (xd * xd).sum(dims), xd.new_full((1,), float(local_count))])
    stats = _AllReduceSum.apply(stats, group)
    count = stats[-1]
    mean = stats[:chs] / count
    var = (stats[chs : 2 * chs] / count - mean * mean).clamp_min(0.0)
    shape = (1, chs) + (1,) * (x.ndim - 2)
    y = ((xd - mean.view(shape)) * torch.rsqrt(var.view(shape) + eps)).to(x.dtype)
    if weight is not None:
        y = y * weight.view(shape)
    if bias is not None:
        y = y + bias.view(shape)
    if running_mean is not None and running_var is not None:
        with torch.no_grad():
            unbiased = var * count / (count - 1).clamp_min(1.0)
            running_mean.mul_(1.0 - momentum).add_(mean.to(running_mean.dtype), alpha=momentum)
            running_var.mul_(1.0 - momentum).add_(unbiased.to(running_var.dtype), alpha=momentum)
    return y


class _AllReduceSum(torch.autograd.Function):
    """A sum over ranks whose backward sums the gradients over ranks: every rank's statistics feed
    every rank's output, which is what makes N processes equal one process on the global batch."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor, group: Any) -> torch.Tensor:  # noqa: D102
        ctx.group = group
        total = tensor.clone()
        dist.all_reduce(total, group=group)
        return total

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # noqa: D102
        total = grad.clone()
        dist.all_reduce(total, group=ctx.group)
        return total, None
