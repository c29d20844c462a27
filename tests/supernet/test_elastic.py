"""Elastic kernel, width and depth; subnet extraction; arch forms; complexity counts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from supernet import (
    MobileNetV3,
    OFAMobileNetV3,
    count_module_macs,
    count_parameters,
    load_subnet,
    save_subnet,
    subnet_complexity,
)
from supernet.elastic_layers import DynamicMBConvLayer, DynamicSeparableConv2d

SMALL = {"width_mult": 0.25, "n_classes": 10}


def randomize_(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every parameter and BN statistic random values (so slicing mistakes show)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in net.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            if name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=gen) + 0.5)
            else:
                tensor.copy_(torch.randn(tensor.shape, generator=gen) * 0.3)
    return net


@pytest.fixture(scope="module")
def small_net() -> OFAMobileNetV3:
    return randomize_(OFAMobileNetV3(**SMALL), seed=1).eval()


def _arch(net: OFAMobileNetV3, seed: int, r: int = 20) -> dict:
    arch = net.sample_active_subnet(np.random.default_rng(seed))
    return {**arch, "r": r}


def test_kernel_identity_matrices_give_center_crop() -> None:
    conv = DynamicSeparableConv2d(8, [3, 5, 7])
    w = conv.conv.weight
    assert torch.equal(conv.get_active_filter(8, 7), w)
    assert torch.equal(conv.get_active_filter(8, 5), w[:, :, 1:6, 1:6])
    assert torch.equal(conv.get_active_filter(8, 3), w[:, :, 2:5, 2:5])
    assert torch.equal(conv.get_active_filter(4, 3), w[:4, :, 2:5, 2:5])


def test_kernel_transform_goes_through_matrices_step_by_step() -> None:
    gen = torch.Generator().manual_seed(0)
    conv = DynamicSeparableConv2d(4, [3, 5, 7])
    with torch.no_grad():
        getattr(conv, "7to5_matrix").copy_(torch.randn(25, 25, generator=gen))
        getattr(conv, "5to3_matrix").copy_(torch.randn(9, 9, generator=gen))
    w = conv.conv.weight
    m75, m53 = getattr(conv, "7to5_matrix"), getattr(conv, "5to3_matrix")
    k5 = (w[:, :, 1:6, 1:6].reshape(4, 25) @ m75.T).reshape(4, 1, 5, 5)
    k3 = (k5[:, :, 1:4, 1:4].reshape(4, 9) @ m53.T).reshape(4, 1, 3, 3)
    torch.testing.assert_close(conv.get_active_filter(4, 5), k5)
    torch.testing.assert_close(conv.get_active_filter(4, 3), k3)
    with pytest.raises(ValueError, match="not in this layer's ks_list"):
        conv.get_active_filter(4, 9)


def test_width_slices_leading_channels() -> None:
    layer = DynamicMBConvLayer(16, 24, ks_list=[3, 5], expand_ratio_list=[3, 6], use_se=True)
    x = torch.randn(2, 16, 8, 8)
    layer.active_expand_ratio = 3
    seen = {}

    def record(_module, _inputs, output):
        seen["mid"] = output.shape[1]

    hook = layer.depth_conv.bn.register_forward_hook(record)
    assert layer(x).shape == (2, 24, 8, 8)
    hook.remove()
    assert seen["mid"] == 48
    assert layer.max_mid_chs == 96


def test_depth_runs_first_blocks(small_net: OFAMobileNetV3) -> None:
    small_net.set_active_subnet(ks=3, e=3, d=[2, 3, 4, 2, 3])
    subnet = small_net.get_active_subnet()
    assert len(subnet.blocks) == 1 + 2 + 3 + 4 + 2 + 3
    small_net.set_max_net()
    assert len(small_net.get_active_subnet().blocks) == 21


def test_get_active_subnet_matches_supernet(small_net: OFAMobileNetV3) -> None:
    x = torch.randn(3, 3, 20, 20)
    for seed in range(4):
        small_net.set_active_subnet(_arch(small_net, seed))
        with torch.no_grad():
            expected = small_net(x)
            got = small_net.get_active_subnet().eval()(x)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_reorganize_keeps_max_net_function() -> None:
    net = randomize_(OFAMobileNetV3(**SMALL), seed=2).eval()
    x = torch.randn(2, 3, 16, 16)
    net.set_max_net()
    with torch.no_grad():
        before = net(x)
        net.re_organize_middle_weights(0)
        after = net(x)
        net.re_organize_middle_weights(1)
        after_stage1 = net(x)
    torch.testing.assert_close(after, before, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(after_stage1, before, atol=1e-4, rtol=1e-4)


def test_reorganize_puts_important_channels_first() -> None:
    layer = DynamicMBConvLayer(8, 8, ks_list=[3], expand_ratio_list=[2, 4])
    with torch.no_grad():
        layer.point_linear.conv.conv.weight.copy_(torch.arange(32.0).view(1, 32, 1, 1).expand(8, 32, 1, 1))
    layer.re_organize_middle_weights(0)
    importance = layer.point_linear.conv.conv.weight.abs().sum(dim=(0, 2, 3))
    assert torch.all(importance[:-1] >= importance[1:])


def test_reorganize_stage_keeps_trained_widths_nested() -> None:
    layer = DynamicMBConvLayer(8, 8, ks_list=[3], expand_ratio_list=[2, 4])
    with torch.no_grad():
        layer.point_linear.conv.conv.weight.copy_(torch.arange(32.0).view(1, 32, 1, 1).expand(8, 32, 1, 1))
    ids_before = set(layer.point_linear.conv.conv.weight[0, :16, 0, 0].tolist())
    layer.re_organize_middle_weights(1)
    ids_after = set(layer.point_linear.conv.conv.weight[0, :16, 0, 0].tolist())
    assert ids_after == ids_before


def test_arch_forms(small_net: OFAMobileNetV3) -> None:
    arch = _arch(small_net, 7)
    small_net.set_active_subnet({**arch, "r": [arch["r"]], "wid": None})
    assert small_net.active_arch() == arch
    small_net.set_active_subnet(ks=5, e=4, d=3)
    got = small_net.active_arch()
    assert got["ks"] == [5] * 20 and got["e"] == [4] * 20 and got["d"] == [3] * 5
    small_net.set_active_subnet(3)
    assert small_net.active_arch()["ks"] == [3] * 20


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"ks": 9}, "ks"),
        ({"e": 5}, "e"),
        ({"d": 5}, "d"),
        ({"ks": [3] * 19}, "20 values"),
    ],
)
def test_bad_arch_values_raise(small_net: OFAMobileNetV3, bad: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        small_net.set_active_subnet(**bad)


def test_sample_is_seeded(small_net: OFAMobileNetV3) -> None:
    a = small_net.sample_active_subnet(np.random.default_rng(3), resolutions=[16, 20])
    b = small_net.sample_active_subnet(np.random.default_rng(3), resolutions=[16, 20])
    assert a == b and a["r"] in (16, 20)


def test_complexity_matches_built_subnet(small_net: OFAMobileNetV3) -> None:
    for seed in range(3):
        arch = _arch(small_net, seed, r=24)
        small_net.set_active_subnet(arch)
        subnet = small_net.get_active_subnet()
        macs, params = subnet_complexity(small_net.config, arch)
        assert macs == count_module_macs(subnet, 24)
        assert params == count_parameters(subnet)


def test_static_subnet_config_round_trip(small_net: OFAMobileNetV3, tmp_path) -> None:
    small_net.set_active_subnet(_arch(small_net, 11))
    subnet = small_net.get_active_subnet().eval()
    rebuilt = MobileNetV3.build_from_config(subnet.config)
    rebuilt.load_state_dict(subnet.state_dict(), strict=True)
    path = save_subnet(subnet, tmp_path / "sub.pt")
    loaded = load_subnet(path).eval()
    x = torch.randn(2, 3, 20, 20)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), subnet(x))
        torch.testing.assert_close(rebuilt.eval()(x), subnet(x))
    assert loaded.arch == subnet.arch


def test_config_round_trip() -> None:
    net = OFAMobileNetV3(width_mult=0.5, ks_list=[3, 5], depth_list=[1, 2], n_classes=7)
    again = OFAMobileNetV3.from_config(net.config.to_dict())
    assert again.config == net.config
    assert list(again.state_dict()) == list(net.state_dict())
    assert len(net.elastic_blocks) == 10
