"""Exports (OFA yaml, CSV, Parquet) re-import to identical rows and predictions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from lut import CompiledLut, DeviceSetting, LutStore, export_table, import_files
from lut._yaml import _parse_lut_layout
from lut.exporters import dump_ofa_yaml
from space import get_space


@pytest.mark.parametrize("device", ["note10", "i7"])
@pytest.mark.parametrize("fmt", ["ofa-yaml", "csv", "parquet"])
def test_round_trip(ref_store: LutStore, tmp_path: Path, device: str, fmt: str) -> None:
    dest = tmp_path / ("out" if fmt == "ofa-yaml" else f"out.{fmt}")
    paths = export_table(ref_store, device, fmt, dest)
    import_files(ref_store, DeviceSetting("copy", "unknown"), paths, fmt=fmt)
    assert ref_store.table("copy") == ref_store.table(device)
    if fmt != "ofa-yaml":  # tables carry every column
        before, after = ref_store.rows(device), ref_store.rows("copy")
        assert before.equals(after)
    rng = np.random.default_rng(1)
    for name in ("ofa-mbv3-w1.2",) if device == "note10" else ("ofa-mbv3-w1.0", "ofa-mbv3-w1.2"):
        a, b = CompiledLut.from_store(ref_store, device, name), CompiledLut.from_store(ref_store, "copy", name)
        assert a.resolutions == b.resolutions
        batch = get_space(name).sample(500, rng, resolutions=a.resolutions)
        np.testing.assert_array_equal(a.predict_batch(batch), b.predict_batch(batch))


def test_ofa_yaml_files_are_ofa_shaped(ref_store: LutStore, tmp_path: Path) -> None:
    paths = export_table(ref_store, "note10", "ofa-yaml", tmp_path)
    assert sorted(p.name for p in paths) == [f"{r}_lookup_table.yaml" for r in (160, 176, 192, 208, 224)] + [
        "lutnas-setting.json"]
    data = yaml.safe_load((tmp_path / "224_lookup_table.yaml").read_text())
    assert len(data) == 96
    assert data["Conv-input:224x224x3-output:112x112x24"] == {"count": 500, "mean": 0.994418, "std": 0.01726798413249215}


def test_measured_statistics_survive_yaml(tmp_path: Path) -> None:
    space = get_space("ofa-mbv3-w1.0")
    keys = [b.key for b in space.unique_blocks(160)]
    with LutStore(tmp_path / "lut.db") as store:
        sid = store.ensure_setting(DeviceSetting("pi", "onnxruntime", "1.17", 1, "fp32", "onnx"))
        store.put_rows(sid, [(k, {"median_ms": 1.0 + i, "mean_ms": 1.2 + i, "std_ms": 0.1, "p10_ms": 0.9 + i,
                                  "p90_ms": 1.5 + i, "n": 40}, {"agent_version": "0.1"}) for i, k in enumerate(keys)])
        paths = export_table(store, "pi", "ofa-yaml", tmp_path / "y")
        import_files(store, DeviceSetting("pi2", "unknown"), paths)
        assert store.table("pi2") == store.table("pi")
        assert store.table("pi2", "p90_ms") == store.table("pi", "p90_ms")
        assert store.table("pi2", "mean_ms") == store.table("pi", "mean_ms")


_numbers = st.one_of(st.integers(0, 10**9), st.floats(0, 1e30, allow_nan=False, allow_infinity=False))


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["mean", "std", "median", "p10", "p90", "count"]), _numbers, min_size=1))
def test_dumped_numbers_read_back_exactly(entry: dict) -> None:
    text = dump_ofa_yaml({"Conv_2-input:1x1x1152-output:1x1x1536": entry})
    slow = yaml.safe_load(text)
    assert slow == {"Conv_2-input:1x1x1152-output:1x1x1536": entry}
    fast = _parse_lut_layout(text)
    assert fast == slow and all(type(fast[k][f]) is type(slow[k][f]) for k in fast for f in fast[k])
