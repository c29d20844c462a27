"""Torch block builders: OFA semantics, seeding, and whole subnets made of exactly the LUT's blocks."""

from __future__ import annotations

import numpy as np
import pytest
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
    block_input_shape,
    block_output_shape,
    fold_conv_bn,
    module_output_shape,
)
from profiler.builders import build_block, build_blocks, build_from_net_config, build_subnet
from space import Block, ResNetSpace, get_space, make_divisible, read_net_config

KIND_BLOCKS = {
    "first_conv": Block.first_conv(64, 16),
    "mbconv_first": Block.mbconv(32, 16, 16, 16, kernel=3, stride=1, skip=True, se=False, act="relu"),
    "mbconv_se_skip": Block.mbconv(14, 40, 40, 160, kernel=5, stride=1, skip=True, se=True, act="relu"),
    "mbconv_s2_hs": Block.mbconv(14, 40, 80, 240, kernel=7, stride=2, skip=False, se=False, act="h_swish"),
    "final_expand": Block.fixed("final_expand", 4, 160, 4, 960),
    "avgpool": Block.fixed("avgpool", 4, 960, 1, 960),
    "feature_mix": Block.fixed("feature_mix", 1, 960, 1, 1280),
    "classifier": Block.fixed("classifier", 1, 1280, 1, 1000),
}

ARCH = {"ks": [3, 5, 7, 3] * 5, "e": [3, 4, 6, 4] * 5, "d": [2, 3, 4, 3, 4], "r": 128}


def _x(shape: tuple[int, ...], seed: int = 1) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", sorted(KIND_BLOCKS))
def test_block_module_runs_with_block_shapes(name: str) -> None:
    block = KIND_BLOCKS[name]
    module = build_block(block)
    assert not module.training
    with torch.no_grad():
        y = module(_x(block_input_shape(block)))
    assert tuple(y.shape) == block_output_shape(block)
    assert module_output_shape(module, block_input_shape(block)) == block_output_shape(block)
    assert torch.isfinite(y).all()


def test_mbconv_structure_follows_ofa() -> None:
    first = build_block(KIND_BLOCKS["mbconv_first"])
    assert isinstance(first, ResidualBlock) and isinstance(first.conv, MBConv) and first.has_skip
    assert first.conv.inverted_bottleneck is None and first.conv.se is None
    se = build_block(KIND_BLOCKS["mbconv_se_skip"]).conv
    expand, dw, project = se.inverted_bottleneck, se.depth_conv, se.point_linear
    assert expand is not None and expand.kernel == 1 and expand.act_name == "relu"
    assert dw.groups == 160 and dw.kernel == 5 and dw.conv.padding == (2, 2)
    assert se.se is dw.se and se.se.mid_chs == make_divisible(160 // 4, 8)
    assert se.se.fc.reduce.bias is not None and se.se.fc.expand.bias is not None
    assert project.act_name == "none" and project.bn is not None
    s2 = build_block(KIND_BLOCKS["mbconv_s2_hs"])
    assert s2.conv.depth_conv.stride == 2 and s2.conv.depth_conv.act_name == "h_swish"
    assert not s2.has_skip and s2.conv.se is None


def test_block_state_dict_keys_follow_ofa() -> None:
    keys = list(build_block(KIND_BLOCKS["mbconv_se_skip"]).state_dict())
    assert [k for k in keys if k.endswith(".weight")] == [
        "conv.inverted_bottleneck.conv.weight",
        "conv.inverted_bottleneck.bn.weight",
        "conv.depth_conv.conv.weight",
        "conv.depth_conv.bn.weight",
        "conv.depth_conv.se.fc.reduce.weight",
        "conv.depth_conv.se.fc.expand.weight",
        "conv.point_linear.conv.weight",
        "conv.point_linear.bn.weight",
    ]


def test_fixed_layers_follow_ofa() -> None:
    stem = build_block(KIND_BLOCKS["first_conv"])
    assert isinstance(stem, ConvBNAct) and stem.kernel == 3 and stem.stride == 2 and stem.act_name == "h_swish"
    mix = build_block(KIND_BLOCKS["feature_mix"])
    assert isinstance(mix, ConvBNAct) and mix.bn is None and mix.conv.bias is None and mix.act_name == "h_swish"
    head = build_block(KIND_BLOCKS["final_expand"])
    assert head.bn is not None and head.act_name == "h_swish"
    assert isinstance(build_block(KIND_BLOCKS["avgpool"]), GlobalAvgPool)
    clf = build_block(KIND_BLOCKS["classifier"])
    assert isinstance(clf, Classifier) and clf.linear.bias is not None


def test_activations_match_their_formulas() -> None:
    x = torch.linspace(-6, 6, 101)
    module = build_block(Block.fixed("final_expand", 1, 1, 1, 1))
    assert torch.allclose(module.act(x), x * torch.clamp(x + 3, 0, 6) / 6)
    se = build_block(KIND_BLOCKS["mbconv_se_skip"]).conv.se
    assert torch.allclose(se.fc.h_sigmoid(x), torch.clamp(x + 3, 0, 6) / 6)


def test_weights_are_fixed_by_seed() -> None:
    block = KIND_BLOCKS["mbconv_se_skip"]
    a, b, c = build_block(block, seed=0), build_block(block, seed=0), build_block(block, seed=1)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), name
    dw_a, dw_c = a.conv.depth_conv, c.conv.depth_conv
    assert not torch.equal(dw_a.conv.weight, dw_c.conv.weight)
    # BN statistics are random, not the identity defaults.
    assert not torch.allclose(dw_a.bn.running_var, torch.ones_like(dw_a.bn.running_var))


