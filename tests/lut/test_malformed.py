"""Malformed files are refused with the file and line/key named, and nothing is half-imported."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from lut import DeviceSetting, ImportFormatError, LutStore, import_files

from .conftest import NOTE10_FILES

GOOD_KEY = "Conv-input:224x224x3-output:112x112x24"
GOOD = f"{GOOD_KEY}:\n  count: 10\n  mean: 1.0\n  std: 0.1\n"


def _assert_untouched(store: LutStore, n_settings: int, n_rows: dict[int, int]) -> None:
    assert len(store.settings()) == n_settings
    assert store.count_rows() == n_rows


@pytest.mark.parametrize("body, message", [
    (GOOD + "Conv_1-input:7x7x192-output:7x7x1152: {count: 1, mean: 1.0, std: [\n", r"line \d+: YAML syntax error"),
    (GOOD + "expanded_conv-input:bogus:\n  count: 1\n  mean: 1.0\n  std: 0.1\n",
     r"line 5: key 'expanded_conv-input:bogus': not an OFA block key"),
    (GOOD + "Conv_2-input:1x1x1152-output:1x1x1536:\n  count: 1\n  std: 0.1\n",
     r"line 5: key 'Conv_2-input:1x1x1152-output:1x1x1536': missing field 'mean'"),
    (GOOD + "Conv_2-input:1x1x1152-output:1x1x1536:\n  count: 1\n  mean: -0.5\n  std: 0.1\n",
     r"line 5: .*mean must be a finite number >= 0, got -0.5"),
    (GOOD + "Conv_2-input:1x1x1152-output:1x1x1536:\n  count: 1\n  mean: .nan\n  std: 0.1\n",
     r"line 5: .*mean must be a finite number >= 0, got nan"),
    (GOOD + "Conv_2-input:1x1x1152-output:1x1x1536:\n  count: 1\n  mean: fast\n  std: 0.1\n",
     r"line 5: .*mean must be a number, got 'fast'"),
    ("- just\n- a list\n", r"line 1: expected a mapping"),
])
def test_bad_ofa_yaml(ref_store: LutStore, tmp_path: Path, body: str, message: str) -> None:
    before = (len(ref_store.settings()), ref_store.count_rows())
    bad = tmp_path / "224_lookup_table.yaml"
    bad.write_text(body)
    with pytest.raises(ImportFormatError, match=rf"{bad}: {message}"):
        import_files(ref_store, DeviceSetting("new", "unknown"), [*NOTE10_FILES[:2], bad])
    _assert_untouched(ref_store, *before)
    # Into an existing setting: its rows stay as they were.
    table = ref_store.table("note10")
    with pytest.raises(ImportFormatError):
        import_files(ref_store, "note10", [bad])
    assert ref_store.table("note10") == table


def test_bad_nsganetv2_yaml(ref_store: LutStore, tmp_path: Path) -> None:
    before = (len(ref_store.settings()), ref_store.count_rows())
    bad = tmp_path / "lut.yaml"
    bad.write_text(
        "MBConv-input:56x56x24-output:28x28x40-expand:3-kernel:7-stride:2-idskip:0-se:1:\n  mean: 1.0\n  var: 0.01\n"
        "MBConv-input:56x56x24-output:28x28x40-expand:3-kernel:7-stride:2-idskip:0-se:0-hs:1:\n  mean: 1.0\n  var: 0.1\n"
    )
    with pytest.raises(ImportFormatError, match=rf"{bad}: line 4: key 'MBConv-.*-hs:1': not an nsganetv2 key"):
        import_files(ref_store, DeviceSetting("new", "unknown"), [bad], fmt="nsganetv2-yaml")
    bad.write_text("MBConv-input:56x56x24-output:28x28x40-expand:3-kernel:7-stride:2-idskip:0-se:1:\n  mean: 1.0\n")
    with pytest.raises(ImportFormatError, match=r"line 1: .*missing field 'var'"):
        import_files(ref_store, DeviceSetting("new", "unknown"), [bad], fmt="nsganetv2-yaml")
    _assert_untouched(ref_store, *before)


@pytest.mark.parametrize("frame, message", [
    (pd.DataFrame({"block_key": [GOOD_KEY, "nope"], "median_ms": [1.0, 2.0]}), r"line 3: key 'nope': not an OFA block key"),
    (pd.DataFrame({"block_key": [GOOD_KEY, GOOD_KEY.replace("224", "220")], "median_ms": [1.0, -2.0]}),
     r"line 3: key 'Conv-input:220x220x3.*median_ms must be >= 0"),
    (pd.DataFrame({"block_key": [GOOD_KEY, "Conv_2-input:1x1x1152-output:1x1x1536"], "median_ms": [1.0, None]}),
     r"line 3: key 'Conv_2-input:1x1x1152-output:1x1x1536': median_ms is required"),
    (pd.DataFrame({"block_key": [GOOD_KEY], "mean_ms": [1.0]}), r"line 1: missing column 'median_ms'"),
    (pd.DataFrame({"block_key": [GOOD_KEY], "median_ms": [1.0], "speed": [3]}), r"line 1: unknown column"),
    (pd.DataFrame({"block_key": [GOOD_KEY, GOOD_KEY], "median_ms": [1.0, 1.0]}), r"line 3: key .* repeats line 2"),
])
def test_bad_csv(ref_store: LutStore, tmp_path: Path, frame: pd.DataFrame, message: str) -> None:
    before = (len(ref_store.settings()), ref_store.count_rows())
    path = tmp_path / "lut.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(ImportFormatError, match=rf"{path}: {message}"):
        import_files(ref_store, DeviceSetting("new", "unknown"), [path])
    _assert_untouched(ref_store, *before)


def test_bad_parquet(ref_store: LutStore, tmp_path: Path) -> None:
    before = (len(ref_store.settings()), ref_store.count_rows())
    path = tmp_path / "lut.parquet"
    pd.DataFrame({"block_key": [GOOD_KEY, GOOD_KEY.replace("224", "220")],
                  "median_ms": [1.0, 1.0], "mean_ms": [1.0, float("inf")]}).to_parquet(path)
    with pytest.raises(ImportFormatError, match=rf"{path}: row 2: key .*mean_ms must be finite"):
        import_files(ref_store, DeviceSetting("new", "unknown"), [path])
    path.write_bytes(b"PAR1garbage")
    with pytest.raises(ImportFormatError, match="not a readable Parquet file"):
        import_files(ref_store, DeviceSetting("new", "unknown"), [path])
    _assert_untouched(ref_store, *before)
