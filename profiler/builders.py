"""Torch modules for the blocks of an OFA-MobileNetV3 subnet, with random but seeded weights.

Every block kind that the LUT times has a module here, with Once-for-All semantics:

- ``first_conv``: 3×3 stride-2 conv → BN → h_swish.
- ``mbconv``: 1×1 expand conv → BN → act (absent when ``mid_chs == in_chs``, i.e. expand ratio 1),
  k×k depthwise conv (padding ``k // 2``) → BN → act, squeeze-excite when ``se``, 1×1 project conv → BN,
  identity add when ``skip``.
- ``final_expand``: 1×1 conv → BN → h_swish.
- ``avgpool``: global average pool, keeping a 1×1 spatial size.
- ``feature_mix``: 1×1 conv (no bias, no BN) → h_swish.
- ``classifier``: flatten → Linear with bias.

Weights, biases and BN statistics are drawn from a ``torch.Generator`` seeded from the block key and a
seed, so the same block always gets the same module: He-normal conv and linear weights, BN scale in
[0.5, 1.5] (in [0.1, 0.3] on the project conv of a block with an identity skip, so activations stay O(10)
through a whole subnet), random BN shift, mean and variance. Modules are returned in eval mode; the
exporters fold BN into the convolutions with :func:`fold_conv_bn`.

A whole subnet is the same block modules in run order (:class:`SubnetModel`), so its layers are exactly
the blocks the LUT times.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from space import Block, make_divisible

__all__ = [
    "ACTIVATIONS",
    "BLOCK_KINDS",
    "ActName",
    "Classifier",
    "ConvBNAct",
    "GlobalAvgPool",
    "HSigmoid",
    "HSwish",
    "MBConv",
    "SqueezeExcite",
    "SubnetModel",
    "block_input_shape",
    "block_output_shape",
    "build_block",
    "build_blocks",
    "build_from_net_config",
    "build_subnet",
    "fold_conv_bn",
    "module_output_shape",
    "se_mid_chs",
]

logger = logging.getLogger(__name__)

ActName = Literal["relu", "h_swish", "none"]
#: Activation names a block may carry.
ACTIVATIONS: tuple[str, ...] = ("relu", "h_swish", "none")
#: Block kinds that :func:`build_block` knows.
BLOCK_KINDS: tuple[str, ...] = ("first_conv", "mbconv", "final_expand", "avgpool", "feature_mix", "classifier")

SE_REDUCTION = 4  # OFA's squeeze-excite reduction
CHANNEL_DIVISOR = 8  # OFA's MyNetwork.CHANNEL_DIVISIBLE
BN_EPS = 1e-5  # OFA's default BN epsilon


class HSwish(nn.Module):
    """h_swish(x) = x * relu6(x + 3) / 6."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.nn.functional.relu6(x + 3.0) / 6.0


