"""Max pooling as OFA-ResNet50 runs it after its input stem: a kxk window, stride s, padding ``k // 2``."""

from __future__ import annotations

from torch import nn

from .conv import same_padding

__all__ = ["MaxPool"]


class MaxPool(nn.MaxPool2d):
    """``nn.MaxPool2d`` with symmetric ``kernel // 2`` padding (padded cells never win), no parameters.

    Args:
        kernel: Square, odd window size.
        stride: Stride.
    """

    def __init__(self, kernel: int = 3, stride: int = 2) -> None:
        super().__init__(kernel_size=kernel, stride=stride, padding=same_padding(kernel))
        self.kernel = kernel
        self.pool_stride = stride
