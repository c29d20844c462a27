"""LUTs of every family: ProxylessNAS's own table imports and is found by key, every family's subnets are
priced as their blocks' sum, and a setting that holds several spaces prices each request in the one it fits."""

from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pytest
import yaml

from lut import DeviceSetting, LutStore, import_files
from lut.predict import CompiledLut
from lut.spaces import arch_source, choose_space, lut_source, net_config_source
from space import ResNetSpace, get_space, read_net_config, space_from_dict

from tests.conftest import SHARED_DATA

from .conftest import random_table

DATA = SHARED_DATA


def _proxyless_w10():
    """ProxylessNAS at w1.0 with expand 3 or 6 at r=224: the space ProxylessNAS's Pixel 1 table times."""
    doc = json.loads(resources.files("space").joinpath("data", "ofa-proxyless-w1.3.json").read_text())
    doc.update(name="proxyless-w1.0-mobile", width_mult=1.0, resolutions=[224])
    doc["choices"]["e"] = [3, 6]
    return space_from_dict(doc)


def test_proxylessnas_table_imports_and_prices_its_space_by_key(shared_data, tmp_path):
    path = shared_data / "proxylessnas" / "mobile_trim.yaml"
    means = {k: v["mean"] for k, v in yaml.safe_load(path.read_text()).items()}
    with LutStore(tmp_path / "lut.db") as store:
        result = import_files(store, DeviceSetting("pixel1", "unknown"), [path])
        assert result.n_rows == len(means) == 72
        table = store.table(result.setting_id, "mean_ms")
        rows = store.rows(store.setting(result.setting_id))
    assert table == pytest.approx(means)
    var = yaml.safe_load(path.read_text())["Logits-input:7x7x1280-output:1000"]["var"]
    logits = rows[rows.block_key == "Logits-input:7x7x1280-output:1000"].iloc[0]
    assert logits.std_ms == pytest.approx(var ** 0.5)
    space = _proxyless_w10()
    compiled = CompiledLut.from_table(table, space)
    assert compiled.resolutions == (224,)
    batch = space.sample(50, np.random.default_rng(0))
    expected = [sum(means[b.key] for b in space.blocks(s)) for s in batch.to_subnets()]
    np.testing.assert_allclose(compiled.predict_batch(batch), expected)


@pytest.mark.parametrize("name", ["ofa-mbv3-w1.2", "ofa-proxyless-w1.3", "ofa-resnet50"])
def test_every_family_is_priced_as_its_blocks_sum(name):
    space = get_space(name)
    table = random_table(space, (160, 224))
    compiled = CompiledLut.from_table(table, space, device="synthetic")
    assert compiled.resolutions == (160, 224)
    rng = np.random.default_rng(1)
    if isinstance(space, ResNetSpace):
        archs = [s.to_arch() for s in space.sample_archs(40, rng, [160, 224])]
        predicted = compiled.predict_many(archs)
        parts = compiled.components(archs)
    else:
        batch = space.sample(400, rng, [160, 224])
        archs = [s.to_arch() for s in batch.to_subnets()]
        predicted = compiled.predict_batch(batch)
        parts = compiled.components(batch)
    expected = [sum(table[b.key] for b in space.blocks(a)) for a in archs]
    np.testing.assert_allclose(predicted, expected)
    stage_sum = sum(parts[f"stage{s + 1}_ms"] for s in range(space.n_stages))
    np.testing.assert_allclose(parts["fixed_ms"] + stage_sum, parts["raw_ms"])
    np.testing.assert_allclose(parts["n_blocks"], [len(space.blocks(a)) for a in archs])
    assert compiled.predict(archs[0]) == pytest.approx(expected[0])
    if not isinstance(space, ResNetSpace):  # exact bounds over the space (a ResNet LUT gives its extreme subnets')
        lo, hi = compiled.value_range()
        assert lo <= min(expected) and max(expected) <= hi
    missing = dict(table)
    del missing[space.blocks(archs[0])[0].key]  # the first conv every subnet at that resolution runs
    assert CompiledLut.from_table(missing, space).resolutions == tuple(r for r in (160, 224) if r != archs[0]["r"])


def test_proxyless_specialized_nets_are_priced_from_their_spaces_lut(shared_data):
    space = get_space("ofa-proxyless-w1.3")
    nets = []
    for folder in sorted((shared_data / "ofa" / "specialized").iterdir()):
        cfg = json.loads((folder / "net.config").read_text())
        if "final_expand_layer" not in cfg:
            nets.append((folder, json.loads((folder / "run.config").read_text())["image_size"]))
    assert len(nets) == 16
    table = random_table(space, sorted({r for _, r in nets}))
    compiled = CompiledLut.from_table(table, space)
    for folder, r in nets:
        blocks = read_net_config(folder, r)
        assert compiled.predict_blocks(blocks) == pytest.approx(sum(table[b.key] for b in blocks))
        assert net_config_source(folder.name, blocks).spaces == {"ofa-proxyless-w1.3": (r,)}


def test_a_setting_holding_two_spaces_prices_each_request_in_the_one_it_fits():
    w025, w10 = get_space("ofa-mbv3-w0.25"), get_space("ofa-mbv3-w1.0")
    table = {**random_table(w025, (12, 16)), **random_table(w10, (224,), seed=1)}
    lut = lut_source("cpu:tflite", table)
    assert lut.spaces == {"ofa-mbv3-w0.25": (12, 16), "ofa-mbv3-w1.0": (224,)}
    arch = {"ks": [3] * 20, "e": [4] * 20, "d": [2] * 5, "r": 224}
    assert choose_space([lut, arch_source("--arch", arch)]) == "ofa-mbv3-w1.0"
    assert choose_space([lut, arch_source("--arch", dict(arch, r=12))]) == "ofa-mbv3-w0.25"
    compiled = CompiledLut.from_table(table, "ofa-mbv3-w1.0")
    assert compiled.predict(arch) == pytest.approx(sum(table[b.key] for b in w10.blocks(arch)))
    # Nothing in the request tells the two apart: one line that lists what the setting covers
    with pytest.raises(ValueError, match=r"several spaces fit \(ofa-mbv3-w0.25, ofa-mbv3-w1.0\): LUT 'cpu:tflite' "
                                         r"covers ofa-mbv3-w0.25 at r=12, 16 and ofa-mbv3-w1.0 at r=224; pass --space"):
        choose_space([lut])
    assert choose_space([lut], "ofa-mbv3-w1.0") == "ofa-mbv3-w1.0"
    # A request at a resolution neither covers is left to the reader, which names the missing blocks
    assert choose_space([lut, arch_source("--arch", dict(arch, r=160))], "ofa-mbv3-w1.0") == "ofa-mbv3-w1.0"


def test_a_request_of_another_family_picks_that_family_in_a_mixed_setting():
    mbv3, resnet = get_space("ofa-mbv3-w1.0"), get_space("ofa-resnet50")
    table = {**random_table(mbv3, (224,)), **random_table(resnet, (224,), seed=2)}
    lut = lut_source("gpu", table)
    assert lut.spaces == {"ofa-mbv3-w1.0": (224,), "ofa-resnet50": (224,)}
    arch = resnet.sample_archs(1, np.random.default_rng(3), [224])[0].to_arch()
    assert choose_space([lut, arch_source("--arch", arch)]) == "ofa-resnet50"
