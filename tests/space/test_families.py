"""Every family as data: ProxylessNAS and ResNet50 spaces against OFA's goldens, keys, net.configs and space files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from space import Block, ResNetSpace, SearchSpace, get_space, list_spaces, load_space_file, read_net_config
from space import space_from_dict

from tests.conftest import SHARED_DATA as DATA

GOLDEN = DATA / "ofa" / "golden"
PROXYLESS, RESNET = "ofa-proxyless-w1.3", "ofa-resnet50"


def _random_archs(space, n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    if isinstance(space, ResNetSpace):
        return [s.to_arch() for s in space.sample_archs(n, rng)]
    return [s.to_arch() for s in space.sample(n, rng).to_subnets()]


def _full_arch(arch: dict, space) -> dict:
    """OFA's keyword form (an int applies to every entry) as whole lists."""
    if isinstance(space, ResNetSpace):
        sizes = {"d": 1 + space.n_stages, "e": space.n_slots, "w": 2 + space.n_stages}
    else:
        sizes = {"ks": space.n_slots, "e": space.n_slots, "d": space.n_stages}
    return {k: v if k == "r" or isinstance(v, list) else [v] * sizes[k] for k, v in arch.items()}


@pytest.mark.parametrize("name", list_spaces())
def test_block_keys_round_trip_for_random_subnets_of_every_family(name):
    space = get_space(name)
    for arch in _random_archs(space, 60, seed=1):
        blocks = space.blocks(arch)
        for b in blocks:
            assert space.block_from_key(b.key) == b, b.key
            if space.family != "ofa-proxyless":  # ProxylessNAS's Conv/Conv_1 keys leave out their relu6
                assert Block.from_key(b.key) == b, b.key
        assert set(blocks) <= set(space.unique_blocks(arch["r"]))


def test_proxyless_space_follows_ofa():
    space = get_space(PROXYLESS)
    assert isinstance(space, SearchSpace) and space.family == "ofa-proxyless"
    assert space.slots_per_stage == (4, 4, 4, 4, 4, 1) and space.n_slots == 21
    shapes = dict(json.loads((GOLDEN / "ofa_proxyless_w1.3_shapes.json").read_text()))
    assert shapes["first_conv.conv.weight"][0] == space.first_conv_chs == 40
    assert shapes["feature_mix_layer.conv.weight"][:2] == [space.final_expand_chs, space.stage_chs[-1]]
    arch = {"ks": [7] * 21, "e": [6] * 21, "d": [4] * 6, "r": 224}
    blocks = space.blocks(arch)
    assert len(blocks) == 2 + 21 + 2  # the last stage runs its one block whatever d says
    assert blocks[0].key == "Conv-input:224x224x3-output:112x112x40" and blocks[0].act == "relu6"
    assert blocks[1].key == "expanded_conv-input:112x112x40-output:112x112x24-expand:1-kernel:3-stride:1-idskip:0"
    assert blocks[2].key == "expanded_conv-input:112x112x24-output:56x56x32-expand:6-kernel:7-stride:2-idskip:0"
    assert [b.key for b in blocks[-2:]] == ["Conv_1-input:7x7x416-output:7x7x1664", "Logits-input:7x7x1664-output:1000"]
    assert space.blocks(dict(arch, d=[4] * 5 + [1])) == blocks
    with pytest.raises(ValueError, match=r"d\[0\] = 1 is not one of \[2, 3, 4\]"):
        space.validate(dict(arch, d=[1] * 6))


def test_resnet_space_follows_ofa():
    space = get_space(RESNET)
    assert isinstance(space, ResNetSpace) and space.n_slots == 18
    shapes = dict(json.loads((GOLDEN / "ofa_resnet50_shapes.json").read_text()))
    assert shapes["input_stem.0.conv.conv.weight"][0] == max(space.mid_stem_widths)
    assert shapes["input_stem.2.conv.conv.weight"][0] == max(space.stem_widths)
    assert shapes["classifier.linear.linear.weight"][1] == max(space.stage_widths(3))
    arch = {"d": [2, 2, 2, 2, 2], "e": [0.35] * 18, "w": [2] * 6, "r": 224}
    blocks = space.blocks(arch)
    assert [b.kind for b in blocks[:4]] == ["conv_bn_act", "conv_bn_act", "conv_bn_act", "maxpool"]
    assert len(blocks) == 4 + 18 + 1
    assert blocks[4].key == "bottleneck-input:56x56x64-output:56x56x256-mid:88-kernel:3-stride:1-idskip:0-act:relu"
    assert blocks[-1].key == "Logits-input:7x7x2048-output:1000"
    skipped = space.blocks(dict(arch, d=[0] * 5))
    assert len(skipped) == 3 + 10 + 1  # the stem's middle conv skipped, base depths 2, 2, 4, 2
    with pytest.raises(ValueError, match=r"w\[1\] = 3 is not one of \[0, 1, 2\]"):
        space.validate(dict(arch, w=[0, 3, 0, 0, 0, 0]))
    with pytest.raises(ValueError, match="e must have 18 entries"):
        space.validate(dict(arch, e=[0.2] * 17))


