"""Profiling at int8 with a real onnxruntime agent: what is exported and timed, and how a block that cannot be
exported fails (a small slice: the rest of the setting's rows are already stored, so a profile resumes past them)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import onnxruntime
import pytest
from typer.testing import CliRunner

from agent.device import int8_dot_product
from agent.testing import start_agent_process
from lut import DeviceSetting, LutStore
from lutnas.cli import app
from profiler.export import export_block
from profiler.fleet import AgentRef, ProfileSettings, plan_blocks, profile

TOKEN = "precision-test-token"
SPACE = "ofa-mbv3-w1.0"
RES = 128
QUICK_PLAN = {"warmup_count": 2, "warmup_s": 0.0, "min_reps": 5, "min_s": 0.0, "max_reps": 10, "max_s": 0.3,
              "target_rel_ci": 0.05}


def _slice(store: LutStore, precision: str) -> list:
    """Store placeholder rows for every block but the first conv and two MBConvs; return those three."""
    blocks = plan_blocks(SPACE, [RES])
    todo = [blocks[0], *[b for b in blocks if b.kind == "mbconv"][-2:]]
    setting = DeviceSetting("local", "onnxruntime", onnxruntime.__version__, 1, precision, "onnx")
    store.import_rows(setting, [(b.key, {"median_ms": 1.0}, None) for b in blocks if b not in todo])
    return todo


@pytest.mark.timeout(180)
def test_int8_profile_times_integer_io_blocks_and_reports_export_failures(tmp_path: Path) -> None:
    agent = start_agent_process(token=TOKEN)
    empty = tmp_path / "no-images"
    empty.mkdir()
    try:
        with LutStore(tmp_path / "lut.db") as store:
            todo = _slice(store, "int8")
            settings = ProfileSettings(space=SPACE, resolutions=(RES,), runtime="onnxruntime", threads=1,
                                       precision="int8", calib_dir=str(empty), plan=QUICK_PLAN, sentinel_every=0,
                                       cache_dir=str(tmp_path / "artifacts"))
            (dev,) = profile(store, [AgentRef("local", agent.address)], settings, token=TOKEN).devices
            # the first conv reads the image, so it needs calibration images; the MBConvs use seeded inputs
            assert dev.timed == 2 and [f.block_key for f in dev.failed] == [todo[0].key]
            assert "no images" in dev.failed[0].reason and "onnx int8" in dev.failed[0].reason
            assert dev.failed[0].attempts == 1  # an export is deterministic: not retried
            stored = store.setting("local:int8")
            assert stored.setting.precision == "int8"
            # which int8 instructions the CPU has is part of the LUT's provenance
            assert stored.info["int8_dot_product"] == int8_dot_product(Path("/proc/cpuinfo").read_text())
            rows = store.rows(stored).set_index("block_key")
            assert todo[0].key not in rows.index  # nothing half-written for the failed block
            assert list(store.failures(stored)["block_key"]) == [todo[0].key]
            for block in todo[1:]:
                extra = json.loads(rows.loc[block.key, "extra"])
                expected = hashlib.sha256(export_block(block, "onnx", precision="int8")).hexdigest()
                assert extra["model_sha256"] == expected  # the int8 model, not the fp32 one
                assert rows.loc[block.key, "median_ms"] > 0
    finally:
        agent.stop()


def test_cli_refuses_bad_precision_and_empty_calibration_folder(tmp_path: Path) -> None:
    runner = CliRunner()
    base = ["profile", "--agent", "x=127.0.0.1:1", "--db", str(tmp_path / "lut.db"), "--resolutions", "128"]
    bad = runner.invoke(app, [*base, "--precision", "int4"])
    assert bad.exit_code == 2 and "precision for onnxruntime (onnx) must be one of fp32, fp16, int8, got 'int4'" in bad.output
    (tmp_path / "empty").mkdir()
    empty = runner.invoke(app, [*base, "--precision", "int8", "--calib-dir", str(tmp_path / "empty")])
    assert empty.exit_code == 2 and "holds no images" in empty.output
    assert not (tmp_path / "lut.db").exists()
    validate = runner.invoke(app, ["validate", "--agent", "x=127.0.0.1:1", "--db", str(tmp_path / "lut.db"),
                                   "--precision", "int8", "--calib-dir", str(tmp_path / "empty")])
    assert validate.exit_code == 2 and "holds no images" in validate.output


@pytest.mark.timeout(180)
def test_int8_validation_times_int8_networks(tmp_path: Path) -> None:
    from profiler.client import AgentClient
    from profiler.export import export_subnet
    from profiler.validate import ValidationError, ValidationSettings, validate
    from space import get_space

    agent = start_agent_process(token=TOKEN)
    try:
        with LutStore(tmp_path / "lut.db") as store:
            for precision in ("fp32", "int8"):  # two settings of one device: validation must pick by precision
                setting = DeviceSetting("local", "onnxruntime", onnxruntime.__version__, 1, precision, "onnx")
                store.import_rows(setting, [(b.key, {"median_ms": 0.1 + b.out_chs / 1000}, None)
                                            for b in plan_blocks(SPACE, [RES])])
            settings = ValidationSettings(samples=3, rounds=2, plan=QUICK_PLAN, space=SPACE, resolutions=(RES,),
                                          export_workers=0)
            report = validate(store, "local:int8", agent.address, settings, token=TOKEN)
            assert report.device == "local" and len(report.samples) == 3
            runs = store.validation_runs(store.setting("local:int8"))
            assert len(runs) == 1 and store.validation_runs(store.setting("local:fp32")).empty
            arch = report.samples["arch"].iloc[0]
            sha = hashlib.sha256(export_subnet(get_space(SPACE), arch, "onnx", precision="int8")).hexdigest()
            with AgentClient(agent.address, token=TOKEN) as client:
                assert client.has_models([sha]) == {sha}  # the agent timed the int8 network
            empty = tmp_path / "no-images"
            empty.mkdir()
            with pytest.raises(ValidationError, match="exporting network 0 as onnx int8 failed: ValueError: no images"):
                validate(store, "local:int8", agent.address, replace(settings, calib_dir=str(empty)), token=TOKEN)
            assert len(store.validation_runs(store.setting("local:int8"))) == 1  # the failed run stored nothing
    finally:
        agent.stop()


@pytest.mark.timeout(120)
def test_fp16_on_x86_onnxruntime_cpu_fails_every_block_with_the_reason(tmp_path: Path) -> None:
    import platform

    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("onnxruntime's CPU provider has fp16 kernels on this machine")
    agent = start_agent_process(token=TOKEN)
    try:
        runner = CliRunner()
        db = tmp_path / "lut.db"
        result = runner.invoke(app, ["profile", "--agent", f"local={agent.address}", "--space", SPACE,
                                     "--resolutions", str(RES), "--precision", "fp16", "--db", str(db),
                                     "--cache-dir", str(tmp_path / "artifacts"), "--json"],
                               env={"LUTNAS_TOKEN": TOKEN})
        assert result.exit_code == 1
        (dev,) = json.loads(result.stdout)["devices"]
        assert dev["failed"] == dev["total"] == len(plan_blocks(SPACE, [RES])) and dev["timed"] == 0
        assert {f["reason"] for f in dev["failures"]} == {
            f"onnxruntime's CPU provider on {platform.machine()} has no fp16 kernels (it would run the fp16 graph in "
            "fp32 behind casts); use a GPU provider (--option providers=CUDAExecutionProvider) or fp32/int8"}
        with LutStore(db) as store:
            assert store.settings() == []  # nothing half-written
        human = runner.invoke(app, ["profile", "--agent", f"local={agent.address}", "--space", SPACE,
                                    "--resolutions", str(RES), "--precision", "fp16", "--db", str(db)],
                              env={"LUTNAS_TOKEN": TOKEN})
        assert human.exit_code == 1 and f"local: {dev['total']} block(s) failed: onnxruntime's CPU provider" in human.stderr
    finally:
        agent.stop()
