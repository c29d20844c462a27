"""A host's keepalive pings never get its stream cut, and a job sent again while its first run still goes is
answered with that run's result.

Real agent processes with the sleep runtime and a ``--job-log`` (one line per job the agent times).
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import profiler.client
from agent.testing import SLEEP_RUNTIME_SPEC, sleep_model, start_agent_process, wait_until
from profiler.client import AgentClient, make_job
from protos import agent_pb2

PLAN = {"warmup_count": 1, "warmup_s": 0.0, "min_reps": 3, "min_s": 0.0, "max_reps": 3, "max_s": 30.0}


def _job(tag: str, ms: float, resend: bool = False, runs_file: Path | None = None) -> agent_pb2.BenchmarkJob:
    job = make_job(sleep_model(ms, tag=tag, exact=True, runs_file=runs_file), runtime="sleep", plan=PLAN, job_id=tag)
    job.resend = resend
    return job


def _jobs(q: queue.Queue) -> Iterator[agent_pb2.BenchmarkJob]:
    while (job := q.get()) is not None:
        yield job


def _ran(log: Path) -> list[str]:
    return [json.loads(line)["job_id"] for line in log.read_text().splitlines()] if log.exists() else []


@pytest.fixture()
def agent(tmp_path: Path):
    agent = start_agent_process(extra_args=["--extra-runtime", SLEEP_RUNTIME_SPEC, "--job-log",
                                            str(tmp_path / "jobs.jsonl"), "--cpus", "all"])
    yield agent
    agent.stop()


def test_a_stream_without_data_outlives_the_hosts_pings(agent, monkeypatch) -> None:
    # Pings 6 s apart (the agent allows one every 5 s): under gRPC's default policy the fifth, 30 s in, would
    # end the stream with GOAWAY "too_many_pings" (measured); the host's real pings come every 10 s.
    monkeypatch.setattr(profiler.client, "KEEPALIVE_S", 6.0)
    jobs: queue.Queue = queue.Queue()
    with AgentClient(agent.address, token=agent.token) as client:
        call = client.open_stream(_jobs(jobs), timeout_s=120.0)
        time.sleep(36.0)  # no job, no data: only pings
        jobs.put(_job("late", 1.0))
        result = next(call)
        jobs.put(None)
        assert result.WhichOneof("outcome") == "stats" and result.job_id == "late"
        assert list(call) == []  # the stream then ends cleanly


def test_a_resend_during_the_first_run_waits_for_its_result(agent, tmp_path: Path) -> None:
    first_jobs: queue.Queue = queue.Queue()
    with AgentClient(agent.address, token=agent.token) as client:
        # The first stream stays open: the agent sees nothing wrong while the host already sends the job again.
        first = client.open_stream(_jobs(first_jobs), timeout_s=60.0)
        runs = tmp_path / "runs"  # a line as each timing starts
        first_jobs.put(_job("slow", 400.0, runs_file=runs))  # 1 warm-up + 3 runs: about 1.6 s
        answers: list[agent_pb2.BenchmarkResult] = []
        reader = threading.Thread(target=lambda: answers.append(next(first)))
        reader.start()
        assert wait_until(runs.exists, timeout_s=30.0)  # the first run is under way
        (again,) = client.benchmark([_job("slow", 400.0, resend=True, runs_file=runs)], timeout_s=60.0)
        reader.join(30.0)
        first_jobs.put(None)
    assert again.replayed and again.stats.median_ms == answers[0].stats.median_ms
    assert _ran(tmp_path / "jobs.jsonl") == ["slow"]
