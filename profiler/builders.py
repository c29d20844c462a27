"""Block and subnet builders: the torch modules of the blocks a LUT times, with seeded weights, for every family.

Every block kind has a module made of :mod:`layers`, with Once-for-All semantics:

- ``first_conv``: 3×3 stride-2 :class:`layers.ConvBNAct` with the block's activation (h_swish, or ReLU6 in
  ProxylessNAS).
- ``mbconv``: :class:`layers.ResidualBlock` around a :class:`layers.MBConv` (identity add when ``skip``).
- ``final_expand``: 1×1 conv → BN → activation (ProxylessNAS's feature mix on the last map is this kind).
- ``avgpool``: :class:`layers.GlobalAvgPool`.
- ``feature_mix``: 1×1 conv (no bias, no BN) → h_swish.
- ``classifier``: :class:`layers.Classifier`, pooling globally first when its input map is larger than 1×1.
- ``conv_bn_act``: k×k :class:`layers.ConvBNAct` (ResNet50's stem), in a :class:`layers.ResidualBlock` when
  ``skip``.
- ``maxpool``: :class:`layers.MaxPool`.
- ``bottleneck``: :class:`layers.Bottleneck` (avg-pool + 1×1 conv shortcut when it changes shape).

Weights, biases and BN statistics are drawn from a ``torch.Generator`` seeded from the block key and a
seed, so the same block always gets the same module: He-normal conv and linear weights, BN scale in
[0.5, 1.5] (in [0.1, 0.3] on the last BN of a block's branch with an identity skip, so activations stay O(10)
through a whole subnet), random BN shift, mean and variance. Modules are returned in eval mode; the
exporters fold BN into the convolutions with :func:`layers.fold_conv_bn`.

A whole subnet is the same block modules in run order (:class:`layers.SubnetModel`), so its layers are exactly
the blocks the LUT times.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from layers import (
    Bottleneck,
    Classifier,
    ConvBNAct,
    GlobalAvgPool,
    MaxPool,
    MBConv,
    ResidualBlock,
    SubnetModel,
)
from space import BLOCK_KINDS, Block, read_net_config

__all__ = [
    "build_block",
    "build_blocks",
    "build_from_net_config",
    "build_subnet",
]

logger = logging.getLogger(__name__)


def _derive_seed(seed: int, tag: str) -> int:
    digest = hashlib.sha256(f"{seed}|{tag}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def _module_for(block: Block) -> nn.Module:
    kind = block.kind
    if kind == "first_conv":
        return ConvBNAct(block.in_chs, block.out_chs, block.kernel, block.stride, act=block.act)
    if kind == "mbconv":
        layer = MBConv(
            block.in_chs, block.mid_chs, block.out_chs, kernel=block.kernel, stride=block.stride, act=block.act, se=block.se
        )
        return ResidualBlock(layer, shortcut=block.skip)
    if kind == "final_expand":
        return ConvBNAct(block.in_chs, block.out_chs, 1, act=block.act)
    if kind == "avgpool":
        return GlobalAvgPool()
    if kind == "feature_mix":
        return ConvBNAct(block.in_chs, block.out_chs, 1, act=block.act, bn=False)
    if kind == "classifier":
        return Classifier(block.in_chs, block.out_chs, pool=block.in_hw > 1)
    if kind == "conv_bn_act":
        conv = ConvBNAct(block.in_chs, block.out_chs, block.kernel, block.stride, act=block.act)
        return ResidualBlock(conv, shortcut=True) if block.skip else conv
    if kind == "maxpool":
        return MaxPool(block.kernel, block.stride)
    if kind == "bottleneck":
        return Bottleneck(block.in_chs, block.mid_chs, block.out_chs, block.kernel, block.stride, act=block.act)
    raise ValueError(f"unknown block kind {kind!r}; known: {', '.join(BLOCK_KINDS)}")


@torch.no_grad()
def _randomize(module: nn.Module, gen: torch.Generator) -> None:
    """Fill every parameter and BN statistic in place with seeded values that keep activations O(1)."""
    for sub in module.modules():
        if isinstance(sub, (nn.Conv2d, nn.Linear)):
            fan_in = sub.weight[0].numel()
            sub.weight.normal_(0.0, (2.0 / fan_in) ** 0.5, generator=gen)
            if sub.bias is not None:
                sub.bias.normal_(0.0, 0.1, generator=gen)
        elif isinstance(sub, nn.BatchNorm2d):
            sub.weight.uniform_(0.5, 1.5, generator=gen)
            sub.bias.normal_(0.0, 0.1, generator=gen)
            sub.running_mean.normal_(0.0, 0.1, generator=gen)
            sub.running_var.uniform_(0.5, 1.5, generator=gen)
            if sub.num_batches_tracked is not None:
                sub.num_batches_tracked.zero_()


def _build(block: Block, seed: int, tag: str) -> nn.Module:
    with torch.device("meta"):  # skip torch's default init: every tensor is drawn below
        module = _module_for(block)
    module = module.to_empty(device="cpu")
    gen = torch.Generator().manual_seed(_derive_seed(seed, tag))
    _randomize(module, gen)
    last_bn = _identity_branch_bn(module)
    if last_bn is not None:
        # A small residual-branch scale keeps activations O(1) through a whole subnet's identity adds.
        with torch.no_grad():
            last_bn.weight.uniform_(0.1, 0.3, generator=gen)
    return module.eval()


def _identity_branch_bn(module: nn.Module) -> nn.BatchNorm2d | None:
    """The last BatchNorm of the branch that an identity shortcut is added to, if the module has one."""
    if isinstance(module, Bottleneck):
        return module.conv3.bn if module.keeps_shape else None
    if not (isinstance(module, ResidualBlock) and module.has_skip):
        return None
    branch = module.conv
    return branch.point_linear.bn if isinstance(branch, MBConv) else branch.bn


def build_block(block: Block, seed: int = 0) -> nn.Module:
    """Build the eval-mode torch module of one block, weights and BN statistics fixed by ``seed``.

    Args:
        block: The block.
        seed: Weight seed; the same (block, seed) always gives the same weights.

    Returns:
        The module; its input shape is :func:`layers.block_input_shape`.

    Raises:
        ValueError: The block kind or activation is unknown.
    """
    return _build(block, seed, block.key)


def build_blocks(blocks: Sequence[Block], seed: int = 0) -> SubnetModel:
    """Chain the modules of ``blocks`` (in run order) into one eval-mode model.

    Args:
        blocks: Blocks in run order; each block's input must be the previous block's output.
        seed: Weight seed; each layer's weights depend on the seed, its position and its block key.

    Returns:
        A :class:`SubnetModel` whose ``blocks`` equals ``tuple(blocks)``.

    Raises:
        ValueError: ``blocks`` is empty or two consecutive blocks do not chain.
    """
    if not blocks:
        raise ValueError("blocks is empty; expected at least one block")
    for i, (prev, nxt) in enumerate(zip(blocks, blocks[1:])):
        if (prev.out_chs, prev.out_hw) != (nxt.in_chs, nxt.in_hw):
            raise ValueError(f"block {i + 1} ({nxt.key}) does not take the output of block {i} ({prev.key})")
    layers = [_build(b, seed, f"{i}|{b.key}") for i, b in enumerate(blocks)]
    logger.debug("built %d-block model (seed %d)", len(layers), seed)
    return SubnetModel(blocks, layers).eval()


def build_subnet(space: Any, arch: Any, seed: int = 0) -> SubnetModel:
    """Build a whole subnet of a search space from an arch dict or ``Subnet``.

    Args:
        space: A ``space.SearchSpace``.
        arch: An OFA arch dict (``ks``, ``e``, ``d``, ``r``) or a ``space.Subnet``.
        seed: Weight seed.

    Returns:
        A :class:`SubnetModel` whose ``blocks`` equals ``tuple(space.blocks(arch))``.
    """
    return build_blocks(space.blocks(arch), seed=seed)


def build_from_net_config(
    cfg: Mapping[str, Any] | str | os.PathLike[str], resolution: int, seed: int = 0
) -> SubnetModel:
    """Build a whole network from an OFA ``net.config`` (a dict or a path) at one input resolution.

    Args:
        cfg: The parsed ``net.config`` JSON or its path.
        resolution: Input side in pixels.
        seed: Weight seed.

    Returns:
        A :class:`SubnetModel` whose ``blocks`` equals ``read_net_config(cfg, resolution=resolution)``.
    """
    return build_blocks(read_net_config(cfg, resolution=resolution), seed=seed)
