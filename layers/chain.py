"""A chain of layers paired with the :class:`space.Block` each one implements, and the shapes they take."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from space import Block

from .bottleneck import Bottleneck
from .conv import ConvBNAct, MBConv, ResidualBlock
from .head import Classifier, GlobalAvgPool
from .pool import MaxPool

__all__ = ["SubnetModel", "block_input_shape", "block_output_shape", "module_output_shape"]


class SubnetModel(nn.Module):
    """Layers run in order; ``blocks[i]`` is the :class:`space.Block` that ``layers[i]`` implements.

    Args:
        blocks: The blocks, in run order.
        layers: One module per block (they may also belong to another network: nothing is copied).
    """

    def __init__(self, blocks: Sequence[Block], layers: Sequence[nn.Module]) -> None:
        super().__init__()
        if len(blocks) != len(layers):
            raise ValueError(f"blocks and layers differ in length: {len(blocks)} != {len(layers)}")
        self.blocks: tuple[Block, ...] = tuple(blocks)
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    @property
    def input_shape(self) -> tuple[int, ...]:
        """NCHW input shape (batch 1) of the first block."""
        return block_input_shape(self.blocks[0])


def block_input_shape(block: Block) -> tuple[int, ...]:
    """NCHW input shape, batch 1, of a block's module (the classifier takes ``(1, C, 1, 1)``)."""
    return (1, block.in_chs, block.in_hw, block.in_hw)


def block_output_shape(block: Block) -> tuple[int, ...]:
    """Output shape, batch 1, of a block's module: NCHW, or ``(1, classes)`` for the classifier."""
    if block.kind == "classifier":
        return (1, block.out_chs)
    return (1, block.out_chs, block.out_hw, block.out_hw)


def module_output_shape(module: nn.Module, input_shape: Sequence[int]) -> tuple[int, ...]:
    """Output shape of a layer (or :class:`SubnetModel`) of this package for a batch-first NCHW input shape.

    Raises:
        TypeError: The module is not one of this package's layers.
    """
    n = input_shape[0]
    if isinstance(module, SubnetModel):
        shape = tuple(input_shape)
        for layer in module.layers:
            shape = module_output_shape(layer, shape)
        return shape
    if isinstance(module, Classifier):
        return (n, module.out_chs)
    _, c, h, w = input_shape
    if isinstance(module, GlobalAvgPool):
        return (n, c, 1, 1)
    if isinstance(module, MaxPool):
        k, s, p = module.kernel, module.pool_stride, module.kernel // 2
        return (n, c, (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1)
    if isinstance(module, ResidualBlock):
        return module_output_shape(module.conv, input_shape)
    if isinstance(module, Bottleneck):
        _, _, oh, ow = module_output_shape(module.conv2, (n, module.mid_chs, h, w))
        return (n, module.out_chs, oh, ow)
    if isinstance(module, MBConv):
        _, _, oh, ow = module_output_shape(module.depth_conv, (n, module.mid_chs, h, w))
        return (n, module.out_chs, oh, ow)
    if isinstance(module, ConvBNAct):
        k, s, p = module.kernel, module.stride, module.kernel // 2
        return (n, module.out_chs, (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1)
    raise TypeError(
        f"unsupported module type {type(module).__name__}; "
        "expected ConvBNAct, ResidualBlock, MBConv, Bottleneck, MaxPool, GlobalAvgPool, Classifier or SubnetModel"
    )
