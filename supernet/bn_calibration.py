"""BatchNorm recalibration: re-estimate a subnet's BN statistics on a few batches.

A subnet's slice of the supernet's running statistics was accumulated while many other subnets
trained, so OFA re-estimates them for each subnet before evaluating it. Run this on an extracted
static subnet (``get_active_subnet()``) so the supernet's own statistics are left alone.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import torch
from torch import nn

__all__ = ["recalibrate_bn"]

logger = logging.getLogger(__name__)


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Iterable[torch.Tensor], max_batches: int | None = None) -> int:
    """Replace every BatchNorm's running mean and variance by their average over ``batches``.

    The model is left in eval mode. Other layers (dropout) run in eval mode during the pass.

    Args:
        model: the network to recalibrate (modified in place).
        batches: input tensors (already at the resolution the model will be evaluated at).
        max_batches: stop after this many batches.

    Returns:
        The number of batches used.

    Raises:
        ValueError: ``batches`` was empty.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    saved_momentum = [bn.momentum for bn in norms]
    model.eval()
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the batches seen
        bn.train()
    used = 0
    try:
        for x in batches:
            if max_batches is not None and used >= max_batches:
                break
            model(x)
            used += 1
    finally:
        for bn, momentum in zip(norms, saved_momentum):
            bn.momentum = momentum
            bn.eval()
    if used == 0:
        raise ValueError("recalibrate_bn needs at least one batch, got none")
    logger.debug("recalibrated %d BatchNorm layers on %d batches", len(norms), used)
    return used
