"""OFA's activations, and one factory that makes them from their names."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ACTIVATIONS", "HSigmoid", "HSwish", "make_act"]

#: Activation names a layer may carry (OFA's ``act_func`` values; ``"none"`` is the identity).
ACTIVATIONS: tuple[str, ...] = ("relu", "relu6", "h_swish", "h_sigmoid", "none")


class HSwish(nn.Module):
    """Hard swish as OFA computes it: ``x * relu6(x + 3) / 6``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * F.relu6(x + 3.0) / 6.0


class HSigmoid(nn.Module):
    """Hard sigmoid as OFA computes it: ``relu6(x + 3) / 6``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu6(x + 3.0) / 6.0


def make_act(name: str | None) -> nn.Module:
    """Make an activation module from its OFA name.

    Args:
        name: One of :data:`ACTIVATIONS`; ``None`` means ``"none"``.

    Returns:
        The module (``nn.Identity`` for ``"none"``).

    Raises:
        ValueError: The name is unknown.
    """
    if name is None or name == "none":
        return nn.Identity()
    if name == "relu":
        return nn.ReLU()
    if name == "relu6":
        return nn.ReLU6()
    if name == "h_swish":
        return HSwish()
    if name == "h_sigmoid":
        return HSigmoid()
    raise ValueError(f"unknown activation {name!r}; known: {', '.join(ACTIVATIONS)}")
