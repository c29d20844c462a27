"""Who can reach an agent: no-auth stays on loopback, TLS pairs pin, IPv6 binds, Ctrl-C is quiet."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.certs import make_self_signed
from agent.testing import start_agent_process
from lutnas.cli import app
from profiler.client import AgentClient, AgentError

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> tuple:
    """Two self-signed pairs made by ``lutnas agent cert``, for loopback names."""
    made = []
    for name in ("a", "b"):
        out = tmp_path_factory.mktemp(f"cert-{name}")
        res = runner.invoke(app, ["agent", "cert", "--out-dir", str(out), "--name", "localhost", "--name", "127.0.0.1",
                                  "--name", "::1", "--json"])
        assert res.exit_code == 0, res.output
        made.append(out)
    return tuple(made)


def _agent_module(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("LUTNAS_TOKEN", None)
    return subprocess.run([sys.executable, "-m", "agent", "--port", "0", *args], capture_output=True, text=True,
                          env=env, timeout=60)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "agent.example.org"])
def test_no_auth_is_refused_off_loopback(host) -> None:
    res = _agent_module("--host", host, "--insecure-no-auth")
    assert res.returncode == 2, res.stderr
    assert "binds only loopback" in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_no_auth_is_refused_off_loopback_by_lutnas_agent_serve() -> None:
    res = runner.invoke(app, ["agent", "serve", "--host", "0.0.0.0", "--port", "0", "--insecure-no-auth"])
    assert res.exit_code == 2 and "binds only loopback" in res.output


def test_mismatched_tls_pair_says_so(pairs, tmp_path) -> None:
    a, b = pairs
    token = tmp_path / "token"
    token.write_text("t0ken")
    res = runner.invoke(app, ["agent", "serve", "--port", "0", "--token-file", str(token),
                              "--tls-cert", str(a / "agent.crt"), "--tls-key", str(b / "agent.key")])
    assert res.exit_code == 2 and "does not match" in res.output, res.output
    not_pem = tmp_path / "junk.pem"
    not_pem.write_text("junk")
    res = runner.invoke(app, ["agent", "serve", "--port", "0", "--token-file", str(token),
                              "--tls-cert", str(not_pem), "--tls-key", str(b / "agent.key")])
    assert res.exit_code == 2 and "not a PEM certificate" in res.output, res.output


def test_cert_refuses_to_overwrite(tmp_path) -> None:
    make_self_signed(tmp_path, ["localhost"])
    res = runner.invoke(app, ["agent", "cert", "--out-dir", str(tmp_path)])
    assert res.exit_code == 2 and "--force" in res.output
    pair = make_self_signed(tmp_path, ["localhost"], overwrite=True)
    assert (pair.key.stat().st_mode & 0o777) == 0o600 and len(pair.fingerprint.split(":")) == 32


def test_tls_on_ipv6_loopback_with_a_pinned_certificate(pairs) -> None:
    a, b = pairs
    agent = start_agent_process(host="::1", extra_args=["--tls-cert", str(a / "agent.crt"), "--tls-key", str(a / "agent.key")])
    try:
        assert agent.address.startswith("[::1]:")
        with AgentClient(agent.address, token=agent.token, tls_ca=a / "agent.crt") as client:
            info = client.device_info()
            assert info.tls and info.auth_required
        with AgentClient(agent.address, token=agent.token, tls_ca=b / "agent.crt", retry_s=1.0, timeout_s=5.0) as other:
            with pytest.raises(AgentError):  # another certificate is not this agent's
                other.device_info()
    finally:
        agent.stop()


def test_lan_bind_without_tls_warns_serves_ipv6_and_stops_quietly_on_ctrl_c() -> None:
    agent = start_agent_process(host="::")
    try:
        port = agent.port
        with AgentClient(f"[::1]:{port}", token=agent.token) as client:
            worker = client.device_info().worker_pid
        assert worker > 0
        deadline = time.monotonic() + 20.0  # stderr is read by a thread of its own: wait for the line
        while not any("without TLS" in line for line in agent.stderr_lines):
            assert time.monotonic() < deadline, agent.stderr_lines
            time.sleep(0.05)
        # Ctrl-C in a terminal signals the whole foreground process group: agent and worker.
        os.kill(worker, signal.SIGINT)
        os.kill(agent.proc.pid, signal.SIGINT)
        assert agent.proc.wait(timeout=30) == 0
        if agent._stderr_thread is not None:
            agent._stderr_thread.join(10)
        text = "\n".join(agent.stderr_lines)
        assert "Traceback" not in text and "KeyboardInterrupt" not in text, text
    finally:
        agent.stop()


@pytest.mark.parametrize("args", [
    ["devices", "127.0.0.1:1", "--connect-timeout-s", "nan"],
    ["agent", "serve", "--port", "0", "--insecure-no-auth", "--job-timeout-s", "nan"],
    ["agent", "serve", "--port", "0", "--insecure-no-auth", "--stream-idle-s", "inf"],
    ["agent", "serve", "--port", "0", "--insecure-no-auth", "--max-worker-mb", "-1"],
])
def test_non_finite_durations_are_bad_input(args) -> None:
    res = runner.invoke(app, args)
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output
