"""OFA and nsganetv2 imports give the published predictions, at every resolution and width."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from lut import (
    ASSUMED_ZERO_NOTE,
    CompiledLut,
    DeviceSetting,
    LutStore,
    export_table,
    import_files,
    qualified_key,
    read_nsganetv2_yaml,
    split_row_key,
)
from lut.importers import nsganetv2_to_ofa_key
from space import get_space, read_net_config

from .conftest import NOTE10_FILES, NOTE10_NET, NSGA_FILE


def test_note10_published_subnet_is_29_97_ms(ref_store: LutStore) -> None:
    compiled = CompiledLut.from_store(ref_store, "note10", "ofa-mbv3-w1.2")
    latency = compiled.predict_blocks(read_net_config(NOTE10_NET, 224))
    assert latency == pytest.approx(29.97, abs=0.01)
    assert compiled.resolutions == (160, 176, 192, 208, 224)


def test_note10_rows_say_median_is_the_mean(ref_store: LutStore) -> None:
    rows = ref_store.rows("note10")
    assert len(rows) == 5 * 96  # one row per entry of the five files: 450 blocks, 30 of them timed again
    assert (rows.source == "ofa-yaml").all()
    assert (rows.median_ms == rows.mean_ms).all()
    assert all("median_from" in json.loads(e) for e in rows.extra)
    # A key timed in several files: the highest resolution's value under the plain key, each other file's
    # value under the key qualified by that file's resolution.
    by_key = rows.set_index("block_key")
    logits = "Logits-input:1x1x1536-output:1000"
    assert by_key.loc[logits].median_ms == pytest.approx(0.669412)
    assert json.loads(by_key.loc[logits].extra)["file"] == "224_lookup_table.yaml"
    assert by_key.loc[qualified_key(logits, 160)].median_ms == pytest.approx(0.656440881763527)
    assert json.loads(by_key.loc[qualified_key(logits, 160)].extra)["file"] == "160_lookup_table.yaml"
    assert {split_row_key(k)[1] for k in by_key.index if split_row_key(k)[0] == logits} == {None, 160, 176, 192, 208}


def test_predictions_from_ofa_files_are_ofas_at_every_resolution(ref_store: LutStore) -> None:
    """OFA's rule: a subnet at r costs the sum of r's file's entries for its blocks; lutnas must agree exactly."""
    files = {int(p.name.split("_")[0]): yaml.safe_load(p.read_text()) for p in NOTE10_FILES}
    assert sorted(files) == [160, 176, 192, 208, 224]
    space = get_space("ofa-mbv3-w1.2")
    compiled = CompiledLut.from_store(ref_store, "note10", space.name)
    rng = np.random.default_rng(3)
    for r, entries in files.items():
        batch = space.sample(40, rng, resolutions=[r])
        ofa_ms = [sum(entries[b.key]["mean"] for b in space.blocks(batch[i])) for i in range(len(batch))]
        np.testing.assert_allclose(compiled.predict_batch(batch), ofa_ms, rtol=1e-12, atol=0)
        for i in range(3):  # an explicit block list at r prices the same way
            blocks = space.blocks(batch[i])
            assert compiled.predict_blocks(blocks) == pytest.approx(ofa_ms[i], rel=1e-12)
    # The head's values differ by resolution, so the old one-value-per-key rule could not match OFA.
    conv_2 = "Conv_2-input:1x1x1152-output:1x1x1536"
    assert len({entries[conv_2]["mean"] for entries in files.values()}) == 5


def test_an_ofa_yaml_export_gives_ofas_files_back(ref_store: LutStore, tmp_path: Path) -> None:
    paths = export_table(ref_store, "note10", "ofa-yaml", tmp_path)
    for original in NOTE10_FILES:
        exported = yaml.safe_load((tmp_path / original.name).read_text())
        ofa = yaml.safe_load(original.read_text())
        assert exported.keys() == ofa.keys(), original.name
        assert {k: v["mean"] for k, v in exported.items()} == {k: v["mean"] for k, v in ofa.items()}, original.name
    assert len(paths) == len(NOTE10_FILES) + 1  # and the setting's metadata


def test_a_profiled_lut_timed_once_gets_no_qualified_rows(tmp_path: Path) -> None:
    """A lutnas export repeats a shared block's one value in every file; reading it back adds no rows."""
    space = get_space("ofa-mbv3-w1.0")
    keys = [b.key for b in space.unique_blocks([128, 160])]
    with LutStore(tmp_path / "lut.db") as store:
        sid = store.ensure_setting(DeviceSetting("pi", "onnxruntime", "1.17", 1, "fp32", "onnx"))
        store.put_rows(sid, [(k, {"median_ms": 1.0 + i}, {}) for i, k in enumerate(keys)])
        paths = export_table(store, "pi", "ofa-yaml", tmp_path / "y")
        import_files(store, DeviceSetting("pi2", "unknown"), paths)
        assert store.keys("pi2") == set(keys) and len(keys) == 190


