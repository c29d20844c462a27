"""Fixtures that start real agents on loopback (subprocesses) and connect clients to them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.testing import SLEEP_RUNTIME_SPEC, AgentProcess, onnx_matmul_relu, start_agent_process
from profiler.client import AgentClient

# A short timing plan: tests check behaviour, not latency.
FAST_PLAN = {"warmup_count": 2, "warmup_s": 0.0, "min_reps": 5, "min_s": 0.0, "max_reps": 20, "max_s": 0.5}


@pytest.fixture(scope="session")
def job_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared agent's --job-log file."""
    return tmp_path_factory.mktemp("agent-log") / "jobs.jsonl"


@pytest.fixture(scope="session")
def shared_agent(job_log: Path) -> Iterator[AgentProcess]:
    """One agent (token auth, sleep runtime, job log) shared by tests that leave it healthy."""
    proc = start_agent_process(extra_args=["--extra-runtime", SLEEP_RUNTIME_SPEC, "--job-log", str(job_log)])
    yield proc
    proc.stop()


@pytest.fixture
def fresh_agent() -> Iterator[AgentProcess]:
    """An agent of the test's own, for tests that hurt it (killed workers, crashes)."""
    proc = start_agent_process(extra_args=["--extra-runtime", SLEEP_RUNTIME_SPEC])
    yield proc
    proc.stop()


@pytest.fixture
def client(shared_agent: AgentProcess) -> Iterator[AgentClient]:
    """A client of the shared agent with the right token."""
    with AgentClient(shared_agent.address, token=shared_agent.token, timeout_s=30.0) as c:
        yield c


@pytest.fixture(scope="session")
def onnx_model() -> bytes:
    """A 32x32 MatMul+Relu ONNX model (input x: [32, 32])."""
    return onnx_matmul_relu(32, 32, 32)
