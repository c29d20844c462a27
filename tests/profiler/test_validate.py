"""End-to-end validation against a local onnxruntime agent, calibration fit/refit from stored runs, ``lutnas validate``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from agent.testing import start_agent_process
from lut import CompiledLut, LutStore
from lut.calibration import Calibration
from lut.schema import DeviceSetting
from lutnas.cli import app
from profiler.validate import (
    ValidationError,
    ValidationSettings,
    _check_clock,
    draw_stratified,
    report_from_store,
    validate,
)
from space import get_space

TOKEN = "validate-test-token"
SPACE = "ofa-mbv3-w1.0"
RES = 128
QUICK_PLAN = {"warmup_count": 2, "warmup_s": 0.0, "min_reps": 5, "min_s": 0.0, "max_reps": 8, "max_s": 0.3,
              "target_rel_ci": 0.2}
METRIC_KEYS = {"rmse_ms", "rmspe", "mape", "within_5pct", "within_10pct"}


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


def _block_ms(block) -> float:
    # A plausible synthetic LUT (so sums vary across subnets); the real agent measures the networks.
    return 0.02 + block.mid_chs * block.out_hw * block.out_hw * (block.kernel or 1) / 4e6 + block.out_chs / 4e4


def _fill_lut(store: LutStore, name: str, clock: str | None) -> int:
    setting = DeviceSetting(name=name, runtime="onnxruntime", runtime_version=_ort_version(), threads=1,
                            model_format="onnx")
    sid = store.ensure_setting(setting)
    extra = {} if clock is None else {"options": {"clock": clock}}
    rows = [(b.key, {"median_ms": _block_ms(b), "mean_ms": _block_ms(b), "std_ms": 0.0, "p10_ms": _block_ms(b),
                     "p90_ms": _block_ms(b), "n": 5}, {"extra": extra})
            for b in get_space(SPACE).unique_blocks(RES)]
    store.put_rows(sid, rows)
    return sid


@pytest.fixture(scope="module")
def agent():
    proc = start_agent_process(token=TOKEN)
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture()
def db(tmp_path: Path) -> Path:
    path = tmp_path / "lut.db"
    with LutStore(path) as store:
        _fill_lut(store, "local", "thread_cpu")
    return path


@pytest.mark.timeout(120)
def test_validate_against_local_agent_stores_run_and_calibration(agent, db: Path) -> None:
    settings = ValidationSettings(samples=5, rounds=2, plan=QUICK_PLAN, seed=3, space=SPACE, resolutions=(RES,),
                                 calibrate=True, export_workers=0)
    with LutStore(db) as store:
        report = validate(store, "local", agent.address, settings, token=TOKEN)
        frame = report.samples
        assert len(frame) == 5 and len({json.dumps(a, sort_keys=True) for a in frame["arch"]}) == 5
        assert np.all(np.isfinite(frame["measured_ms"])) and np.all(frame["measured_ms"] > 0)
        # a network's latency is the minimum of its round medians; even and odd rounds are the repeat pair
        assert all(len(m) == 2 for m in frame["round_medians_ms"])
        np.testing.assert_allclose(frame["measured_ms"], [min(m) for m in frame["round_medians_ms"]])
        np.testing.assert_allclose(frame["first_ms"], [m[0] for m in frame["round_medians_ms"]])
        np.testing.assert_allclose(frame["repeat_ms"], [m[1] for m in frame["round_medians_ms"]])
        assert METRIC_KEYS <= set(report.raw) and METRIC_KEYS <= set(report.calibrated)
        assert set(report.noise) == {"repeat_median", "repeat_p90"}
        assert report.noise["repeat_median"] >= 0
        assert report.notes == []  # same clock as the rows, same runtime version
        runs = store.validation_runs(store.setting("local"))
        assert list(runs["id"]) == [report.run_id]
        meta = runs.iloc[0]["meta"]
        assert meta["clock"] == "thread_cpu" and meta["rounds"] == 2 and meta["round_stat"] == "min"
        cal = Calibration.from_store(store, "local", SPACE)
        assert cal is not None and cal.n_samples == 5 and cal == report.calibration
        # the stored run re-renders to the same measurements without an agent
        again = report_from_store(store, "local")
        np.testing.assert_allclose(again.samples["measured_ms"], frame["measured_ms"])
        np.testing.assert_allclose(again.samples["predicted_ms"], frame["predicted_ms"])
        assert again.noise == pytest.approx(report.noise)


def test_bad_round_stat_is_refused(db: Path) -> None:
    with LutStore(db) as store, pytest.raises(ValidationError, match="round_stat"):
        validate(store, "local", "127.0.0.1:1", ValidationSettings(round_stat="mean"), token=TOKEN)


def test_clock_mismatch_is_noted(tmp_path: Path) -> None:
    with LutStore(tmp_path / "lut.db") as store:
        _fill_lut(store, "old", None)  # rows from an agent that did not report a clock
        _fill_lut(store, "walled", "wall")
        _fill_lut(store, "new", "thread_cpu")
        (note,) = _check_clock(store, store.setting("old"), {"thread_cpu"})
        assert "record no timing clock" in note and "thread_cpu" in note
        (note,) = _check_clock(store, store.setting("walled"), {"thread_cpu"})
        assert "clock wall" in note and "not comparable" in note
        assert _check_clock(store, store.setting("new"), {"thread_cpu"}) == []
        assert _check_clock(store, store.setting("new"), set()) == []


def _stored_run(store: LutStore, name: str, n: int, seed: int, scale: float = 1.15, offset_ms: float = 0.4) -> None:
    """A validation run whose 'measurements' follow offset + scale * LUT sum with 1% noise."""
    compiled = CompiledLut.from_store(store, name, SPACE)
    rng = np.random.default_rng(seed)
    batch = draw_stratified(compiled, n, rng, [RES], pool=2000)
    predicted = compiled.predict_batch(batch, calibrated=False)
    measured = (offset_ms + scale * predicted) * (1 + 0.01 * rng.standard_normal(n))
    repeat = measured * (1 + 0.02 * rng.random(n))
    samples = [{"arch": s.to_arch(), "predicted_ms": p, "measured_ms": m, "repeat_ms": r, "first_ms": m}
               for s, p, m, r in zip(batch.to_subnets(), predicted, measured, repeat)]
    store.save_validation_run(store.setting(name).id, samples, {"space": SPACE, "rounds": 2})


def test_calibration_fit_and_refit_from_stored_runs(db: Path) -> None:
    with LutStore(db) as store:
        with pytest.raises(ValidationError, match="no stored validation run"):
            report_from_store(store, "local")
        _stored_run(store, "local", 40, seed=1)
        first = report_from_store(store, "local", calibrate=True)
        assert first.raw["within_10pct"] < 50  # 15% slower than the sums: the raw LUT misses
        assert first.calibrated["within_5pct"] >= 95 and first.calibrated["within_10pct"] == 100
        assert first.calibration.kind != "identity" and first.calibration.n_samples == 40
        assert Calibration.from_store(store, "local", SPACE) == first.calibration
        # refit: a second stored run joins the training set; the newest calibration is the one used
        _stored_run(store, "local", 30, seed=2)
        second = report_from_store(store, "local", calibrate=True)
        assert second.calibration.n_samples == 70 and len(second.samples) == 70
        assert Calibration.from_store(store, "local", SPACE) == second.calibration
        assert Calibration.from_json(second.calibration.to_json()) == second.calibration
        # the calibrated LUT prediction now follows the measurements
        compiled = CompiledLut.from_store(store, "local", SPACE)
        assert compiled.calibration == second.calibration
        frame = second.samples
        batch_pred = np.asarray(frame["calibrated_ms"])
        assert np.median(np.abs(batch_pred / frame["measured_ms"] - 1)) < 0.02
        # without --calibrate the stored calibration is reported, not refitted
        third = report_from_store(store, "local")
        assert third.calibration == second.calibration


def _cli_json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.timeout(120)
def test_cli_validate_json(agent, db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    monkeypatch.setenv("LUTNAS_TOKEN", TOKEN)
    doc = _cli_json(runner.invoke(app, ["validate", "--agent", f"local={agent.address}", "--db", str(db),
                                        "--samples", "3", "--rounds", "2", "--calibrate", "--seed", "5", "--json"]))
    assert {"raw", "calibrated", "noise", "samples"} <= set(doc)
    assert doc["samples"] == 3
    assert METRIC_KEYS <= set(doc["raw"]) and METRIC_KEYS <= set(doc["calibrated"])
    assert set(doc["noise"]) == {"repeat_median", "repeat_p90"}
    assert doc["calibration"]["kind"] in {"identity", "scale", "affine", "affine_blocks", "per_stage"}
    # re-rendering the stored run needs no agent
    again = _cli_json(runner.invoke(app, ["validate", "--device", "local", "--db", str(db), "--json"]))
    assert again["samples"] == 3 and again["raw"] == pytest.approx(doc["raw"])
    assert set(again["noise"]) == {"repeat_median", "repeat_p90"}
    # bad input: exit 2 with one line
    bad = runner.invoke(app, ["validate", "--device", "local", "--db", str(db), "--samples", "2", "--json"])
    assert bad.exit_code == 2
    missing = runner.invoke(app, ["validate", "--device", "nosuch", "--db", str(db), "--json"])
    assert missing.exit_code == 2


@pytest.mark.timeout(120)
def test_pool_exports_keep_the_quantizers_progress_bars_off_stderr(tmp_path: Path, capfd) -> None:
    """A TFLite int8 network's calibration draws a tqdm bar; a pool worker drops it (it would tear through
    validate's progress display), while an export in this process leaves stderr alone."""
    from profiler.validate import _export_all, _export_net

    arch = get_space(SPACE).sample(1, np.random.default_rng(0), resolutions=[RES]).to_subnets()[0].to_arch()
    _export_net(SPACE, arch, "tflite", 0, str(tmp_path), precision="int8")
    assert "Calibration" in capfd.readouterr().err  # the bar this test is about is really drawn
    progress: list[int] = []
    ((_, path),) = _export_all(SPACE, [arch], "tflite", "int8", ValidationSettings(export_workers=1), str(tmp_path),
                                lambda _stage, done, _total: progress.append(done))
    assert "Calibration" not in capfd.readouterr().err
    assert progress == [1] and Path(path).read_bytes()[4:8] == b"TFL3"  # the pool's export arrived whole