@pytest.mark.parametrize("family,name", [("ofa_proxyless_w1.3", PROXYLESS), ("ofa_resnet50", RESNET)])
def test_golden_subnet_configs_decompose_into_the_spaces_blocks(family, name):
    torch = pytest.importorskip("torch")
    space = get_space(name)
    cases = torch.load(GOLDEN / f"{family}_cases.pt", weights_only=True)["cases"]
    for case in cases:
        arch = _full_arch(case["arch"], space)
        assert read_net_config(json.loads(case["subnet_config"]), arch["r"]) == space.blocks(arch), case["arch"]


def test_proxyless_lut_keys_parse_and_price_a_matching_space_file():
    table = yaml.safe_load((DATA / "proxylessnas" / "mobile_trim.yaml").read_text())
    space = space_from_dict(_proxyless_w10_doc())  # ProxylessNAS at w1.0, expand 3 or 6, r=224: what the table times
    for key in table:
        block = space.block_from_key(key)
        assert block.key == key and block.act in ("relu6", "none")
    needed = {b.key for b in space.unique_blocks(224)}
    assert needed <= set(table), sorted(needed - set(table))[:3]


def _proxyless_w10_doc() -> dict:
    doc = json.loads(_builtin_text(PROXYLESS))
    doc.update(name="proxyless-w1.0-mobile", width_mult=1.0, resolutions=[224])
    doc["choices"]["e"] = [3, 6]
    return doc


def _builtin_text(name: str) -> str:
    from importlib import resources

    return resources.files("space").joinpath("data", f"{name}.json").read_text()


def test_builtin_spaces_load_from_their_files_like_a_users(tmp_path):
    for name in list_spaces():
        path = tmp_path / f"{name}.json"
        path.write_text(_builtin_text(name))
        assert load_space_file(path) == get_space(name) == get_space(str(path))
    pytest.importorskip("tomllib")  # TOML space files need Python 3.11+ (JSON works everywhere)
    toml = tmp_path / "small.toml"
    toml.write_text('name = "small"\nkind = "resnet"\nresolutions = [32]\nstem = {width = 16}\n'
                    'stages = [{width = 32, base_depth = 1, stride = 1}]\n'
                    'choices = {d = [0, 1], e = [0.25], w = [1.0]}\n')
    small = get_space(toml)
    assert [b.kind for b in small.blocks({"d": [1, 1], "e": [0.25, 0.25], "w": [0, 0, 0], "r": 32})] == [
        "conv_bn_act", "conv_bn_act", "conv_bn_act", "maxpool", "bottleneck", "bottleneck", "classifier"]


@pytest.mark.parametrize(
    "change,match",
    [
        (lambda d: d.pop("stages"), "missing field stages"),
        (lambda d: d["stages"][2].update(width=0), r"stages\[2\].width must be a positive int, got 0"),
        (lambda d: d["stages"][1].update(act="gelu"), r"stages\[1\].act must be one of relu, h_swish, relu6"),
        (lambda d: d["choices"].update(ks=[3, 4]), r"choices.ks\[1\] must be an odd positive int, got 4"),
        (lambda d: d.update(kind="transformer"), "kind must be one of mbconv, resnet"),
        (lambda d: d.update(colour="red"), "unknown field colour"),
        (lambda d: d["head"]["final_expand"].update(size=3), "unknown field head.final_expand.size"),
        (lambda d: d.update(resolutions={"from": 2, "to": 8}), "resolutions in"),
    ],
)
def test_a_bad_space_file_gets_one_line_naming_the_field(tmp_path, change, match):
    doc = json.loads(_builtin_text(PROXYLESS))
    change(doc)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=match) as info:
        get_space(str(path))
    assert "\n" not in str(info.value) and str(path) in str(info.value)
