"""A job sent again after its stream broke is answered from the agent's memory, not timed twice.

A real agent process with the sleep runtime and a ``--job-log`` (one line per job it runs).
"""

from __future__ import annotations

import json
from pathlib import Path

from agent.replay import RecentResults, job_fingerprint
from agent.testing import SLEEP_RUNTIME_SPEC, sleep_model, start_agent_process
from profiler.client import AgentClient, make_job
from protos import agent_pb2

PLAN = {"warmup_count": 1, "warmup_s": 0.0, "min_reps": 3, "min_s": 0.0, "max_reps": 3, "max_s": 2.0}


def _job(tag: str, resend: bool = False, **kw) -> agent_pb2.BenchmarkJob:
    job = make_job(sleep_model(2.0, tag=tag, exact=True), runtime="sleep", plan=PLAN, job_id=tag, **kw)
    job.resend = resend
    return job


def _ran(log: Path) -> list[str]:
    return [json.loads(line)["job_id"] for line in log.read_text().splitlines()] if log.exists() else []


def test_resent_job_is_replayed_and_a_plain_resend_is_timed(tmp_path: Path) -> None:
    log = tmp_path / "jobs.jsonl"
    agent = start_agent_process(extra_args=["--extra-runtime", SLEEP_RUNTIME_SPEC, "--job-log", str(log),
                                            "--cpus", "all"])
    try:
        with AgentClient(agent.address, token=agent.token) as client:
            (first,) = client.benchmark([_job("a")], timeout_s=60.0)
            (again,) = client.benchmark([_job("a", resend=True)], timeout_s=60.0)  # its result was lost
            (retimed,) = client.benchmark([_job("a")], timeout_s=60.0)  # a deliberate re-timing
            (other,) = client.benchmark([_job("a", resend=True, threads=2)], timeout_s=60.0)  # another job
            (never,) = client.benchmark([_job("b", resend=True)], timeout_s=60.0)  # never ran here
    finally:
        agent.stop()
    assert not first.replayed and again.replayed and not retimed.replayed and not other.replayed and not never.replayed
    assert again.stats == first.stats and again.wall_s == first.wall_s
    assert _ran(log) == ["a", "a", "a", "b"]  # the replayed job did not run


def test_recent_results_are_bounded_and_expire() -> None:
    jobs = [_job(f"j{i}") for i in range(3)]
    prints = [job_fingerprint(j, f"{i:064x}") for i, j in enumerate(jobs)]
    memory = RecentResults(keep=2, keep_s=3600.0)
    for fp, job in zip(prints, jobs):
        memory.remember(fp, agent_pb2.BenchmarkResult(job_id=job.job_id))
    assert memory.recall(prints[0]) is None  # pushed out by the later two
    assert memory.recall(prints[2]).job_id == "j2" and memory.recall(prints[2]).replayed
    # Bytes or hash, with or without the resend mark: one job.
    blob = _job("x")
    by_hash = make_job(sha256="0" * 64, runtime="sleep", plan=PLAN, job_id="x")
    by_hash.resend = True
    assert job_fingerprint(blob, "0" * 64) == job_fingerprint(by_hash, "0" * 64)
    stale = RecentResults(keep_s=0.0)
    stale.remember(prints[1], agent_pb2.BenchmarkResult(job_id="j1"))
    assert stale.recall(prints[1]) is None
