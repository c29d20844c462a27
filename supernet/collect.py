"""Accuracy-data collection: evaluate many subnets and write the CSV the accuracy predictor learns from.

Subnets are drawn stratified over MACs: a large uniform pool is binned into equal-width MAC bins and
the sample takes turns across the bins, so small and large subnets are as well represented as the
crowded middle. Each subnet is extracted, its BN statistics re-estimated on training images, and its
top-1 accuracy measured on held-out images.

CSV columns: ``arch,accuracy,macs,params,precision,space`` — ``arch`` is a JSON object with ``ks``,
``e``, ``d``, ``r``; ``accuracy`` is top-1 in percent, measured in ``precision`` (``fp32``, or ``int8``
fake-quantized), so a predictor trained on the file knows which accuracy it models; ``space`` is the
registered search space the supernet's subnets belong to (empty when none has its widths and classes),
so the predictor is labelled with the space whose LUTs can price its subnets.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from space import Subnet, get_space

from supernet._arch import sample_arch
from supernet._family import search_space_name, subnet_counts
from supernet.complexity import subnet_complexity
from supernet.data import ImageDataset
from supernet.evaluate import DEFAULT_CALIB_IMAGES, SubnetResult, evaluate_subnet
from supernet.distributed import current_context
from supernet.ofa_mbv3 import OFAMobileNetV3
from supernet.quantize import check_precision

__all__ = [
    "CSV_COLUMNS",
    "collect_accuracy_data",
    "read_accuracy_csv",
    "sample_stratified_archs",
    "search_space_name",
    "write_accuracy_csv",
]

logger = logging.getLogger(__name__)

CSV_COLUMNS = ("arch", "accuracy", "macs", "params", "precision", "space")
# Candidates drawn per requested sample before stratifying.
_POOL_FACTOR = 20


def sample_stratified_archs(
    net: OFAMobileNetV3,
    n: int,
    resolutions: Sequence[int],
    rng: np.random.Generator | int | None = None,
    n_bins: int | None = None,
) -> list[dict[str, Any]]:
    """Draw ``n`` distinct subnets spread evenly over the MAC range.

    Args:
        net: the supernet (its choices and widths).
        n: how many subnets.
        resolutions: resolutions to draw ``r`` from.
        rng: a numpy Generator or a seed.
        n_bins: MAC bins (default ``min(n, 10)``).

    Returns:
        Arch dicts with ``r``, in sampling order.

    Raises:
        ValueError: ``n`` < 1 or no resolutions.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not resolutions:
        raise ValueError("resolutions is empty; give at least one")
    generator = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    pool = _distinct_pool(net, max(n * _POOL_FACTOR, 200), resolutions, generator)
    if isinstance(net, OFAMobileNetV3):
        macs = np.array([subnet_complexity(net.config, a)[0] for a in pool], dtype=np.float64)
    else:
        name = search_space_name(net.config)
        space = get_space(name) if name else None
        macs = np.array([subnet_counts(net, a, space)[0] for a in pool], dtype=np.float64)
    bins = n_bins or min(n, 10)
    edges = np.linspace(macs.min(), macs.max(), bins + 1)
    which = np.clip(np.searchsorted(edges, macs, side="right") - 1, 0, bins - 1)
    buckets = [list(generator.permutation(np.flatnonzero(which == b))) for b in range(bins)]
    picked: list[int] = []
    while len(picked) < min(n, len(pool)):
        for bucket in buckets:
            if bucket and len(picked) < n:
                picked.append(int(bucket.pop()))
    return [pool[i] for i in picked]


def _distinct_pool(
    net: Any, size: int, resolutions: Sequence[int], generator: np.random.Generator
) -> list[dict[str, Any]]:
    """Up to ``size`` draws of the supernet's subnets, duplicates (the same network) dropped."""
    pool: list[dict[str, Any]] = []
    seen: set[str] = set()
    for _ in range(size):
        if isinstance(net, OFAMobileNetV3):
            arch = sample_arch(net.choices, generator, resolutions)
            key = _canonical_key(arch, net.choices.max_depth)
        else:  # the supernet draws its own family's arch and reads it back canonical (inactive entries as set)
            net.sample_active_subnet(generator, resolutions)
            arch = net.active_arch()
            key = json.dumps(arch, sort_keys=True)
        if key not in seen:
            seen.add(key)
            pool.append(arch)
    if not isinstance(net, OFAMobileNetV3):
        net.set_max_net()
    return pool


def _canonical_key(arch: dict[str, Any], max_depth: int) -> str:
    active = [s * max_depth + j for s, depth in enumerate(arch["d"]) for j in range(depth)]
    return json.dumps([[arch["ks"][i] for i in active], [arch["e"][i] for i in active], arch["d"], arch.get("r")])


