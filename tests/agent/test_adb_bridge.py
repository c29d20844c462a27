"""The adb bridge end to end: a real agent on this host, a stand-in ``adb`` and ``benchmark_model``.

Stand-ins (tests/agent/adb_standin): ``adb`` maps the phone's /proc, /sys and /data onto a recorded
Pixel 7 tree and runs shell scripts with this machine's ``sh`` (``taskset`` is logged, not applied);
``benchmark_model`` times the pushed model with LiteRT and prints the real tool's output lines.
Real: the agent, its worker, the gRPC calls, the pushes, the parsing and the device facts code.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agent.testing import start_agent_process, tflite_add
from profiler.client import AgentClient, AgentJobError

STANDIN = Path(__file__).resolve().parent / "adb_standin"
PIXEL_7 = Path(__file__).resolve().parents[1] / "fixtures" / "boards" / "pixel-7"
SERIAL = "29031FDH2004ZX"
PHONE_BIN = "/data/local/tmp/benchmark_model"


def _phone(tmp_path: Path, *, with_binary: bool = True, with_sysfs: bool = True) -> dict[str, str]:
    """A phone tree and the environment that makes the stand-in adb first on PATH."""
    root = tmp_path / "phone"
    shutil.copytree(PIXEL_7, root, symlinks=True)
    (root / "data/local/tmp").mkdir(parents=True)
    if with_binary:
        # The stand-in needs this interpreter's LiteRT; a real phone runs the native binary.
        text = (STANDIN / "benchmark_model").read_text().replace("#!/usr/bin/env python3", f"#!{sys.executable}", 1)
        (root / PHONE_BIN.lstrip("/")).write_text(text)
        (root / PHONE_BIN.lstrip("/")).chmod(0o755)
    if not with_sysfs:
        shutil.rmtree(root / "sys")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shutil.copy2(STANDIN / "adb", bin_dir / "adb")
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "LUTNAS_STANDIN_PHONES": f"{SERIAL}={root}"}


def _adb_log(env: dict[str, str]) -> list[str]:
    return Path(env["LUTNAS_STANDIN_PHONES"].split("=", 1)[1], "adb.log").read_text().splitlines()


def test_phone_over_adb(tmp_path: Path) -> None:
    env = _phone(tmp_path)
    args = ["--adb", SERIAL, "--benchmark-model-bin", PHONE_BIN]
    with start_agent_process(extra_args=args, env=env) as agent, AgentClient(agent.address, token=agent.token) as client:
        info = client.device_info()
        assert (info.board, info.machine) == ("Pixel 7", "aarch64")
        assert info.cpu_model == "GS201: 4x Cortex-A55 + 2x Cortex-A78 + 2x Cortex-X1"
        assert info.properties["ro.soc.model"] == "GS201" and info.os.startswith("Android 14")
        assert info.properties["int8_dot_product"] == "asimddp"  # the phone's cores, not this host's
        assert list(info.pinned_cpus) == [6, 7]
        assert {c.governor for c in info.state.cpus} == {"sched_pixel"} and info.state.thermal[0].type == "BIG"
        offered = {r.name for r in info.runtimes if r.available}
        assert offered == {"benchmark_model"}
        model = tflite_add(256)
        plan = {"warmup_count": 2, "warmup_s": 0.0, "min_reps": 20, "min_s": 0.0, "max_reps": 20, "max_s": 5.0}
        first = client.time_model(model, "benchmark_model", plan=plan)
        again = client.time_model(model, "benchmark_model", plan=plan)
        for result in (first, again):
            assert result.stats.summary_only and result.stats.n == 20 and result.stats.mean_ms > 0
            assert result.options["phone_cpus"] == "6,7"
            # Before/after state is the phone's big cores, not this host's CPUs.
            assert [c.cpu for c in result.before.cpus] == [6, 7] and result.after.cpus[0].governor == "sched_pixel"
        log = _adb_log(env)
        assert sum(line.startswith("push ") for line in log) == 1  # content-addressed: pushed once
        runs = [line for line in log if PHONE_BIN + " --graph=" in line]
        assert len(runs) == 2 and all(line.startswith("shell taskset c0 ") for line in runs)
        with pytest.raises(AgentJobError, match="set by the agent"):
            client.time_model(model, "benchmark_model", options={"adb.serial": "other"})


def test_phone_without_cpufreq_or_binary(tmp_path: Path) -> None:
    env = _phone(tmp_path, with_binary=False, with_sysfs=False)
    args = ["--adb", SERIAL, "--benchmark-model-bin", PHONE_BIN]
    with start_agent_process(extra_args=args, env=env) as agent, AgentClient(agent.address, token=agent.token) as client:
        info = client.device_info()
        assert info.board == "Pixel 7" and list(info.pinned_cpus) == [] and list(info.state.thermal) == []
        (bm,) = [r for r in info.runtimes if r.name == "benchmark_model"]
        assert not bm.available and "adb push" in bm.detail
    logged = "\n".join(agent.stderr_lines)
    assert "runs unpinned" in logged and "adb push benchmark_model there" in logged and "Traceback" not in logged


@pytest.mark.parametrize(
    ("extra", "path_has_adb", "message"),
    [
        (["--adb", "NOSUCHPHONE"], True, "adb device 'NOSUCHPHONE' is not reachable"),
        (["--adb", SERIAL], False, "no 'adb' on PATH"),
        (["--adb", SERIAL, "--runtimes", "onnxruntime"], True, "benchmark_model only"),
    ],
)
def test_bad_adb_input(tmp_path: Path, extra: list[str], path_has_adb: bool, message: str) -> None:
    env = {**os.environ, **_phone(tmp_path)}
    if not path_has_adb:
        env["PATH"] = "/nonexistent"
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    proc = subprocess.run(
        [sys.executable, "-m", "agent", "--insecure-no-auth", "--port", "0", "--benchmark-model-bin", PHONE_BIN, *extra],
        capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
