"""ProxylessNAS and ResNet50 supernets: arch dicts and their errors, sampling, extraction, presets, bottleneck."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from layers import Bottleneck, module_output_shape
from supernet import (
    DIGITS_PRESETS,
    OFAMobileNetV3,
    OFAProxylessNASNets,
    OFAResNets,
    build_supernet,
    digits_preset,
    preset_supernet,
)
from space.families import bottleneck_mid_chs, parse_proxyless_arch, parse_resnet_arch

from .conftest import recipe_weights


def _randomized(net: torch.nn.Module, seed: int = 1) -> torch.nn.Module:
    net.load_state_dict(recipe_weights({k: list(v.shape) for k, v in net.state_dict().items()}, seed))
    return net


@pytest.fixture(scope="module")
def proxyless() -> OFAProxylessNASNets:
    return _randomized(preset_supernet(digits_preset("ofa-proxyless"), n_classes=10)).eval()


@pytest.fixture(scope="module")
def resnet() -> OFAResNets:
    return _randomized(preset_supernet(digits_preset("ofa-resnet50"), n_classes=10)).eval()


# ----------------------------------------------------------------------------- ProxylessNAS arch


def test_proxyless_arch_ofa_keyword_and_dict_forms(proxyless: OFAProxylessNASNets) -> None:
    proxyless.set_active_subnet(ks=5, e=4, d=3, r=[16])
    assert proxyless.active_arch() == {"ks": [5] * 21, "e": [4] * 21, "d": [3, 3, 3, 3, 3, 1], "r": 16}
    arch = {"ks": [3] * 21, "e": [6] * 21, "d": [2, 3, 4, 2, 3, 1], "r": 12, "wid": None}
    proxyless.set_active_subnet(arch)
    assert proxyless.active_arch() == {**{k: v for k, v in arch.items() if k != "wid"}}


def test_proxyless_last_stage_depth_is_clipped_as_ofa_does(proxyless: OFAProxylessNASNets) -> None:
    proxyless.set_active_subnet(d=[2, 2, 2, 2, 2, 4])
    assert proxyless.runtime_depth == [2, 2, 2, 2, 2, 1]
    proxyless.set_active_subnet(d=[2, 2, 2, 2, 2, 1])
    assert proxyless.runtime_depth[-1] == 1


@pytest.mark.parametrize(
    ("arch", "message"),
    [
        ({"ks": [3] * 20}, "arch ks must have 21 values, got 20"),
        ({"ks": 9}, r"arch ks\[0\] must be one of \[3, 5, 7\], got 9"),
        ({"e": 3, "d": [2, 2, 2, 2, 5, 1]}, r"arch d\[4\] must be one of \[2, 3, 4\], got 5"),
        ({"d": [2, 2, 2, 2, 2, 0]}, r"arch d\[5\] must be one of \[1, 2, 3, 4\], got 0"),
        ({"e": "6"}, "arch e must be a number or a list of 21 numbers, got '6'"),
        ({"ks": 3, "w": [0] * 6}, "arch keys must be among ks, e, d, r, got 'w'"),
        ({"r": 0}, "arch r must be a positive int, got 0"),
        ({"r": True}, "arch r must be a positive int, got True"),
        ({"ks": [True] * 21}, r"arch ks\[0\] must be one of \[3, 5, 7\], got True"),
    ],
)
def test_proxyless_arch_errors_name_the_field(proxyless: OFAProxylessNASNets, arch: dict, message: str) -> None:
    before = proxyless.active_arch()
    with pytest.raises(ValueError, match=message):
        proxyless.set_active_subnet(arch)
    assert proxyless.active_arch() == before  # a refused arch changes nothing


def test_proxyless_slots_that_do_not_run_are_not_checked(proxyless: OFAProxylessNASNets) -> None:
    proxyless.set_active_subnet(ks=7, e=6, d=4)
    ks = [3] * 21
    ks[3] = 0  # stage 0, slot 3: does not run at depth 2
    proxyless.set_active_subnet({"ks": ks, "d": [2, 4, 4, 4, 4, 1]})
    assert proxyless.elastic_blocks[3].active_kernel == 7  # kept its setting
    assert proxyless.elastic_blocks[2].active_kernel == 3
    with pytest.raises(ValueError, match=r"arch ks\[3\] must be one of"):
        proxyless.set_active_subnet({"ks": ks, "d": [4, 4, 4, 4, 4, 1]})


def test_proxyless_slot_layout() -> None:
    choices = OFAProxylessNASNets(width_mult=0.25, n_classes=10).choices
    assert choices.stage_slots == (4, 4, 4, 4, 4, 1) and choices.n_slots == 21
    assert choices.active_slots([2, 3, 2, 2, 4, 1]) == [0, 1, 4, 5, 6, 8, 9, 12, 13, 16, 17, 18, 19, 20]
    parsed = parse_proxyless_arch(choices, {"ks": 3, "e": 4, "d": 2, "r": 128})
    assert parsed.d == (2, 2, 2, 2, 2, 1) and parsed.r == 128 and parsed.ks == (3,) * 21


# ----------------------------------------------------------------------------- ResNet50 arch


def test_resnet_arch_sets_depth_width_expand_and_stem_skip(resnet: OFAResNets) -> None:
    arch = {"d": [0, 2, 1, 0, 2], "e": [0.2, 0.25, 0.35] * 6, "w": [2, 1, 0, 1, 2, 0], "r": 16}
    resnet.set_active_subnet(arch)
    assert resnet.input_stem_skipping
    assert resnet.runtime_depth == [4, 3, 4, 4]  # base depths 2, 2, 4, 2 plus d[1:]
    assert resnet.active_arch() == arch
    resnet.set_active_subnet(d=2)
    assert not resnet.input_stem_skipping and resnet.runtime_depth == [4, 4, 6, 4]


def test_resnet_expand_ratios_read_from_text_match_with_a_tolerance(resnet: OFAResNets) -> None:
    resnet.set_active_subnet(e=[0.35000000000000003] * 18)
    assert [b.active_expand_ratio for b in resnet.blocks] == [0.35] * 18


@pytest.mark.parametrize(
    ("arch", "message"),
    [
        ({"d": [2, 2, 2, 2]}, "arch d must have 5 values, got 4"),
        ({"d": [2, 2, 2, 2, 3]}, r"arch d\[4\] must be one of \[0, 1, 2\], got 3"),
        ({"e": 0.3}, r"arch e\[0\] must be one of \[0.2, 0.25, 0.35\], got 0.3"),
        ({"w": [0, 0, 3, 0, 0, 0]}, r"arch w\[2\] must be one of \[0, 1, 2\], got 3"),
        ({"w": [0, 0, 1.5, 0, 0, 0]}, r"arch w\[2\] must be one of \[0, 1, 2\], got 1.5"),
        ({"ks": 3}, "arch keys must be among d, e, w, r, got 'ks'"),
        ({"r": [128, 160]}, r"arch r must be a positive int, got \[128, 160\]"),
    ],
)
def test_resnet_arch_errors_name_the_field(resnet: OFAResNets, arch: dict, message: str) -> None:
    before = resnet.active_arch()
    with pytest.raises(ValueError, match=message):
        resnet.set_active_subnet(arch)
    assert resnet.active_arch() == before


def test_arch_must_be_a_dict() -> None:
    choices = OFAResNets(width_mult=0.25, n_classes=10).choices
    with pytest.raises(ValueError, match="arch must be a dict with keys d, e, w, r, got list"):
        parse_resnet_arch(choices, [2, 2, 2, 2, 2])  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- sampling and extraction


@pytest.mark.parametrize("family", ["ofa-proxyless", "ofa-resnet50"])
def test_sampled_subnets_extract_to_the_same_function(family: str, proxyless, resnet) -> None:
    net = proxyless if family == "ofa-proxyless" else resnet
    preset = digits_preset(family)
    rng = np.random.default_rng(0)
    for _ in range(4):
        arch = net.sample_active_subnet(rng, preset.resolutions)
        assert net.active_arch() == arch
        x = torch.randn(2, 3, arch["r"], arch["r"], generator=torch.Generator().manual_seed(arch["r"]))
        subnet = net.get_active_subnet().eval()
        assert subnet.arch == arch
        with torch.no_grad():
            expected, got = net(x), subnet(x)
        assert expected.shape == (2, 10)
        assert (expected - got).abs().max().item() <= 1e-5
        net.set_active_subnet(net.active_arch())  # the arch it reports reads back
        assert net.active_arch() == arch


@pytest.mark.parametrize("family", ["ofa-proxyless", "ofa-resnet50"])
def test_min_and_max_nets_run_at_the_preset_resolutions(family: str, proxyless, resnet) -> None:
    net = proxyless if family == "ofa-proxyless" else resnet
    for setter in (net.set_min_net, net.set_max_net):
        setter()
        for r in digits_preset(family).resolutions:
            with torch.no_grad():
                assert net(torch.zeros(1, 3, r, r)).shape == (1, 10)
    net.set_min_net()
    small = sum(p.numel() for p in net.get_active_subnet().parameters())
    net.set_max_net()
    assert sum(p.numel() for p in net.get_active_subnet().parameters()) > small


def test_extraction_keeps_train_mode(proxyless: OFAProxylessNASNets) -> None:
    proxyless.train()
    try:
        assert proxyless.get_active_subnet().training
    finally:
        proxyless.eval()
    assert not proxyless.get_active_subnet().training


# ----------------------------------------------------------------------------- presets and factory


def test_digits_presets_cover_every_family() -> None:
    assert set(DIGITS_PRESETS) == {"ofa-mbv3", "ofa-proxyless", "ofa-resnet50"}
    for family, preset in DIGITS_PRESETS.items():
        assert preset.family == family and preset.width_mult == 0.25 and preset.resolutions == (12, 16)
    with pytest.raises(ValueError, match="family must be one of ofa-mbv3, ofa-proxyless, ofa-resnet50, got 'x'"):
        digits_preset("x")
    with pytest.raises(ValueError, match="family must be one of"):
        build_supernet("ofa-mbv4")


def test_factory_builds_each_family_at_its_release_width() -> None:
    assert isinstance(build_supernet("ofa-mbv3", width_mult=0.25, n_classes=10), OFAMobileNetV3)
    proxyless = build_supernet("ofa-proxyless", n_classes=10)
    assert isinstance(proxyless, OFAProxylessNASNets) and proxyless.first_conv.out_chs == 40  # w1.3
    resnet = preset_supernet(digits_preset("ofa-resnet50"), n_classes=10)
    assert isinstance(resnet, OFAResNets) and resnet.classifier.linear.linear.weight.shape == (10, 512)
    for net in (resnet, proxyless):
        config = type(net.config).from_dict(json.loads(json.dumps(net.config.to_dict())))
        assert config == net.config and type(net).from_config(config).config == net.config
    with pytest.raises(ValueError, match=r"supernet config keys must be among .*, got \['ks_list'\]"):
        type(resnet.config).from_dict({"ks_list": [3]})


def test_digits_presets_train_a_step() -> None:
    for family in ("ofa-proxyless", "ofa-resnet50"):
        net = preset_supernet(digits_preset(family), n_classes=10).train()
        net.sample_active_subnet(np.random.default_rng(1))
        x, y = torch.randn(4, 3, 12, 12), torch.tensor([0, 1, 2, 3])
        loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        assert torch.isfinite(loss)
        assert all(p.grad is not None for p in net.classifier.parameters())


# ----------------------------------------------------------------------------- the bottleneck layer


@pytest.mark.parametrize("mode", ["avgpool_conv", "conv"])
def test_bottleneck_shapes_and_keys(mode: str) -> None:
    down = Bottleneck(16, 8, 32, stride=2, downsample_mode=mode)
    assert module_output_shape(down, (1, 16, 9, 9)) == tuple(down(torch.zeros(1, 16, 9, 9)).shape) == (1, 32, 5, 5)
    assert {k.split(".")[0] for k in down.state_dict()} == {"conv1", "conv2", "conv3", "downsample"}
    same = Bottleneck(32, 8, 32)
    assert same.downsample is None and not any(k.startswith("downsample") for k in same.state_dict())
    x = torch.randn(1, 32, 4, 4)
    with torch.no_grad():
        expected = torch.relu(same.conv3(same.conv2(same.conv1(x))) + x)
        assert torch.equal(same(x), expected)


def test_bottleneck_refuses_an_unknown_downsample_mode() -> None:
    with pytest.raises(ValueError, match="downsample_mode must be one of"):
        Bottleneck(16, 8, 32, downsample_mode="pool")


@pytest.mark.parametrize("family", ["ofa-proxyless", "ofa-resnet50"])
def test_reorganizing_middle_channels_keeps_the_full_network(family: str) -> None:
    net = _randomized(preset_supernet(digits_preset(family), n_classes=10), seed=3).eval()
    net.set_max_net()
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = net(x)
        net.re_organize_middle_weights()
        after = net(x)
    assert (before - after).abs().max().item() <= 1e-5
    if family == "ofa-resnet50":  # conv2's outputs now come by decreasing L1 weight in conv3
        importance = net.blocks[0].conv3.conv.conv.weight.abs().sum(dim=(0, 2, 3))
        assert torch.all(importance[:-1] >= importance[1:])


def test_resnet_reorganizing_keeps_trained_widths_in_place() -> None:
    net = _randomized(preset_supernet(digits_preset("ofa-resnet50"), n_classes=10), seed=4)
    block = net.blocks[-1]
    bands = [0] + [bottleneck_mid_chs(max(block.out_chs_list), e) for e in sorted(block.expand_ratio_list)]
    marks = block.conv1.conv.conv.weight[:, 0, 0, 0].clone()
    net.re_organize_middle_weights(expand_ratio_stage=2)
    after = block.conv1.conv.conv.weight[:, 0, 0, 0]
    assert not torch.equal(after, marks)  # something moved
    for lo, hi in zip(bands[:-1], bands[1:]):  # but only within the bands between trained widths
        assert sorted(after[lo:hi].tolist()) == sorted(marks[lo:hi].tolist())
