"""A job with N threads runs on N CPUs: never two timing threads time-sliced on one core."""

from __future__ import annotations

import pytest

from agent._worker_main import job_cpu_set
from agent.config import CAN_PIN, allowed_cpus, cpu_preference, spare_cpus
from agent.errors import JobError
from agent.testing import onnx_conv, start_agent_process
from profiler.client import AgentClient, make_job

from .conftest import FAST_PLAN

pytestmark = pytest.mark.skipif(not CAN_PIN, reason="this OS has no CPU affinity API")


def test_job_cpu_set_adds_spare_cpus_in_order_and_refuses_too_few() -> None:
    assert job_cpu_set(1, [3], [2, 1, 0]) == [3]
    assert job_cpu_set(2, [3], [2, 1, 0]) == [2, 3]
    assert job_cpu_set(3, [3], [2, 1, 0]) == [1, 2, 3]
    assert job_cpu_set(1, [4, 5, 6], []) == [4, 5, 6], "an explicit --cpus list is the operator's whole set"
    with pytest.raises(JobError, match="asks for 2 threads but the timing worker may use 1 CPU") as err:
        job_cpu_set(2, [5], [])
    assert err.value.code == "FAILED_PRECONDITION"
    with pytest.raises(JobError, match="at least 5 CPUs"):
        job_cpu_set(5, [3], [2, 1, 0])


def test_only_auto_has_spare_cpus() -> None:
    best = cpu_preference()
    assert sorted(best) == sorted(allowed_cpus())
    assert spare_cpus("auto") == tuple(best[1:])
    assert spare_cpus("all") == () and spare_cpus(str(best[0])) == ()


def _threads_job(threads: int, job_id: str):
    return make_job(onnx_conv(16, 24), runtime="onnxruntime", threads=threads, plan=FAST_PLAN, job_id=job_id)


@pytest.mark.skipif(len(allowed_cpus()) < 2, reason="needs two CPUs")
def test_auto_agent_gives_a_two_thread_job_two_cpus_and_refuses_more_than_it_has(client: AgentClient) -> None:
    info = client.device_info()
    timing = [int(c) for c in info.properties["timing_cpus"].split(",")]
    assert timing[0] == info.pinned_cpus[0] and sorted(timing) == sorted(allowed_cpus())
    too_many = len(timing) + 1
    one, two, three, again = client.benchmark([
        _threads_job(1, "one"), _threads_job(2, "two"), _threads_job(too_many, "too-many"), _threads_job(1, "again"),
    ])
    assert one.options["cpus"] == str(timing[0]) and len(one.before.cpus) == 1
    assert two.options["cpus"] == ",".join(map(str, sorted(timing[:2])))
    assert sorted(c.cpu for c in two.before.cpus) == sorted(timing[:2])
    assert three.WhichOneof("outcome") == "error" and three.error.code == "FAILED_PRECONDITION"
    assert f"asks for {too_many} threads" in three.error.message
    assert again.options["cpus"] == str(timing[0]), "a one-thread job after a two-thread one is back on one core"
    assert client.health() == "SERVING"


@pytest.mark.skipif(len(allowed_cpus()) < 2, reason="needs two CPUs")
def test_explicit_one_cpu_agent_refuses_two_threads_and_keeps_serving() -> None:
    cpu = cpu_preference()[0]
    proc = start_agent_process(extra_args=["--cpus", str(cpu)])
    try:
        with AgentClient(proc.address, token=proc.token, timeout_s=30.0) as c:
            assert c.device_info().properties["timing_cpus"] == str(cpu)
            two, one = c.benchmark([_threads_job(2, "two"), _threads_job(1, "one")])
            assert two.error.code == "FAILED_PRECONDITION" and "--cpus" in two.error.message
            assert one.WhichOneof("outcome") == "stats" and one.options["cpus"] == str(cpu)
    finally:
        proc.stop()


def test_unpinned_agent_reports_no_timing_cpus_and_sets_no_affinity() -> None:
    proc = start_agent_process(extra_args=["--cpus", "all"])
    try:
        with AgentClient(proc.address, token=proc.token, timeout_s=30.0) as c:
            assert "timing_cpus" not in c.device_info().properties
            (result,) = c.benchmark([_threads_job(2, "two")])
            assert result.WhichOneof("outcome") == "stats" and "cpus" not in result.options
    finally:
        proc.stop()
