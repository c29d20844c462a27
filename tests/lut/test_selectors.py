"""Naming one device setting among several: names, ids and selectors like ``cpu:int8``."""

from __future__ import annotations

from pathlib import Path

import pytest

from lut import AmbiguousDeviceError, DeviceSetting, LutStore, UnknownDeviceError
from lut.selectors import parse_selector, selector_for, with_precision


@pytest.fixture()
def store(tmp_path: Path):
    with LutStore(tmp_path / "lut.db") as s:
        s.ensure_setting(DeviceSetting("cpu", "onnxruntime", "1.32.0", 1, "fp32", "onnx"))  # 1
        s.ensure_setting(DeviceSetting("cpu", "onnxruntime", "1.32.0", 1, "int8", "onnx"))  # 2
        s.ensure_setting(DeviceSetting("cpu", "tflite", "2.3.0", 1, "fp32", "tflite"))  # 3
        s.ensure_setting(DeviceSetting("cpu", "tflite", "2.3.0", 4, "fp32", "tflite"))  # 4
        s.ensure_setting(DeviceSetting("pi5", "tflite", "2.3.0", 4, "fp16", "tflite"))  # 5
        yield s


@pytest.mark.parametrize("ref,expected", [
    ("pi5", 5), ("5", 5), (2, 2), ("cpu:int8", 2), ("cpu:onnxruntime:fp32", 1), ("cpu:onnx:fp32", 1),
    ("cpu:tflite:4t", 4), ("cpu:tflite:threads=1", 3), ("cpu:precision=int8", 2), ("pi5:fp16", 5),
    ("cpu:runtime=onnxruntime:int8", 2),
])
def test_selectors_pick_one_setting(store: LutStore, ref: str | int, expected: int) -> None:
    assert store.setting(ref).id == expected


def test_ambiguous_name_lists_a_selector_for_each_setting(store: LutStore) -> None:
    with pytest.raises(AmbiguousDeviceError) as info:
        store.setting("cpu")
    message = str(info.value)
    assert "device 'cpu' has 4 settings, pick one:" in message
    assert "cpu:int8 (#2 cpu: onnxruntime 1.32.0, 1 thread, int8, onnx)" in message
    with pytest.raises(AmbiguousDeviceError, match="'cpu:tflite' has 2 settings"):
        store.setting("cpu:tflite")


def test_selector_for_is_the_shortest_unique_name(store: LutStore) -> None:
    settings = store.settings()
    names = [selector_for(s, settings) for s in settings]
    assert names == ["cpu:onnxruntime:fp32", "cpu:int8", "cpu:tflite:fp32:threads=1", "cpu:tflite:fp32:threads=4", "pi5"]
    assert [store.setting(n).id for n in names] == [1, 2, 3, 4, 5]


def test_no_match_and_malformed_selectors_are_one_line_errors(store: LutStore) -> None:
    with pytest.raises(UnknownDeviceError, match="no setting of 'cpu' matches 'cpu:fp16'; its settings: "):
        store.setting("cpu:fp16")
    with pytest.raises(UnknownDeviceError, match="unknown device 'gpu' in 'gpu:int8'; known devices: cpu, pi5"):
        store.setting("gpu:int8")
    with pytest.raises(ValueError, match="unknown selector key 'bits'.*known: runtime, version, threads"):
        store.setting("cpu:bits=8")
    with pytest.raises(ValueError, match="empty qualifier"):
        store.setting("cpu::int8")
    with pytest.raises(UnknownDeviceError, match="no device setting with id 9"):
        store.setting("9")


def test_a_name_with_a_colon_still_matches_itself(tmp_path: Path) -> None:
    with LutStore(tmp_path / "lut.db") as store:
        sid = store.ensure_setting(DeviceSetting("host:a", "onnxruntime"))
        assert store.setting("host:a").id == sid


def test_parse_and_with_precision() -> None:
    assert parse_selector("cpu:int8:4t:format=onnx") == ("cpu", [(None, "int8"), ("threads", "4"),
                                                                  ("model_format", "onnx")])
    assert with_precision("cpu", "int8") == "cpu:int8"
    assert with_precision("cpu", None) == "cpu"
    assert with_precision("3", "int8") == "3"
