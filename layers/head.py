"""The fixed heads of OFA's networks: global pooling and the classifier (which may pool first)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["Classifier", "GlobalAvgPool", "global_avg_pool"]


def global_avg_pool(x: torch.Tensor) -> torch.Tensor:
    """Mean over H and W, keeping them as size 1."""
    return x.mean(dim=(2, 3), keepdim=True)


class GlobalAvgPool(nn.Module):
    """:func:`global_avg_pool` as a module (OFA's ``AvgPool2D`` LUT entry)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return global_avg_pool(x)


class Classifier(nn.Module):
    """Flatten → dropout → Linear with bias (OFA's ``LinearLayer`` classifier, its ``Logits`` LUT entry).

    Args:
        in_chs: Input features.
        out_chs: Classes.
        dropout_rate: Dropout before the linear layer (training only).
        pool: Pool globally first: ProxylessNAS's and ResNet50's ``Logits`` entry is keyed by the map it pools.
    """

    def __init__(self, in_chs: int, out_chs: int, dropout_rate: float = 0.0, pool: bool = False) -> None:
        super().__init__()
        self.in_chs = in_chs
        self.out_chs = out_chs
        self.dropout_rate = dropout_rate
        self.pool = pool
        self.dropout = nn.Dropout(dropout_rate) if dropout_rate > 0 else nn.Identity()
        self.linear = nn.Linear(in_chs, out_chs, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool:
            x = global_avg_pool(x)
        return self.linear(self.dropout(torch.flatten(x, 1)))
