"""The space a command works in is inferred from its inputs; a mismatch names every input's widths
and resolutions and which inputs fit each space."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from lut import Calibration, DeviceSetting, LutStore
from space import get_space
from tests.conftest import SHARED_DATA

from .conftest import invoke, invoke_json, one_line

DATA = SHARED_DATA or Path("/nonexistent")
OFA_WEIGHTS = DATA / "ofa" / "acc_predictor.pth"
W10_NET = DATA / "ofa" / "specialized" / "note10_lat-22ms_top1-76.6_finetune-25"  # w1.0, run.config: 224
W12_NET = DATA / "ofa" / "specialized" / "note10_lat-30ms_top1-78.4_finetune-75"  # w1.2, run.config: 224
ARCH_224 = {"ks": [5] * 20, "e": [4] * 20, "d": [3] * 5, "r": 224}


def _add_w10(store: LutStore, name: str, resolution: int) -> int:
    """A device whose LUT holds only w1.0 blocks at one resolution (taken from the i7 LUT)."""
    i7 = store.table("i7")
    keys = {b.key for b in get_space("ofa-mbv3-w1.0").unique_blocks([resolution])}
    setting_id, _ = store.import_rows(DeviceSetting(name, "onnxruntime", threads=1),
                                      [(k, {"median_ms": i7[k]}, {}) for k in sorted(keys)])
    return setting_id


@pytest.fixture()
def mixed_db(ref_db: Path, tmp_path: Path) -> Path:
    """note10 (w1.2, r 160..224), i7 (w1.0 and w1.2, r 96..256), me (w1.0 at 224, calibrated), me160 (w1.0 at 160)."""
    path = tmp_path / "mixed.db"
    shutil.copy(ref_db, path)
    with LutStore(path) as store:
        me = _add_w10(store, "me", 224)
        store.save_calibration(me, Calibration("affine", ("raw_ms",), (2.0,), intercept_ms=1.0, space="ofa-mbv3-w1.0"))
        _add_w10(store, "me160", 160)
    return path


def test_lut_predict_infers_the_luts_space_and_applies_its_calibration(mixed_db: Path) -> None:
    doc = invoke_json("lut", "predict", "--db", mixed_db, "--device", "me", "--arch", json.dumps(ARCH_224))
    assert doc["space"] == "ofa-mbv3-w1.0" and doc["calibrated"] is True
    assert doc["latency_ms"] == pytest.approx(1.0 + 2.0 * doc["raw_ms"])


def test_net_config_resolution_comes_from_run_config(mixed_db: Path) -> None:
    doc = invoke_json("lut", "predict", "--db", mixed_db, "--device", "note10", "--net-config", W12_NET)
    assert doc["space"] == "ofa-mbv3-w1.2" and doc["latency_ms"] == pytest.approx(29.97, abs=0.01)
    doc = invoke_json("lut", "predict", "--db", mixed_db, "--device", "me", "--net-config", W10_NET / "net.config")
    assert doc["space"] == "ofa-mbv3-w1.0"


def test_net_config_of_another_width_says_so(mixed_db: Path) -> None:
    result = invoke("lut", "predict", "--db", mixed_db, "--device", "note10", "--net-config", W10_NET)
    assert result.exit_code == 2 and result.stdout == ""
    text = one_line(result.stderr)
    assert f"net.config {W10_NET} is ofa-mbv3-w1.0 at r=224" in text
    assert "LUT 'note10' covers ofa-mbv3-w1.2 at r=160..224 step 16" in text
    assert "missing keys" not in text


def test_compare_of_two_widths_names_each_lut(mixed_db: Path) -> None:
    result = invoke("compare", "--db", mixed_db, "--device", "me", "--device", "note10", "--subnets", "50")
    assert result.exit_code == 2
    assert one_line(result.stderr) == one_line(
        "error: no search space fits every input: LUT 'me' covers ofa-mbv3-w1.0 at r=224; LUT 'note10' covers "
        "ofa-mbv3-w1.2 at r=160..224 step 16. Inputs of one width would work: ofa-mbv3-w1.0 fits LUT 'me'; "
        "ofa-mbv3-w1.2 fits LUT 'note10'")
    # i7 covers both widths: with note10 the pair is w1.2 (the default among several), with me it is w1.0.
    assert invoke_json("compare", "--db", mixed_db, "--device", "i7", "--device", "note10",
                       "--subnets", "50")["space"] == "ofa-mbv3-w1.2"
    doc = invoke_json("compare", "--db", mixed_db, "--device", "i7", "--device", "me", "--subnets", "50")
    assert doc["space"] == "ofa-mbv3-w1.0" and doc["resolutions"] == [224]
    assert doc["latency_model"].startswith("raw LUT sums")


def test_space_given_that_an_input_does_not_fit(mixed_db: Path) -> None:
    result = invoke("lut", "predict", "--db", mixed_db, "--device", "me", "--space", "ofa-mbv3-w1.2",
                    "--arch", json.dumps(ARCH_224))
    assert result.exit_code == 2
    assert one_line(result.stderr) == one_line(
        "error: --space ofa-mbv3-w1.2 does not fit every input: LUT 'me' covers ofa-mbv3-w1.0 at r=224. Inputs of "
        "one width would work: ofa-mbv3-w1.0 fits every input; ofa-mbv3-w1.2 fits none of them")


def test_same_width_without_a_common_resolution(mixed_db: Path) -> None:
    result = invoke("compare", "--db", mixed_db, "--device", "me", "--device", "me160")
    assert result.exit_code == 2
    assert ("in ofa-mbv3-w1.0, no resolution is covered by every input: LUT 'me' covers ofa-mbv3-w1.0 at r=224; "
            "LUT 'me160' covers ofa-mbv3-w1.0 at r=160") in one_line(result.stderr)


def test_search_with_a_predictor_of_another_width(mixed_db: Path) -> None:
    result = invoke("search", "--db", mixed_db, "--device", "me", "--predictor", OFA_WEIGHTS, "--latency-ms", "20")
    assert result.exit_code == 2
    text = one_line(result.stderr)
    assert "LUT 'me' covers ofa-mbv3-w1.0 at r=224" in text
    assert f"predictor {OFA_WEIGHTS} is for ofa-mbv3-w1.2 at r=128..224 step 4" in text
    assert "ofa-mbv3-w1.2 fits predictor" in text


def test_a_partial_lut_names_its_missing_blocks(mixed_db: Path) -> None:
    with LutStore(mixed_db) as store:
        i7 = store.table("i7")
        blocks = get_space("ofa-mbv3-w1.0").unique_blocks([160])[:33]  # the stem first, as a profile runs them
        store.import_rows(DeviceSetting("half", "onnxruntime"), [(b.key, {"median_ms": i7[b.key]}, {}) for b in blocks])
    arch = {**ARCH_224, "r": 160}
    result = invoke("lut", "predict", "--db", mixed_db, "--device", "half", "--arch", json.dumps(arch))
    assert result.exit_code == 2  # a subnet the LUT does not cover is bad input, not a failed prediction
    assert "LUT 'half' (ofa-mbv3-w1.0) lacks blocks for 1 of 1 subnet(s); missing keys:" in one_line(result.stderr)
    result = invoke("compare", "--db", mixed_db, "--device", "half", "--device", "note10")
    assert result.exit_code == 2
    assert "LUT 'half' covers no space fully (ofa-mbv3-w1.0 partly (r=160: 33 of 96 blocks))" in one_line(result.stderr)


@pytest.fixture(scope="module")
def digits_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``supernet collect`` on an (untrained) supernet of the digits preset: 3 subnets at r=12 and 16."""
    from supernet import DIGITS_PRESET, OFAMobileNetV3, save_checkpoint

    folder = tmp_path_factory.mktemp("digits")
    net = OFAMobileNetV3(width_mult=DIGITS_PRESET.width_mult, n_classes=10)
    save_checkpoint(folder / "supernet.pt", net, {"dataset": "digits", "resolutions": list(DIGITS_PRESET.resolutions)})
    doc = invoke_json("supernet", "collect", "--checkpoint", folder, "--samples", "3", "--calib-images", "16",
                      "--out", folder / "acc.csv")
    assert doc["space"] == "ofa-mbv3-w0.25"
    return folder / "acc.csv"


