"""The supervised worker: crashes, kills and deadlines cost one job, never the server."""

from __future__ import annotations

import os
import signal
import threading

from agent.testing import AgentProcess, sleep_model, wait_until
from profiler.client import AgentClient, make_job

from .conftest import FAST_PLAN

_SLOW_PLAN = {"warmup_count": 0, "warmup_s": 0.0, "min_reps": 1000, "min_s": 20.0, "max_reps": 10_000, "max_s": 30.0}


def test_worker_killed_mid_job(fresh_agent: AgentProcess, onnx_model: bytes, tmp_path) -> None:
    runs = tmp_path / "runs"
    with AgentClient(fresh_agent.address, token=fresh_agent.token) as client:
        pid = client.device_info().worker_pid
        results = []
        job = make_job(sleep_model(5.0, runs_file=runs), runtime="sleep", plan=_SLOW_PLAN)
        runner = threading.Thread(target=lambda: results.extend(client.benchmark([job])))
        runner.start()
        # The model writes a line as its timing starts: from then on the worker is mid-job (20 s of 5 ms sleeps).
        assert wait_until(runs.exists, timeout_s=60.0)
        os.kill(pid, signal.SIGKILL)
        runner.join(30.0)
        assert not runner.is_alive()
        (result,) = results
        assert result.error.code == "ABORTED" and "SIGKILL" in result.error.message
        assert fresh_agent.alive()
        after = client.time_model(onnx_model, "onnxruntime", plan=FAST_PLAN)
        assert after.stats.n >= 5
        new_pid = client.device_info().worker_pid
        assert new_pid not in (0, pid)


def test_runtime_crash_and_deadline(fresh_agent: AgentProcess, onnx_model: bytes) -> None:
    with AgentClient(fresh_agent.address, token=fresh_agent.token) as client:
        jobs = [
            make_job(sleep_model(1.0, crash=True), runtime="sleep", plan=FAST_PLAN, job_id="crash"),
            make_job(onnx_model, runtime="onnxruntime", plan=FAST_PLAN, job_id="after-crash"),
            # Warmup by count is not bounded by the plan's seconds, so only the deadline stops this one.
            make_job(sleep_model(50.0), runtime="sleep", plan={**FAST_PLAN, "warmup_count": 1000}, job_timeout_s=1.5, job_id="deadline"),
        ]
        jobs.append(make_job(onnx_model, runtime="onnxruntime", plan=FAST_PLAN, job_id="after-deadline"))
        results = {r.job_id: r for r in client.benchmark(jobs)}
        assert results["crash"].error.code == "ABORTED"
        assert results["after-crash"].WhichOneof("outcome") == "stats"
        assert results["deadline"].error.code == "DEADLINE_EXCEEDED"
        assert results["after-deadline"].WhichOneof("outcome") == "stats"
        assert fresh_agent.alive()
        info = client.device_info()
        assert info.jobs_failed == 2 and info.jobs_completed == 2
