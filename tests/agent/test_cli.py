"""``lutnas time``, ``lutnas devices`` and ``lutnas agent serve`` against real agents."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.testing import AgentProcess, free_port, onnx_matmul_relu, start_agent_process
from lutnas.cli import app

from .conftest import FAST_PLAN  # noqa: F401  (same plan sizes as the other tests)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def token_file(shared_agent: AgentProcess, tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text(shared_agent.token or "")
    return path


@pytest.fixture
def model_file(onnx_model: bytes, tmp_path: Path) -> Path:
    path = tmp_path / "block.onnx"
    path.write_bytes(onnx_model)
    return path


def test_time_json(runner: CliRunner, shared_agent: AgentProcess, token_file: Path, model_file: Path) -> None:
    result = runner.invoke(
        app, ["time", "--agent", f"box={shared_agent.address}", str(model_file), "--token-file", str(token_file), "--json"]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    for key in ("median_ms", "mean_ms", "std_ms", "p10_ms", "p90_ms", "min_ms", "max_ms", "n"):
        assert key in doc
    assert doc["device"] == "box" and doc["runtime"] == "onnxruntime" and int(doc["n"]) >= 10


def test_time_human_with_env_token(runner: CliRunner, shared_agent: AgentProcess, model_file: Path) -> None:
    result = runner.invoke(
        app, ["time", "--agent", f"box={shared_agent.address}", str(model_file), "--threads", "1"], env={"LUTNAS_TOKEN": shared_agent.token}
    )
    assert result.exit_code == 0, result.output
    assert "median ms" in result.stderr and result.stdout == ""


def test_time_failures_say_which(runner: CliRunner, shared_agent: AgentProcess, token_file: Path, model_file: Path, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-token")
    result = runner.invoke(app, ["time", "--agent", f"box={shared_agent.address}", str(model_file), "--token-file", str(wrong)])
    assert result.exit_code == 2 and "rejected the token" in result.stderr
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(os.urandom(100))
    result = runner.invoke(app, ["time", "--agent", f"box={shared_agent.address}", str(bad), "--token-file", str(token_file)])
    assert result.exit_code == 2 and "could not time the model" in result.stderr
    result = runner.invoke(
        app,
        ["time", "--agent", f"box=127.0.0.1:{free_port()}", str(model_file), "--token-file", str(token_file), "--connect-timeout-s", "2"],
        env={},
    )
    assert result.exit_code == 1 and "unreachable" in result.stderr
    unknown = tmp_path / "model.xyz"
    unknown.write_bytes(b"x")
    result = runner.invoke(app, ["time", "--agent", f"box={shared_agent.address}", str(unknown), "--token-file", str(token_file)])
    assert result.exit_code == 2 and "--runtime" in result.stderr
    for out in (result.stderr,):
        assert len(out.strip().splitlines()) <= 3  # one message (rich may wrap it)


def test_time_refuses_a_model_over_the_agents_message_limit(runner: CliRunner, tmp_path: Path) -> None:
    big = tmp_path / "big.onnx"
    big.write_bytes(onnx_matmul_relu(8, 768, 768))  # 2.25 MB of weights
    small = tmp_path / "small.onnx"
    small.write_bytes(onnx_matmul_relu(8, 32, 32))
    with start_agent_process(token=None, extra_args=["--max-message-mb", "1"]) as agent:
        result = runner.invoke(app, ["time", "--agent", f"box={agent.address}", str(big)])
        assert result.exit_code == 2, result.output
        (line,) = [x for x in result.stderr.splitlines() if x.startswith("error:")]
        assert line == (f"error: model big.onnx is 2.3 MB and the agent at {agent.address} accepts messages up to 1 MB; "
                        "start the agent with --max-message-mb 16")
        assert agent.alive()
        timed = runner.invoke(app, ["time", "--agent", f"box={agent.address}", str(small), "--json"])
        assert timed.exit_code == 0 and json.loads(timed.stdout)["n"] > 0, timed.output


def test_time_names_the_worker_cap_when_a_large_model_outgrows_it(runner: CliRunner, tmp_path: Path) -> None:
    # Parsing a 100 MB model under a 300 MB cap failed as "not an ONNX model: ... Arena alloc failed" (exit 2 for a
    # good model); wherever the worker runs out (import, parse, session), the error names the cap to raise.
    big = tmp_path / "big.onnx"
    big.write_bytes(onnx_matmul_relu(8, 5000, 5000))
    small = tmp_path / "small.onnx"
    small.write_bytes(onnx_matmul_relu(8, 32, 32))
    with start_agent_process(token=None, extra_args=["--max-message-mb", "128", "--max-worker-mb", "300"]) as agent:
        result = runner.invoke(app, ["time", "--agent", f"box={agent.address}", str(big)])
        assert result.exit_code == 2, result.output
        assert "RESOURCE_EXHAUSTED" in result.stderr and "--max-worker-mb" in result.stderr, result.stderr
        assert "not an ONNX model" not in result.stderr and "not installed" not in result.stderr
        timed = runner.invoke(app, ["time", "--agent", f"box={agent.address}", str(small), "--json"])
        assert timed.exit_code == 0 and json.loads(timed.stdout)["n"] > 0, timed.output


def test_devices(runner: CliRunner, shared_agent: AgentProcess, token_file: Path) -> None:
    result = runner.invoke(app, ["devices", shared_agent.address, "--token-file", str(token_file), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    (device,) = doc["devices"]
    assert device["address"] == shared_agent.address and device["cpu_cores"] >= 1
    assert any(r["name"] == "onnxruntime" and r["available"] for r in device["runtimes"])
    table = runner.invoke(app, ["devices", shared_agent.address, "--token-file", str(token_file)])
    assert table.exit_code == 0 and "onnxruntime" in table.stderr and "int8 dot" in table.stderr
    down = runner.invoke(app, ["devices", f"127.0.0.1:{free_port()}", "--token-file", str(token_file), "--timeout-s", "2"])
    assert down.exit_code == 1 and "unreachable" in down.stderr
    assert runner.invoke(app, ["devices", "no-port-here"]).exit_code == 2


def test_agent_serve_command(tmp_path: Path) -> None:
    lutnas = Path(sys.executable).with_name("lutnas")
    if not lutnas.exists():
        pytest.skip("the lutnas console script is not installed (pip install -e .)")
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config")}
    env.pop("LUTNAS_TOKEN", None)
    proc = subprocess.Popen(
        [str(lutnas), "agent", "serve", "--port", "0", "--cache-dir", str(tmp_path / "cache"), "--runtimes", "onnxruntime"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        ready = proc.stdout.readline()
        assert "generated a token" in first
        token_path = Path(re.search(r"wrote it to (\S+)", first).group(1))
        assert token_path.stat().st_mode & 0o077 == 0
        match = re.search(r"address=(\S+) runtimes=onnxruntime auth=token", ready)
        assert match, ready
        from profiler.client import AgentClient

        with AgentClient(match.group(1), token=token_path.read_text().strip()) as client:
            assert client.device_info().auth_required
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