def test_the_digits_space_is_registered_with_the_presets_sizes() -> None:
    from supernet import DIGITS_PRESET, OFAMobileNetV3, search_space_name

    space = get_space("ofa-mbv3-w0.25")
    assert (space.width_mult, space.resolutions, space.n_classes) == (DIGITS_PRESET.width_mult,
                                                                       DIGITS_PRESET.resolutions, 10)
    net = OFAMobileNetV3(width_mult=0.25, n_classes=10)
    assert net.stage_chs == space.stage_chs and search_space_name(net.config) == space.name
    assert search_space_name(OFAMobileNetV3(width_mult=0.25, n_classes=3).config) is None


def test_collected_data_names_its_space_and_the_predictor_follows(digits_csv: Path, mixed_db: Path) -> None:
    rows = digits_csv.read_text().splitlines()
    assert rows[0].endswith(",space") and all(r.endswith(",ofa-mbv3-w0.25") for r in rows[1:])
    pred = digits_csv.with_name("pred.pt")
    result = invoke("predictor", "train", "--data", digits_csv, "--out", pred)
    assert result.exit_code == 0, result.output
    assert "space: ofa-mbv3-w0.25 (the data's space column)" in one_line(result.stderr)
    doc = invoke_json("predictor", "train", "--data", digits_csv, "--out", pred)
    assert doc["space"] == "ofa-mbv3-w0.25" and doc["resolutions"] == [12, 16]
    result = invoke("predictor", "train", "--data", digits_csv, "--out", pred, "--space", "ofa-mbv3-w1.2")
    assert result.exit_code == 2
    assert ("--space ofa-mbv3-w1.2 does not fit the data: its space column says ofa-mbv3-w0.25 "
            "(width 0.25, r=12, 16)") in one_line(result.stderr)
    # A w0.25 predictor and a w1.2 LUT share no space: the refusal says what each covers.
    result = invoke("search", "--db", mixed_db, "--device", "note10", "--predictor", pred, "--latency-ms", "20")
    assert result.exit_code == 2 and result.stdout == ""
    assert one_line(result.stderr) == one_line(
        f"error: no search space fits every input: LUT 'note10' covers ofa-mbv3-w1.2 at r=160..224 step 16; "
        f"predictor {pred} is for ofa-mbv3-w0.25 at r=12, 16. Inputs of one width would work: ofa-mbv3-w0.25 "
        f"fits predictor {pred}; ofa-mbv3-w1.2 fits LUT 'note10'")


def test_older_collected_data_without_the_space_column(digits_csv: Path, tmp_path: Path) -> None:
    import pandas as pd

    frame = pd.read_csv(digits_csv)
    old = tmp_path / "old.csv"  # as collect wrote it before the space column: the MACs still tell the space
    frame.drop(columns=["space"]).to_csv(old, index=False)
    doc = invoke_json("predictor", "train", "--data", old, "--out", tmp_path / "p.pt")
    assert doc["space"] == "ofa-mbv3-w0.25"
    bare = tmp_path / "bare.csv"  # nothing tells the space: the default, as before
    frame[["arch", "accuracy"]].to_csv(bare, index=False)
    result = invoke("predictor", "train", "--data", bare, "--out", tmp_path / "p.pt")
    assert result.exit_code == 0, result.output
    text = one_line(result.stderr)
    assert "space: ofa-mbv3-w1.2 (default; pass --space to change)" in text
    assert "warning: the data's resolutions 12, 16 are not among ofa-mbv3-w1.2's (128..224 step 4)" in text
