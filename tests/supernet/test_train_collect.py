"""A tiny progressive-shrinking run on digits, resume, and accuracy collection to CSV."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from supernet import (
    CSV_COLUMNS,
    OFAMobileNetV3,
    TrainConfig,
    collect_accuracy_data,
    evaluate_subnet,
    load_digits_dataset,
    load_supernet,
    progressive_shrinking_phases,
    read_accuracy_csv,
    sample_stratified_archs,
    split_dataset,
    train_supernet,
    write_accuracy_csv,
)

# A shallow, narrow space (two kernels, two expand ratios, depths 1-2) keeps a full schedule to seconds.
TINY = {
    "width_mult": 0.25,
    "ks_list": [3, 5],
    "expand_ratio_list": [3, 4],
    "depth_list": [1, 2],
    "n_classes": 10,
    "dropout_rate": 0.0,
}
RES = 8  # the digits' native side


@pytest.fixture(scope="module")
def digits():
    return split_dataset(load_digits_dataset(), 0.2, seed=0)


def _tiny_phases(full_epochs: int = 3):
    return progressive_shrinking_phases(
        TINY["ks_list"],
        TINY["expand_ratio_list"],
        TINY["depth_list"],
        epochs={"full": full_epochs, "kernel-1": 1, "depth-1": 1, "expand-1": 1},
        lr=0.05,
        full_lr=0.2,
        subnets_per_step=1,
    )


def _arch(net: OFAMobileNetV3, ks: int, e: int, d: int) -> dict:
    n_slots = net.choices.n_slots
    return {"ks": [ks] * n_slots, "e": [e] * n_slots, "d": [d] * net.choices.n_stages, "r": RES}


def test_schedule_follows_ofa_order() -> None:
    names = [p.name for p in progressive_shrinking_phases()]
    assert names == ["full", "kernel-1", "kernel-2", "depth-1", "depth-2", "expand-1", "expand-2"]
    phases = {p.name: p for p in progressive_shrinking_phases()}
    assert phases["kernel-1"].ks == (7, 5) and phases["kernel-2"].ks == (7, 5, 3)
    assert phases["depth-1"].d == (4, 3) and phases["expand-2"].e == (6, 4, 3)
    assert phases["expand-1"].reorganize_expand_stage == 0 and phases["expand-2"].reorganize_expand_stage == 1
    with pytest.raises(ValueError, match="unknown phases"):
        progressive_shrinking_phases(epochs={"widths": 1})


def test_tiny_progressive_shrinking_beats_chance(digits, tmp_path) -> None:
    train, held = digits
    train = train.subset(np.arange(800))
    net = OFAMobileNetV3(**TINY)
    events = []
    config = TrainConfig(phases=tuple(_tiny_phases()), resolutions=(RES,), batch_size=32, calib_images=128)
    result = train_supernet(net, train, config, out_dir=tmp_path, progress=events.append)
    assert [p["name"] for p in result.phases] == ["full", "kernel-1", "depth-1", "expand-1"]
    assert {e.kind for e in events} == {"phase_start", "step", "phase_end"}
    assert (tmp_path / "supernet.pt").is_file() and (tmp_path / "phase0-full.pt").is_file()
    loaded, meta = load_supernet(tmp_path / "supernet.pt")
    assert meta["resolutions"] == [RES]
    largest = evaluate_subnet(loaded, _arch(loaded, 5, 4, 2), train, held, calib_images=128)
    smallest = evaluate_subnet(loaded, _arch(loaded, 3, 3, 1), train, held, calib_images=128)
    assert largest.accuracy > 40.0  # chance is 10%
    assert smallest.accuracy > 25.0
    assert largest.macs > smallest.macs


class _Stop(Exception):
    pass


def test_resume_continues_after_interruption(digits, tmp_path) -> None:
    train = digits[0].subset(np.arange(256))
    phases = tuple(_tiny_phases(full_epochs=1))
    config = TrainConfig(phases=phases, resolutions=(RES,), batch_size=64)

    def stop_after_second_phase(event) -> None:
        if event.kind == "phase_end" and event.phase_index == 1:
            raise _Stop

    with pytest.raises(_Stop):
        train_supernet(OFAMobileNetV3(**TINY), train, config, out_dir=tmp_path, progress=stop_after_second_phase)
    seen = []
    result = train_supernet(OFAMobileNetV3(**TINY), train, config, out_dir=tmp_path, resume=True, progress=seen.append)
    assert [p["name"] for p in result.phases] == ["full", "kernel-1", "depth-1", "expand-1"]
    assert seen[0].phase_index == 1 and seen[0].kind == "phase_start"  # kernel-1 ended but was not recorded
    other = TrainConfig(phases=phases[:2], resolutions=(RES,), batch_size=64)
    with pytest.raises(ValueError, match="other phases"):
        train_supernet(OFAMobileNetV3(**TINY), train, other, out_dir=tmp_path, resume=True)


def test_stratified_sampling_spans_macs() -> None:
    net = OFAMobileNetV3(width_mult=0.25, n_classes=10)
    archs = sample_stratified_archs(net, 10, [16, 24], rng=0)
    assert len(archs) == 10
    assert len({json.dumps(a, sort_keys=True) for a in archs}) == 10
    assert all(a["r"] in (16, 24) and len(a["ks"]) == 20 and len(a["d"]) == 5 for a in archs)
    assert archs == sample_stratified_archs(net, 10, [16, 24], rng=0)


def test_collect_writes_predictor_csv(digits, tmp_path) -> None:
    train, held = digits
    net = OFAMobileNetV3(width_mult=0.25, n_classes=10).eval()
    results = collect_accuracy_data(net, train, held.subset(np.arange(100)), 3, [16], seed=0, calib_images=64)
    path = write_accuracy_csv(results, tmp_path / "acc.csv")
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == CSV_COLUMNS and len(rows) == 3
    arch = json.loads(rows[0]["arch"])
    assert set(arch) == {"ks", "e", "d", "r"} and len(arch["ks"]) == 20
    assert 0.0 <= float(rows[0]["accuracy"]) <= 100.0
    assert read_accuracy_csv(path) == [
        type(r)(arch=r.arch, accuracy=round(r.accuracy, 4), macs=r.macs, params=r.params) for r in results
    ]
    search_data = pytest.importorskip("search.data")
    loaded = search_data.load_accuracy_data(path)
    assert len(loaded.r) == 3
    # The predictor trains on it as collected, at the supernet's small resolutions.
    from typer.testing import CliRunner

    from lutnas.cli import app

    out = tmp_path / "pred.pt"
    result = CliRunner().invoke(app, ["predictor", "train", "--data", str(path), "--out", str(out),
                                      "--space", "ofa-mbv3-w1.0", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert out.exists() and doc["n"] == 3 and doc["resolutions"] == [16]
