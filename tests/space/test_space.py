"""The vocabulary: widths against OFA's own supernet, block lists, keys, validation, populations."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

import space
from space import Block, Genome, SubnetBatch, get_space, list_spaces, read_net_config

from tests.conftest import SHARED_DATA as DATA
SPACES = ["ofa-mbv3-w0.25", "ofa-mbv3-w1.0", "ofa-mbv3-w1.2"]
ALL_SPACES = [*SPACES, "ofa-proxyless-w0.25", "ofa-proxyless-w1.3", "ofa-resnet50", "ofa-resnet50-w0.25"]


def _arch(ks=5, e=4, d=3, r=224) -> dict:
    return {"ks": [ks] * 20, "e": [e] * 20, "d": [d] * 5, "r": r}


def test_registry_lists_and_rejects_unknown():
    assert list_spaces() == ALL_SPACES
    assert list_spaces("*w1.2") == ["ofa-mbv3-w1.2"]
    with pytest.raises(ValueError, match="unknown space 'mbv4'; known: ofa-mbv3-w0.25, ofa-mbv3-w1.0, ofa-mbv3-w1.2, "
                                         "ofa-proxyless-w0.25, ofa-proxyless-w1.3, ofa-resnet50, "
                                         "ofa-resnet50-w0.25"):
        get_space("mbv4")


@pytest.mark.parametrize(
    "name,widths",
    [
        ("ofa-mbv3-w0.25", [8, 8, 8, 16, 24, 32, 40, 240, 320]),
        ("ofa-mbv3-w1.0", [16, 16, 24, 40, 80, 112, 160, 960, 1280]),
        ("ofa-mbv3-w1.2", [24, 24, 32, 48, 96, 136, 192, 1152, 1536]),
    ],
)
def test_widths(name, widths):
    sp = get_space(name)
    got = [sp.first_conv_chs, sp.first_block_chs, *sp.stage_chs, sp.final_expand_chs, sp.feature_mix_chs]
    assert got == widths


@pytest.mark.parametrize("name,width", [("ofa-mbv3-w1.0", "1.0"), ("ofa-mbv3-w1.2", "1.2")])
def test_widths_match_ofa_supernet_tensors(name, width):
    shapes = json.loads((DATA / "ofa" / "golden" / f"ofa_mbv3_w{width}_shapes.json").read_text())
    sp = get_space(name)
    flat = dict(shapes)
    first_conv = [v for k, v in flat.items() if k.startswith("first_conv") and k.endswith("conv.weight")][0]
    assert first_conv[0] == sp.first_conv_chs
    final = [v for k, v in flat.items() if k.startswith("final_expand_layer") and k.endswith("conv.weight")][0]
    assert list(final[:2]) == [sp.final_expand_chs, sp.stage_chs[-1]]
    mix = [v for k, v in flat.items() if k.startswith("feature_mix_layer") and k.endswith("conv.weight")][0]
    assert list(mix[:2]) == [sp.feature_mix_chs, sp.final_expand_chs]
    # Every elastic slot's project conv outputs its stage width (blocks 1..20 are the slots).
    for slot in range(20):
        key = f"blocks.{slot + 1}.conv.point_linear.conv.conv.weight"
        assert flat[key][0] == sp.stage_chs[slot // 4], key
        # the largest expand ratio gives round(cin * 6) mid channels
        mid = flat[f"blocks.{slot + 1}.conv.depth_conv.conv.conv.weight"][0]
        assert mid == sp.slot_block(slot // 4, slot % 4, 8, 7, 6).mid_chs, slot


@pytest.mark.parametrize("name", SPACES)
def test_every_block_key_round_trips_at_every_resolution(name):
    sp = get_space(name)
    blocks = sp.unique_blocks(list(sp.resolutions))
    assert len(blocks) == len(set(blocks))
    for b in blocks:
        assert Block.from_key(b.key) == b
    assert len(sp.unique_blocks(224)) == 2 + 5 * 2 * 9 + 4  # a stage's non-first slots share blocks


def test_unique_blocks_match_ofa_note10_keys_at_every_resolution():
    sp = get_space("ofa-mbv3-w1.2")
    for path in sorted((DATA / "ofa" / "note10").glob("*_lookup_table.yaml")):
        r = int(path.name.split("_")[0])
        keys = set(yaml.safe_load(path.read_text()))
        ours = {b.key for b in sp.unique_blocks(r)}
        # OFA's table holds one row per distinct block; ours must price exactly those.
        assert ours == keys, (r, sorted(ours ^ keys)[:5])


def test_blocks_follow_ofa_shape_rules():
    sp = get_space("ofa-mbv3-w1.0")
    arch = _arch(ks=7, e=6, d=4, r=130)
    bl = sp.blocks(arch)
    assert bl[0].key == "Conv-input:130x130x3-output:65x65x16"
    assert bl[1].key == "expanded_conv-input:65x65x16-output:65x65x16-expand:16-kernel:3-stride:1-idskip:1-se:0-hs:0"
    assert bl[2].key == "expanded_conv-input:65x65x16-output:33x33x24-expand:96-kernel:7-stride:2-idskip:0-se:0-hs:0"
    assert bl[3].skip and bl[3].stride == 1 and bl[3].in_chs == 24
    assert len(bl) == 2 + 20 + 4
    assert [b.kind for b in bl[-4:]] == ["final_expand", "avgpool", "feature_mix", "classifier"]
    assert bl[-1].key == "Logits-input:1x1x1280-output:1000"
    # mid channels are round(cin * expand)
    assert sp.blocks(_arch(e=3, d=2))[2].mid_chs == round(16 * 3)


def test_inactive_slots_are_ignored():
    sp = get_space("ofa-mbv3-w1.2")
    a = _arch(d=2)
    b = dict(a, ks=[5, 5, 3, 7] * 5)
    assert sp.blocks(a) == sp.blocks(b)
    genome = Genome(sp)
    rows = genome.from_batch(SubnetBatch.from_subnets([sp.validate(a), sp.validate(b)]))
    np.testing.assert_array_equal(*genome.canonical(rows))
    assert sp.active_slots(a) == [0, 1, 4, 5, 8, 9, 12, 13, 16, 17]


def test_arch_variants_accepted():
    sp = get_space("ofa-mbv3-w1.0")
    arch = dict(_arch(), r=[224], wid=None)
    assert sp.validate(arch).r == 224
    assert space.blocks(_arch(), "ofa-mbv3-w1.0") == sp.blocks(_arch())


@pytest.mark.parametrize(
    "bad,match",
    [
        (dict(_arch(), ks=[4] + [3] * 19), r"ks\[0\] = 4 is not one of \[3, 5, 7\]"),
        (dict(_arch(), e=[3] * 19), "e must have 20 entries"),
        (dict(_arch(), d=[2, 3, 4, 5, 2]), r"d\[3\] = 5"),
        (dict(_arch(), r=[224, 192]), "one-element list"),
        (dict(_arch(), r="big"), "r must be an int"),
        (dict(_arch(), r=4), "out of range"),
        ({"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5}, "missing r"),
        (dict(_arch(), depth=[2] * 5), "unknown keys"),
        ([1, 2, 3], "must be a dict"),
        (dict(_arch(), ks=[3.5] * 20), r"ks\[0\] must be an int"),
    ],
)
def test_validation_names_bad_field(bad, match):
    with pytest.raises(ValueError, match=match):
        get_space("ofa-mbv3-w1.0").validate(bad)


@pytest.mark.parametrize(
    "key",
    [
        "expanded_conv-input:24x24x48-output:12x12x96-expand:288-kernel:5-stride:2-idskip:0-se:0",
        "Conv-input:224x224x3",
        "Logits-input:2x1x1536-output:1000",
        "expanded_conv-input:24x24x48-output:24x24x96-expand:288-kernel:5-stride:1-idskip:1-se:0-hs:1",
        "Conv-input:224x224x3-output:112x112x24 trailing",
    ],
)
def test_bad_keys_rejected(key):
    with pytest.raises(ValueError):
        Block.from_key(key)


def test_net_config_matches_space_blocks():
    folder = DATA / "ofa" / "specialized" / "note10_lat-30ms_top1-78.4_finetune-75"
    blocks = read_net_config(folder, 224)
    assert blocks[0].key == "Conv-input:224x224x3-output:112x112x24"
    assert blocks[-1].key == "Logits-input:1x1x1536-output:1000"
    keys = set(yaml.safe_load((DATA / "ofa" / "note10" / "224_lookup_table.yaml").read_text()))
    assert all(b.key in keys for b in blocks)


def test_every_specialized_net_config_parses_into_its_spaces_blocks():
    families = {"ofa-mbv3": 0, "ofa-proxyless": 0}
    for folder in sorted((DATA / "ofa" / "specialized").iterdir()):
        cfg = json.loads((folder / "net.config").read_text())
        r = json.loads((folder / "run.config").read_text())["image_size"]
        blocks = read_net_config(cfg, r)
        assert blocks[0].in_hw == r
        family = space.net_config_family(cfg)
        families[family] += 1
        # Every block is one its family's released supernet can run at r.
        fits = [n for n in ALL_SPACES if get_space(n).family == family
                and {b.key for b in blocks} <= {b.key for b in get_space(n).unique_blocks(r)}]
        assert fits, folder.name
    assert families == {"ofa-mbv3": 34, "ofa-proxyless": 16}


def test_population_ops_are_vectorized_and_valid():
    sp = get_space("ofa-mbv3-w1.2")
    rng = np.random.default_rng(0)
    pop = sp.sample(5000, rng)
    assert pop.ks.shape == (5000, 20) and pop.r.shape == (5000,)
    assert set(np.unique(pop.ks)) == {3, 5, 7} and set(np.unique(pop.d)) == {2, 3, 4}
    assert set(np.unique(pop.r)) <= set(sp.resolutions)
    genome = Genome(sp)
    mutated = genome.to_batch(genome.mutate(genome.from_batch(pop), 0.1, rng))
    changed = (mutated.ks != pop.ks).mean()
    assert 0.04 < changed < 0.1  # 10% resampled, two thirds of those land on a new value
    child = genome.to_batch(genome.crossover(genome.from_batch(pop), genome.from_batch(mutated), rng))
    from_either = (child.ks == pop.ks) | (child.ks == mutated.ks)
    assert from_either.all()
    for s in pop.take(np.arange(50)).to_subnets():
        sp.validate(s)
    assert SubnetBatch.from_subnets(pop.to_subnets()[:3]).ks.tolist() == pop.ks[:3].tolist()
    only = sp.sample(100, rng, resolutions=[160])
    assert (only.r == 160).all()


def test_sampling_is_seeded():
    sp = get_space("ofa-mbv3-w1.0")
    a = sp.sample(10, np.random.default_rng(7))
    b = sp.sample(10, np.random.default_rng(7))
    assert (a.ks == b.ks).all() and (a.r == b.r).all()
