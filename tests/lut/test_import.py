"""OFA and nsganetv2 imports give the published predictions, at every resolution and width."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lut import ASSUMED_ZERO_NOTE, CompiledLut, DeviceSetting, LutStore, import_files, read_nsganetv2_yaml
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
    assert len(rows) == 450
    assert (rows.source == "ofa-yaml").all()
    assert (rows.median_ms == rows.mean_ms).all()
    assert all("median_from" in json.loads(e) for e in rows.extra)
    # The highest-resolution file wins for keys timed in several files.
    logits = rows.set_index("block_key").loc["Logits-input:1x1x1536-output:1000"]
    assert logits.median_ms == pytest.approx(0.669412)
    assert set(json.loads(logits.extra)["other_files"]) == {"160_lookup_table.yaml", "176_lookup_table.yaml",
                                                            "192_lookup_table.yaml", "208_lookup_table.yaml"}


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