def test_fold_conv_bn_equals_conv_then_bn() -> None:
    module = build_block(KIND_BLOCKS["mbconv_s2_hs"]).conv.depth_conv
    w, b = fold_conv_bn(module.conv, module.bn)
    x = _x((1, 240, 14, 14))
    with torch.no_grad():
        ref = module.bn(module.conv(x))
        got = nn.functional.conv2d(x, torch.from_numpy(w), torch.from_numpy(b), stride=2, padding=3, groups=240)
    np.testing.assert_allclose(got.numpy(), ref.numpy(), atol=1e-5, rtol=1e-5)
    assert fold_conv_bn(nn.Conv2d(4, 4, 1, bias=False), None)[1] is None


@pytest.mark.parametrize("space_name", ["ofa-mbv3-w1.0", "ofa-mbv3-w1.2"])
def test_subnet_block_list_equals_space_blocks(space_name: str) -> None:
    space = get_space(space_name)
    rng = np.random.default_rng(0)
    for sub in space.sample(3, rng).to_subnets():
        model = build_subnet(space, sub)
        assert model.blocks == tuple(space.blocks(sub))
        assert len(model.layers) == len(model.blocks)
        for block, layer in zip(model.blocks, model.layers):
            assert type(layer) is type(build_block(block))


def test_subnet_forward_is_the_chain_of_its_block_modules() -> None:
    space = get_space("ofa-mbv3-w1.0")
    model = build_subnet(space, ARCH)
    assert isinstance(model, SubnetModel) and model.input_shape == (1, 3, 128, 128)
    x = _x(model.input_shape)
    with torch.no_grad():
        y = model(x)
        chained = x
        for layer in model.layers:
            chained = layer(chained)
    assert tuple(y.shape) == (1, 1000)
    assert torch.equal(y, chained)


def test_build_blocks_rejects_a_broken_chain() -> None:
    with pytest.raises(ValueError, match="does not take the output"):
        build_blocks([KIND_BLOCKS["first_conv"], KIND_BLOCKS["final_expand"]])
    with pytest.raises(ValueError, match="empty"):
        build_blocks([])


def test_build_from_net_config(shared_data) -> None:
    folder = shared_data / "ofa" / "specialized" / "note10_lat-8ms_top1-71.4_finetune-25"
    model = build_from_net_config(folder / "net.config", 160)
    assert model.blocks == tuple(read_net_config(folder / "net.config", resolution=160))
    with torch.no_grad():
        assert tuple(model(_x(model.input_shape)).shape) == (1, 1000)


