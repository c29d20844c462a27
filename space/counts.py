"""Multiply-adds and parameter counts of one block, counted as OFA's profiler counts them.

Convolutions and linear layers (squeeze-excite included) count their multiply-adds; batch norm
and activations count none; parameters include batch-norm scale and shift. The search's MACs
tables and the LUT transfer's block features both count with these.
"""

from __future__ import annotations

from space.block import Block
from space.search_space import se_mid_chs

__all__ = ["block_macs", "block_params"]


def block_macs(block: Block) -> int:
    """Multiply-adds of one block (batch norm and activations not counted)."""
    hw_in, hw_out = block.in_hw * block.in_hw, block.out_hw * block.out_hw
    if block.kind == "first_conv":
        return hw_out * block.in_chs * block.out_chs * block.kernel * block.kernel
    if block.kind == "mbconv":
        mid = block.mid_chs
        macs = 0 if mid == block.in_chs else hw_in * block.in_chs * mid
        macs += hw_out * mid * block.kernel * block.kernel
        if block.se:
            macs += 2 * mid * se_mid_chs(mid)
        return macs + hw_out * mid * block.out_chs
    if block.kind == "final_expand":
        return hw_in * block.in_chs * block.out_chs
    if block.kind in ("feature_mix", "classifier"):
        return block.in_chs * block.out_chs
    if block.kind == "conv_bn_act":
        return hw_out * block.in_chs * block.out_chs * block.kernel * block.kernel
    if block.kind == "bottleneck":
        mid = block.mid_chs
        macs = hw_in * block.in_chs * mid + hw_out * mid * mid * block.kernel * block.kernel + hw_out * mid * block.out_chs
        return macs + (0 if block.skip else hw_out * block.in_chs * block.out_chs)  # the downsample 1x1 conv
    return 0  # avgpool, maxpool


def block_params(block: Block) -> int:
    """Parameters of one block, batch-norm scale and shift included."""
    if block.kind == "first_conv":
        return block.in_chs * block.out_chs * block.kernel * block.kernel + 2 * block.out_chs
    if block.kind == "mbconv":
        mid = block.mid_chs
        params = 0 if mid == block.in_chs else block.in_chs * mid + 2 * mid
        params += mid * block.kernel * block.kernel + 2 * mid
        if block.se:
            se = se_mid_chs(mid)
            params += 2 * mid * se + se + mid
        return params + mid * block.out_chs + 2 * block.out_chs
    if block.kind == "final_expand":
        return block.in_chs * block.out_chs + 2 * block.out_chs
    if block.kind == "feature_mix":
        return block.in_chs * block.out_chs  # no bias, no batch norm
    if block.kind == "classifier":
        return block.in_chs * block.out_chs + block.out_chs
    if block.kind == "conv_bn_act":
        return block.in_chs * block.out_chs * block.kernel * block.kernel + 2 * block.out_chs
    if block.kind == "bottleneck":
        mid = block.mid_chs
        params = block.in_chs * mid + 2 * mid + mid * mid * block.kernel * block.kernel + 2 * mid
        params += mid * block.out_chs + 2 * block.out_chs
        return params + (0 if block.skip else block.in_chs * block.out_chs + 2 * block.out_chs)
    return 0  # avgpool, maxpool
