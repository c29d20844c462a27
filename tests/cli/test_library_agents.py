"""The agent commands as a library (``from lutnas import profile, validate, time_model, devices``): each call's
report is its command's ``--json``, on real agents; and the frictions of a first hour with these commands."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from agent.testing import free_port, onnx_matmul_relu, start_agent_process
from lut import DeviceSetting, LutStore
from lut.calibration import Calibration
from lutnas import ProfileSettings, ValidationSettings, devices, profile, time_model, validate
from profiler.client import DEFAULT_RETRY_S
from profiler.fleet import plan_blocks
from profiler.validate_run import lut_warnings

from .conftest import invoke, invoke_json, one_line

SPACE, RES = "ofa-mbv3-w0.25", 12
FAST_PLAN = {"warmup_count": 1, "warmup_s": 0.0, "min_reps": 3, "min_s": 0.0, "max_reps": 5, "max_s": 0.05}
# What differs between two runs of the same work: how long it took, what was uploaded (the agent caches blobs).
VOLATILE = {"wall_s", "export_s", "exported", "busy_fraction", "idle_s", "agent_busy", "uploaded_bytes", "saved_bytes",
            "round_spread_pct"}
_LUTNAS = [sys.executable, "-c", "from lutnas.cli import main; main()"]


@pytest.fixture(scope="module")
def agent():
    with start_agent_process(token=None, extra_args=["--name", "box", "--runtimes", "onnxruntime"]) as running:
        yield running


def _steady(doc: dict[str, Any]) -> dict[str, Any]:
    """A profile document without what differs between two runs of the same work."""
    devs = [{k: v for k, v in d.items() if k not in VOLATILE} for d in doc["devices"]]
    return {**{k: v for k, v in doc.items() if k not in VOLATILE}, "devices": devs}


def _onnx_setting(agent: Any, name: str = "cpu") -> DeviceSetting:
    """The setting a default profile of ``agent`` files its rows under."""
    (facts,) = devices([agent.address]).devices
    version = next(r["version"] for r in facts["runtimes"] if r["name"] == "onnxruntime")
    return DeviceSetting(name, "onnxruntime", version, threads=1, precision="fp32", model_format="onnx")


def _store(path: Path, setting: DeviceSetting, keys: list[str], ms: float) -> Path:
    with LutStore(path) as store:
        store.import_rows(setting, [(k, {"median_ms": ms}, {}) for k in keys])
    return path


def test_devices_is_the_cli_json_and_names_the_device_by_name(agent: Any) -> None:
    report = devices([f"cpu={agent.address}"])
    doc = invoke_json("devices", "--agent", f"cpu={agent.address}")
    assert set(doc) == set(report.to_dict()) == {"devices", "errors"} and doc["errors"] == report.errors == []
    (mine,), (theirs,) = report.devices, doc["devices"]
    assert {k: v for k, v in mine.items() if k != "state"} == {k: v for k, v in theirs.items() if k != "state"}
    assert theirs["device"] == "cpu" and theirs["name"] == "box" and theirs["address"] == agent.address
    table = one_line(invoke("devices", "--agent", f"cpu={agent.address}").stderr)
    assert re.search(r"device\s*│\s*cpu\b", table) and re.search(r"agent's name\s*│\s*box\b", table), table


def test_time_model_is_the_cli_json(agent: Any, tmp_path: Path) -> None:
    model = tmp_path / "m.onnx"
    model.write_bytes(onnx_matmul_relu(8, 8, 8))
    report = time_model(f"pc={agent.address}", model, threads=1)
    doc = invoke_json("time", model, "--agent", f"pc={agent.address}", "--threads", "1")
    mine = report.to_dict()
    assert set(mine) == set(doc)
    for key in ("device", "address", "model", "model_sha256", "runtime", "runtime_version", "threads", "options",
                "clock", "agent_version"):
        assert mine[key] == doc[key], key
    assert mine["device"] == "pc" and report.median_ms > 0 and report.notes and "calls itself 'box'" in report.notes[0]


def test_profile_is_the_cli_json(agent: Any, tmp_path: Path) -> None:
    keys = [b.key for b in plan_blocks(SPACE, [RES])]
    # The store already holds all but four blocks: the profile times only those (resume), API and CLI alike.
    first = _store(tmp_path / "api.db", _onnx_setting(agent), keys[4:], 0.05)
    second = shutil.copy(first, tmp_path / "cli.db")
    seen: list[tuple[str, int, int | None]] = []
    settings = ProfileSettings(space=SPACE, resolutions=(RES,), sentinel_every=0, cache_dir=str(tmp_path / "cache"))
    run = profile(first, [f"cpu={agent.address}"], settings, progress=lambda *a: seen.append(a))
    doc = invoke_json("profile", "--agent", f"cpu={agent.address}", "--space", SPACE, "--resolutions", RES,
                      "--sentinel-every", 0, "--cache-dir", tmp_path / "cache", "--db", second)
    assert _steady(run.to_dict()) == _steady(doc)
    assert set(run.to_dict()["devices"][0]) == set(doc["devices"][0])
    (dev,) = doc["devices"]
    assert (dev["device"], dev["timed"], dev["skipped"], dev["measured"], dev["remaining"]) == ("cpu", 4, 92, 96, 0)
    assert seen[-1] == ("profile cpu", 96, 96) and {task for task, _, _ in seen} == {"profile cpu"}
    assert any("calls itself 'box'" in line for line in run.notes)


def test_validate_is_the_cli_json_and_warns_of_a_lut_far_off_the_device(agent: Any, tmp_path: Path) -> None:
    # One millisecond per block: hundreds of times what these blocks take here, so the sums are far off.
    db = _store(tmp_path / "lut.db", _onnx_setting(agent), [b.key for b in plan_blocks(SPACE, [RES])], 1.0)
    wanted = ValidationSettings(samples=3, rounds=2, plan=FAST_PLAN, space=SPACE, calibrate=True, export_workers=0)
    run = validate(db, agent=f"cpu={agent.address}", settings=wanted)
    assert run.report.raw["mape"] > 100 and "far off" in run.warnings[0]
    assert run.to_dict()["warnings"] == run.warnings
    # Stored runs re-read without an agent: the same document from the library and the command.
    again = validate(db, device="cpu", settings=ValidationSettings(space=SPACE))
    result = invoke("validate", "--db", db, "--device", "cpu", "--space", SPACE, "--json")
    assert result.exit_code == 0, result.output
    assert again.to_dict() == json.loads(result.stdout)
    assert "warning: the LUT's sums are far off this device's whole networks" in one_line(result.stderr)


def test_a_calibration_that_ignores_the_lut_is_said() -> None:
    fair = {"mape": 4.0, "bias": 1.0, "within_10pct": 100.0}
    blind = Calibration(kind="affine_blocks", features=("raw_ms", "n_blocks"), coef=(0.0, 0.02), intercept_ms=0.1,
                        n_samples=12)
    (line,) = lut_warnings(fair, blind)
    assert "ignores the LUT" in line and "0*raw_ms" in line
    useful = Calibration(kind="affine_blocks", features=("raw_ms", "n_blocks"), coef=(0.9, 0.0), intercept_ms=0.1)
    assert lut_warnings(fair, useful) == [] and lut_warnings(fair, None) == []


def test_an_agent_that_is_not_running_is_said_at_once() -> None:
    started = time.monotonic()
    result = invoke("devices", f"127.0.0.1:{free_port()}")
    elapsed = time.monotonic() - started
    text = one_line(result.stderr)
    assert result.exit_code == 1 and "is it running?" in text, text
    attempts = int(re.search(r"after (\d+) attempts?", text).group(1))
    assert attempts <= 5 and elapsed < DEFAULT_RETRY_S, (attempts, elapsed)  # it was 13 attempts over 10 s


def test_a_given_connect_timeout_waits_for_an_agent_that_is_starting() -> None:
    port = free_port()
    answers: list[Any] = []
    asking = threading.Thread(target=lambda: answers.append(devices([f"127.0.0.1:{port}"], connect_timeout_s=60)))
    asking.start()
    with start_agent_process(port=port, token=None, extra_args=["--runtimes", "onnxruntime"]):
        asking.join(timeout=90)
    assert answers and answers[0].devices[0]["address"] == f"127.0.0.1:{port}"


def test_a_busy_port_is_one_line(agent: Any, tmp_path: Path) -> None:
    port = agent.address.rpartition(":")[2]
    proc = subprocess.run([*_LUTNAS, "agent", "serve", "--port", port, "--insecure-no-auth", "--runtimes", "onnxruntime",
                           "--cache-dir", str(tmp_path / "cache")], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "XDG_CONFIG_HOME": str(tmp_path)})
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1 and f"port {port} on 127.0.0.1 is in use" in lines[0], proc.stderr


def test_agent_token_makes_a_private_token_file(tmp_path: Path) -> None:
    out = tmp_path / "token.txt"
    made = invoke("agent", "token", "--out", out)
    assert made.exit_code == 0 and f"--token-file {out}" in one_line(made.stderr)
    token = out.read_text().strip()
    assert len(token) >= 40 and out.stat().st_mode & 0o777 == 0o600
    again = invoke("agent", "token", "--out", out)
    assert again.exit_code == 2 and "exists" in again.stderr and out.read_text().strip() == token
    assert invoke("agent", "token", "--out", out, "--force").exit_code == 0 and out.read_text().strip() != token
    assert "lutnas agent token --out token.txt" in one_line(invoke("agent", "serve", "--help").stdout)


def test_agent_cert_json_is_the_pairs_to_dict(tmp_path: Path) -> None:
    from agent.certs import CertPair, fingerprint

    doc = invoke_json("agent", "cert", "--out-dir", tmp_path / "cli", "--name", "board.local", "--days", "30")
    cert, key = tmp_path / "cli" / "agent.crt", tmp_path / "cli" / "agent.key"
    pair = CertPair(cert, key, fingerprint(cert.read_bytes()), ("board.local",), doc["not_after"])
    assert doc == pair.to_dict()
    assert doc["cert"] == str(cert) and doc["names"] == ["board.local"] and key.is_file()


def test_bad_input_exits_2(agent: Any, tmp_path: Path) -> None:
    model = tmp_path / "m.onnx"
    model.write_bytes(onnx_matmul_relu(4, 4, 4))
    db = _store(tmp_path / "lut.db", _onnx_setting(agent), [b.key for b in plan_blocks(SPACE, [RES])], 1.0)
    cases = [
        (["time", model, "--agent", agent.address, "--shape", "1xhalf"], "--shape must be"),
        (["time", tmp_path / "absent.onnx", "--agent", agent.address], "model file must be readable"),
        (["time", model, "--agent", "nowhere"], "--agent must be NAME=HOST:PORT"),
        (["profile", "--agent", agent.address, "--db", tmp_path / "p.db", "--few-shot", "3"], "go together"),
        (["profile", "--agent", agent.address, "--db", tmp_path / "p.db", "--connect-timeout-s", "nan"],
         "--connect-timeout-s must be a finite number > 0"),
        (["validate", "--db", db], "give --agent NAME=HOST:PORT"),
        (["validate", "--db", db, "--device", "cpu", "--samples", "2"], "--samples must be >= 3"),
        (["validate", "--agent", f"cpu={agent.address}", "--db", db, "--resolutions", "16", "--space", SPACE],
         "is covered by the LUT"),
        (["devices", "--agent", "cpu=nowhere"], "--agent must be NAME=HOST:PORT"),
    ]
    for args, message in cases:
        result = invoke(*args)
        assert result.exit_code == 2 and message in one_line(result.stderr), (args, result.output)
    assert not (tmp_path / "p.db").exists()


def test_import_lutnas_and_devices_help_load_no_torch() -> None:
    check = ("import sys, lutnas\n"
             "from lutnas import devices, time_model\n"
             "from lutnas.cli import app\n"
             "try:\n    app(['devices', '--help'])\nexcept SystemExit:\n    pass\n"
             "print(sorted(m for m in ('torch', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip().splitlines()[-1] == "[]", out.stdout + out.stderr