FAMILY_BLOCKS = {
    "proxyless_first_conv": Block.first_conv(64, 40, act="relu6"),
    "proxyless_mbconv_e1": Block.mbconv(32, 40, 24, 40, kernel=3, stride=1, skip=False, se=False, act="relu6"),
    "proxyless_mbconv_skip": Block.mbconv(8, 56, 56, 336, kernel=7, stride=1, skip=True, se=False, act="relu6"),
    "proxyless_feature_mix": Block.fixed("final_expand", 4, 416, 4, 1664, act="relu6"),
    "pooling_classifier": Block.fixed("classifier", 4, 1664, 1, 1000),
    "resnet_stem": Block.conv_bn_act(64, 3, 24, kernel=3, stride=2, act="relu"),
    "resnet_stem_skip": Block.conv_bn_act(32, 24, 24, kernel=3, stride=1, act="relu", skip=True),
    "resnet_maxpool": Block.maxpool(32, 48),
    "resnet_bottleneck_down": Block.bottleneck(9, 256, 104, 512, stride=2),
    "resnet_bottleneck_identity": Block.bottleneck(8, 256, 64, 256, stride=1),
}


@pytest.mark.parametrize("name", sorted(FAMILY_BLOCKS))
def test_new_family_block_modules_run_with_block_shapes(name: str) -> None:
    block = FAMILY_BLOCKS[name]
    module = build_block(block)
    with torch.no_grad():
        y = module(_x(block_input_shape(block)))
    assert tuple(y.shape) == block_output_shape(block)
    assert module_output_shape(module, block_input_shape(block)) == block_output_shape(block)
    assert torch.isfinite(y).all()


def test_new_family_blocks_follow_ofa() -> None:
    stem = build_block(FAMILY_BLOCKS["proxyless_first_conv"])
    assert isinstance(stem, ConvBNAct) and isinstance(stem.act, nn.ReLU6)
    first = build_block(FAMILY_BLOCKS["proxyless_mbconv_e1"]).conv
    assert first.inverted_bottleneck is None and isinstance(first.depth_conv.act, nn.ReLU6)
    clf = build_block(FAMILY_BLOCKS["pooling_classifier"])
    x = _x((1, 1664, 4, 4))
    with torch.no_grad():
        assert torch.allclose(clf(x), clf.linear(x.mean(dim=(2, 3))), atol=1e-5)
    skip = build_block(FAMILY_BLOCKS["resnet_stem_skip"])
    assert isinstance(skip, ResidualBlock) and isinstance(skip.conv, ConvBNAct) and skip.has_skip
    scale = skip.conv.bn.weight.detach()
    assert 0.1 <= float(scale.min()) and float(scale.max()) <= 0.3
    pool = build_block(FAMILY_BLOCKS["resnet_maxpool"])
    assert isinstance(pool, MaxPool) and (pool.kernel_size, pool.stride, pool.padding) == (3, 2, 1)
    down = build_block(FAMILY_BLOCKS["resnet_bottleneck_down"])
    assert isinstance(down, Bottleneck) and down.downsample is not None and down.conv2.stride == 2
    assert list(down.state_dict())[:2] == ["conv1.conv.weight", "conv1.bn.weight"]
    identity = build_block(FAMILY_BLOCKS["resnet_bottleneck_identity"])
    assert identity.downsample is None and float(identity.conv3.bn.weight.detach().max()) <= 0.3


@pytest.mark.parametrize("space_name", ["ofa-proxyless-w1.3", "ofa-resnet50"])
def test_subnets_of_every_family_are_their_space_blocks(space_name: str) -> None:
    space = get_space(space_name)
    rng = np.random.default_rng(0)
    archs = space.sample_archs(2, rng) if isinstance(space, ResNetSpace) else space.sample(2, rng).to_subnets()
    for arch in archs:
        model = build_subnet(space, arch)
        assert model.blocks == tuple(space.blocks(arch))
        with torch.no_grad():
            y = model(_x(model.input_shape))
        assert tuple(y.shape) == (1, 1000) and torch.isfinite(y).all()


def test_build_from_a_proxyless_net_config(shared_data) -> None:
    folder = shared_data / "ofa" / "specialized" / "cpu_lat-10ms_top1-71.1_finetune-25"
    model = build_from_net_config(folder / "net.config", 144)
    assert model.blocks == tuple(read_net_config(folder / "net.config", resolution=144))
    assert {b.act for b in model.blocks if b.kind != "classifier"} == {"relu6"}
    with torch.no_grad():
        assert tuple(model(_x(model.input_shape)).shape) == (1, 1000)