class HSigmoid(nn.Module):
    """h_sigmoid(x) = relu6(x + 3) / 6."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.relu6(x + 3.0) / 6.0


def _make_act(act: str) -> nn.Module:
    if act == "relu":
        return nn.ReLU()
    if act == "h_swish":
        return HSwish()
    if act == "none":
        return nn.Identity()
    raise ValueError(f"unknown activation {act!r}; known: {', '.join(ACTIVATIONS)}")


class ConvBNAct(nn.Module):
    """Conv2d (no bias) → optional BatchNorm → activation, with symmetric padding ``kernel // 2``.

    Args:
        in_chs: Input channels.
        out_chs: Output channels.
        kernel: Square kernel size.
        stride: Stride.
        groups: Convolution groups (``in_chs`` for depthwise).
        act: Activation name, one of :data:`ACTIVATIONS`.
        bn: Whether a BatchNorm follows the convolution.
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel: int = 1,
        stride: int = 1,
        groups: int = 1,
        act: str = "relu",
        bn: bool = True,
    ) -> None:
        super().__init__()
        self.in_chs = in_chs
        self.out_chs = out_chs
        self.kernel = kernel
        self.stride = stride
        self.groups = groups
        self.act_name = act
        self.conv = nn.Conv2d(in_chs, out_chs, kernel, stride, kernel // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_chs, eps=BN_EPS) if bn else None
        self.act = _make_act(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return self.act(x)

    def folded(self) -> tuple[np.ndarray, np.ndarray | None]:
        """The convolution with BN folded in: (weight OIHW, bias or None), float32; see :func:`fold_conv_bn`."""
        return fold_conv_bn(self.conv, self.bn)


class SqueezeExcite(nn.Module):
    """OFA squeeze-excite: mean → 1×1 conv (bias) → ReLU → 1×1 conv (bias) → h_sigmoid → multiply.

    Args:
        chs: Channels of the tensor being gated.
        mid_chs: Squeezed channels (``make_divisible(chs // 4, 8)`` in OFA).
    """

    def __init__(self, chs: int, mid_chs: int) -> None:
        super().__init__()
        self.chs = chs
        self.mid_chs = mid_chs
        self.reduce = nn.Conv2d(chs, mid_chs, 1, bias=True)
        self.relu = nn.ReLU()
        self.expand = nn.Conv2d(mid_chs, chs, 1, bias=True)
        self.gate = HSigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=(2, 3), keepdim=True)
        s = self.gate(self.expand(self.relu(self.reduce(s))))
        return x * s


class MBConv(nn.Module):
    """OFA inverted-residual block (MBConvLayer, optionally inside a ResidualBlock with identity shortcut).

    Args:
        in_chs: Input channels.
        mid_chs: Expanded channels; equal to ``in_chs`` means no expand conv (expand ratio 1).
        out_chs: Output channels.
        kernel: Depthwise kernel size.
        stride: Depthwise stride.
        act: Activation of the expand and depthwise convs.
        se: Whether a squeeze-excite follows the depthwise conv.
        skip: Whether the block adds its input to its output.
    """

    def __init__(
        self,
        in_chs: int,
        mid_chs: int,
        out_chs: int,
        kernel: int = 3,
        stride: int = 1,
        act: str = "relu",
        se: bool = False,
        skip: bool = False,
    ) -> None:
        super().__init__()
        self.in_chs = in_chs
        self.mid_chs = mid_chs
        self.out_chs = out_chs
        self.has_expand = mid_chs != in_chs
        self.has_skip = skip
        self.expand = ConvBNAct(in_chs, mid_chs, 1, act=act) if self.has_expand else None
        self.dw = ConvBNAct(mid_chs, mid_chs, kernel, stride, groups=mid_chs, act=act)
        self.se = SqueezeExcite(mid_chs, se_mid_chs(mid_chs)) if se else None
        self.project = ConvBNAct(mid_chs, out_chs, 1, act="none")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(x) if self.expand is not None else x
        y = self.dw(y)
        if self.se is not None:
            y = self.se(y)
        y = self.project(y)
        return x + y if self.has_skip else y


class GlobalAvgPool(nn.Module):
    """Mean over H and W, keeping a 1×1 spatial size (OFA's ``AvgPool2D`` LUT entry)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3), keepdim=True)


class Classifier(nn.Module):
    """Flatten → Linear with bias (OFA's ``Logits`` LUT entry).

    Args:
        in_chs: Input features.
        out_chs: Classes.
    """

    def __init__(self, in_chs: int, out_chs: int) -> None:
        super().__init__()
        self.in_chs = in_chs
        self.out_chs = out_chs
        self.linear = nn.Linear(in_chs, out_chs, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(torch.flatten(x, 1))


class SubnetModel(nn.Module):
    """Block modules run in order; ``blocks[i]`` is the :class:`space.Block` that ``layers[i]`` implements.

    Args:
        blocks: The blocks, in run order.
        layers: One module per block.
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


def se_mid_chs(chs: int) -> int:
    """Squeezed channels of OFA's squeeze-excite on ``chs`` channels."""
    return make_divisible(chs // SE_REDUCTION, CHANNEL_DIVISOR)


def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Fold an eval-mode BatchNorm into the preceding convolution.

    Args:
        conv: The convolution (with or without bias).
        bn: The BatchNorm that follows it, or None.

    Returns:
        (weight, bias) as float32 numpy arrays, weight in OIHW layout; bias is None when the convolution has
        no bias and no BatchNorm follows it.
    """
    with torch.no_grad():
        w = conv.weight.detach().to(torch.float64)
        b = conv.bias.detach().to(torch.float64) if conv.bias is not None else None
        if bn is not None:
            scale = bn.weight.detach().to(torch.float64) / torch.sqrt(bn.running_var.to(torch.float64) + bn.eps)
            w = w * scale.reshape(-1, 1, 1, 1)
            b0 = b if b is not None else torch.zeros(w.shape[0], dtype=torch.float64)
            b = (b0 - bn.running_mean.to(torch.float64)) * scale + bn.bias.detach().to(torch.float64)
    return w.numpy().astype(np.float32), (b.numpy().astype(np.float32) if b is not None else None)


def module_output_shape(module: nn.Module, input_shape: Sequence[int]) -> tuple[int, ...]:
    """Output shape of a builders module (or :class:`SubnetModel`) for a batch-first NCHW input shape.

    Raises:
        TypeError: The module is not one of this module's classes.
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
    if isinstance(module, MBConv):
        _, _, oh, ow = module_output_shape(module.dw, (n, module.mid_chs, h, w))
        return (n, module.out_chs, oh, ow)
    if isinstance(module, ConvBNAct):
        k, s, p = module.kernel, module.stride, module.kernel // 2
        return (n, module.out_chs, (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1)
    raise TypeError(
        f"unsupported module type {type(module).__name__}; "
        "expected ConvBNAct, MBConv, GlobalAvgPool, Classifier or SubnetModel"
    )


def block_input_shape(block: Block) -> tuple[int, ...]:
    """NCHW input shape, batch 1, of a block's module (the classifier takes ``(1, C, 1, 1)``)."""
    return (1, block.in_chs, block.in_hw, block.in_hw)


def block_output_shape(block: Block) -> tuple[int, ...]:
    """Output shape, batch 1, of a block's module: NCHW, or ``(1, classes)`` for the classifier."""
    if block.kind == "classifier":
        return (1, block.out_chs)
    return (1, block.out_chs, block.out_hw, block.out_hw)


def _derive_seed(seed: int, tag: str) -> int:
    digest = hashlib.sha256(f"{seed}|{tag}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def _module_for(block: Block) -> nn.Module:
    kind = block.kind
    if kind == "first_conv":
        return ConvBNAct(block.in_chs, block.out_chs, block.kernel, block.stride, act=block.act)
    if kind == "mbconv":
        return MBConv(
            block.in_chs,
            block.mid_chs,
            block.out_chs,
            kernel=block.kernel,
            stride=block.stride,
            act=block.act,
            se=block.se,
            skip=block.skip,
        )
    if kind == "final_expand":
        return ConvBNAct(block.in_chs, block.out_chs, 1, act=block.act)
    if kind == "avgpool":
        return GlobalAvgPool()
    if kind == "feature_mix":
        return ConvBNAct(block.in_chs, block.out_chs, 1, act=block.act, bn=False)
    if kind == "classifier":
        return Classifier(block.in_chs, block.out_chs)
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
    if isinstance(module, MBConv) and module.has_skip:
        # A small residual-branch scale keeps activations O(1) through a whole subnet's identity adds.
        with torch.no_grad():
            module.project.bn.weight.uniform_(0.1, 0.3, generator=gen)
    return module.eval()


def build_block(block: Block, seed: int = 0) -> nn.Module:
    """Build the eval-mode torch module of one block, weights and BN statistics fixed by ``seed``.

    Args:
        block: The block.
        seed: Weight seed; the same (block, seed) always gives the same weights.

    Returns:
        The module; its input shape is :func:`block_input_shape`.

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
    from space import read_net_config

    return build_blocks(read_net_config(cfg, resolution=resolution), seed=seed)