def test_malformed_resolution_qualifiers_are_refused(tmp_path: Path) -> None:
    key = "Logits-input:1x1x1536-output:1000"
    with LutStore(tmp_path / "lut.db") as store:
        sid = store.ensure_setting(DeviceSetting("pi", "unknown"))
        for bad in (f"{key}@r", f"{key}@rx", f"{key}@r99999", "Logits-input:1x1x15@r160"):
            with pytest.raises(ValueError):
                store.put_rows(sid, [(bad, {"median_ms": 1.0}, {})])
        store.put_rows(sid, [(qualified_key(key, 160), {"median_ms": 1.0}, {})])
        assert store.keys(sid) == {f"{key}@r160"}


def test_import_order_does_not_matter(tmp_path: Path, note10_table: dict) -> None:
    with LutStore(tmp_path / "lut.db") as store:
        import_files(store, DeviceSetting("n", "unknown"), list(reversed(NOTE10_FILES)))
        assert store.table("n") == note10_table


def test_nsganetv2_one_setting_both_widths_every_resolution(ref_store: LutStore) -> None:
    assert [s.name for s in ref_store.settings("i7")] == ["i7"]
    rng = np.random.default_rng(0)
    for name in ("ofa-mbv3-w1.0", "ofa-mbv3-w1.2"):
        compiled = CompiledLut.from_store(ref_store, "i7", name)
        assert compiled.resolutions == tuple(range(96, 257, 4))
        space = get_space(name)
        batch = space.sample(2 * 41, rng, resolutions=compiled.resolutions)
        batch = batch.take(np.argsort(batch.r))
        predicted = compiled.predict_batch(batch)
        table = compiled.table
        for i in range(len(batch)):
            assert predicted[i] == pytest.approx(sum(table[b.key] for b in space.blocks(batch[i])), rel=1e-12)
        for r in (96, 160, 256):
            assert compiled.missing_keys(r) == []


def test_nsganetv2_key_mapping() -> None:
    # Stage 3 of w1.0 (40 -> 80 channels) runs h-swish, stage 2 (24 -> 40) ReLU with SE.
    assert (nsganetv2_to_ofa_key("MBConv-input:28x28x40-output:14x14x80-expand:6-kernel:5-stride:2-idskip:0-se:0")
            == "expanded_conv-input:28x28x40-output:14x14x80-expand:240-kernel:5-stride:2-idskip:0-se:0-hs:1")
    assert (nsganetv2_to_ofa_key("MBConv-input:56x56x24-output:28x28x40-expand:3-kernel:7-stride:2-idskip:0-se:1")
            == "expanded_conv-input:56x56x24-output:28x28x40-expand:72-kernel:7-stride:2-idskip:0-se:1-hs:0")
    assert nsganetv2_to_ofa_key("first_conv-input:224x224x3-output:112x112x24") == "Conv-input:224x224x3-output:112x112x24"
    assert nsganetv2_to_ofa_key("final_expand_layer-input:7x7x192-output:7x7x1152") == "Conv_1-input:7x7x192-output:7x7x1152"
    assert nsganetv2_to_ofa_key("feature_mix_layer-input:1x1x960-output:1x1x1280") == "Conv_2-input:1x1x960-output:1x1x1280"
    assert nsganetv2_to_ofa_key("classifier-input:1536-output:1000") == "Logits-input:1x1x1536-output:1000"


def test_nsganetv2_values_and_assumed_pool_rows() -> None:
    rows = {key: (stats, prov) for key, stats, prov in read_nsganetv2_yaml(NSGA_FILE)}
    assert len(rows) == 4050 + 12
    stats, prov = rows["expanded_conv-input:50x50x24-output:50x50x24-expand:72-kernel:3-stride:1-idskip:1-se:0-hs:0"]
    assert stats["median_ms"] == stats["mean_ms"] and prov["source"] == "nsganetv2-yaml"
    pools = {k: v for k, v in rows.items() if k.startswith("AvgPool2D")}
    assert len(pools) == 12  # 6 final sides x 2 widths
    for stats, prov in pools.values():
        assert stats["median_ms"] == 0.0 and prov["extra"]["note"] == ASSUMED_ZERO_NOTE


def test_from_plain_dict(note10_table: dict) -> None:
    compiled = CompiledLut.from_table(note10_table, "ofa-mbv3-w1.2")
    assert compiled.device is None and compiled.calibration is None
    assert compiled.predict_blocks(read_net_config(NOTE10_NET, 224)) == pytest.approx(29.97, abs=0.01)
