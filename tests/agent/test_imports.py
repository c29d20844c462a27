"""The agent stays light: no torch or pandas at import time."""

from __future__ import annotations

import subprocess
import sys


def test_agent_imports_without_heavy_packages() -> None:
    code = (
        "import sys, agent, agent.server, agent.cli, agent.testing, agent.runtimes.torch_rt, agent.runtimes.tflite_rt, "
        "agent.runtimes.onnxruntime_rt, profiler.client\n"
        "heavy = [m for m in ('torch', 'pandas', 'onnxruntime', 'tensorflow', 'ai_edge_litert', 'onnx') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_python_m_agent_help() -> None:
    out = subprocess.run([sys.executable, "-m", "agent", "--help"], capture_output=True, text=True, check=True)
    for flag in (
        "--host",
        "--port",
        "--token-file",
        "--tls-cert",
        "--tls-key",
        "--runtimes",
        "--cache-dir",
        "--max-message-mb",
        "--insecure-no-auth",
        "--cpus",
        "--extra-runtime",
        "--job-log",
        "--max-worker-mb",
        "--delegate",
        "--max-streams",
        "--max-streams-per-client",
        "--stream-idle-s",
    ):
        assert flag in out.stdout