def collect_accuracy_data(
    net: OFAMobileNetV3,
    calib_data: ImageDataset,
    eval_data: ImageDataset,
    n_samples: int,
    resolutions: Sequence[int],
    seed: int = 0,
    calib_images: int = DEFAULT_CALIB_IMAGES,
    batch_size: int = 256,
    archs: Iterable[dict[str, Any]] | None = None,
    progress: Callable[[int, int, SubnetResult], None] | None = None,
    precision: str = "fp32",
) -> list[SubnetResult]:
    """Evaluate ``n_samples`` subnets (stratified over MACs) or the given ``archs``.

    Inside a torch.distributed process group every rank draws the same list and evaluates every
    ``world_size``-th subnet of it (BN recalibration included); the ranks then exchange their
    numbers, so each returns the whole list, every subnet evaluated exactly once. Subnet ``i`` is
    calibrated with seed ``seed + i`` whichever rank runs it, so any number of processes gives the
    same results.

    Args:
        net: the trained supernet.
        calib_data: training images for BN recalibration.
        eval_data: held-out images.
        n_samples: subnets to draw (ignored when ``archs`` is given).
        resolutions: resolutions to draw ``r`` from.
        seed: seeds sampling and calibration-image choice.
        calib_images: calibration images per subnet.
        batch_size: evaluation batch size.
        archs: evaluate exactly these instead of sampling.
        progress: called as ``progress(done, total, result)`` after each subnet this process evaluates.
        precision: ``fp32``, or ``int8`` to measure each subnet quantized (see :mod:`supernet.quantize`).

    Returns:
        One result per subnet, in order.

    Raises:
        ValueError: an unknown precision.
    """
    check_precision(precision)
    ctx = current_context()
    rng = np.random.default_rng(seed)
    todo = list(archs) if archs is not None else sample_stratified_archs(net, n_samples, resolutions, rng)
    mine = range(ctx.rank, len(todo), ctx.world_size)
    results: dict[int, SubnetResult] = {}
    for done, i in enumerate(mine, start=1):
        result = evaluate_subnet(
            net, todo[i], calib_data, eval_data, calib_images, batch_size, seed + i, precision=precision
        )
        results[i] = result
        logger.debug("subnet %d/%d: %.2f%% at %d MACs", i + 1, len(todo), result.accuracy, result.macs)
        if progress is not None:
            progress(done, len(mine), result)
    if ctx.is_distributed:
        return _exchange(results, todo, ctx.device, precision)
    return [results[i] for i in range(len(todo))]


def _exchange(
    mine: dict[int, SubnetResult], todo: list[dict[str, Any]], device: str, precision: str
) -> list[SubnetResult]:
    # One all-reduce of (evaluated, accuracy, MACs, params) per subnet: each row is filled by exactly one
    # rank (float64 holds MAC counts exactly), so the sum is every rank's results.
    import torch
    import torch.distributed as dist

    table = torch.zeros((len(todo), 4), dtype=torch.float64, device=device)
    for i, result in mine.items():
        table[i] = torch.tensor([1.0, result.accuracy, result.macs, result.params], dtype=torch.float64)
    dist.all_reduce(table)
    table = table.cpu()
    counts = table[:, 0].tolist()
    if any(c != 1.0 for c in counts):
        raise RuntimeError(f"subnets evaluated {counts} times; each must be evaluated exactly once")
    return [
        SubnetResult(
            arch=Subnet.parse(todo[i]).to_arch() if "ks" in todo[i] else dict(todo[i]),
            accuracy=float(table[i, 1]),
            macs=int(table[i, 2]),
            params=int(table[i, 3]),
            precision=precision,
        )
        for i in range(len(todo))
    ]


def write_accuracy_csv(results: Iterable[SubnetResult], path: str | Path, space: str | None = None) -> Path:
    """Write ``arch,accuracy,macs,params,precision,space`` rows (arch as compact JSON).

    Args:
        results: the evaluated subnets.
        path: the CSV file.
        space: the supernet's registered search space (:func:`search_space_name`); None leaves the column empty.

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_COLUMNS)
        for result in results:
            arch = json.dumps(result.arch, separators=(",", ":"))
            writer.writerow([arch, f"{result.accuracy:.4f}", result.macs, result.params, result.precision, space or ""])
    return path


def read_accuracy_csv(path: str | Path) -> list[SubnetResult]:
    """Read a file written by :func:`write_accuracy_csv` (``macs``, ``params``, ``precision`` optional).

    Raises:
        ValueError: the header lacks ``arch`` or ``accuracy``, or a row does not parse.
    """
    path = Path(path)
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        if "arch" not in header or "accuracy" not in header:
            raise ValueError(f"{path}: header {header!r} lacks the columns arch and accuracy")
        out = []
        for line_no, row in enumerate(reader, start=2):
            try:
                out.append(
                    SubnetResult(
                        arch=json.loads(row["arch"]),
                        accuracy=float(row["accuracy"]),
                        macs=int(row.get("macs") or 0),
                        params=int(row.get("params") or 0),
                        precision=row.get("precision") or "fp32",
                    )
                )
            except (ValueError, TypeError) as err:
                raise ValueError(f"{path}:{line_no}: cannot parse row: {err}") from err
    return out
