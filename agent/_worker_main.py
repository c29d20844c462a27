"""The timing worker: a child process that pins itself, then runs one job per request.

Started by :class:`agent.worker.WorkerSupervisor` as ``python -m agent._worker_main``. Requests
and replies are JSON documents over a private pipe (``multiprocessing.connection`` framing), so
anything a runtime prints on stdout cannot corrupt the protocol: stdout is pointed at stderr.

Request: ``{"job": {...}}``. Reply: ``{"ok": true, "result": {...}}`` or
``{"ok": false, "code": "INVALID_ARGUMENT", "message": "..."}``. The first message the worker
sends is ``{"ready": true, "pid": ..., "cpus": [...]}``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import sys
import time
from dataclasses import asdict
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from agent._logtext import EscapingFormatter
from agent.config import allowed_cpus
from agent.adb import job_state_source
from agent.device import read_device_state
from agent.errors import MAX_ERROR_CHARS, JobError, one_line, out_of_memory
from agent.runtimes import InputSpec, LoadOptions, Runtime, get_runtime
from agent.timing import TimingPlan, summarize

__all__ = ["job_cpu_set", "run_job", "main"]

log = logging.getLogger(__name__)


def run_job(
    job: dict[str, Any],
    runtimes: dict[str, Runtime],
    cpus: list[int] | None,
    workdir: Path,
    versions: dict[str, str],
    delegates: dict[str, str] | None = None,
    spare_cpus: list[int] | tuple[int, ...] = (),
) -> dict[str, Any]:
    """Run one validated job and return the result document.

    Args:
        job: The job document (see :func:`agent.jobs.validate_job`) plus ``model_path``.
        runtimes: Runtime instances by name, loaded on first use.
        cpus: CPUs the worker is pinned to (their state is recorded), None for no pinning.
        workdir: A private directory for this job, created only if a runtime needs it; removed after.
        versions: Runtime versions by name (probing costs milliseconds, so it happens once).
        delegates: The operator's delegate allowlist, name -> path.
        spare_cpus: CPUs a job with more threads than ``cpus`` may add, best first (see :func:`job_cpu_set`).

    Raises:
        JobError: the job failed in a way the host should see.
    """
    plan = TimingPlan(**job["plan"])
    state_cpus, files = job_state_source(job, cpus)  # the phone's, with --adb
    job_cpus = None
    if files is None and cpus is not None:  # on this machine: pin before the runtime starts its threads
        job_cpus = job_cpu_set(job["threads"], cpus, spare_cpus)
        os.sched_setaffinity(0, job_cpus)
        state_cpus = job_cpus
    if plan.cooldown_s > 0:
        time.sleep(plan.cooldown_s)
    runtime = runtimes[job["runtime"]]
    before = read_device_state(state_cpus, files)
    t_start = time.perf_counter()
    model_bytes = Path(job["model_path"]).read_bytes()
    options = LoadOptions(
        format=job["format"],
        threads=job["threads"],
        inputs=tuple(InputSpec(i["name"], tuple(i["shape"]), i["dtype"]) for i in job["inputs"]),
        options=job["options"],
        workdir=workdir,
        plan=plan,
        max_input_bytes=job["max_input_bytes"],
        delegates=delegates or {},
    )
    try:
        t_load = time.perf_counter()
        loaded = runtime.load(model_bytes, options)
        load_ms = (time.perf_counter() - t_load) * 1e3
        measurement = runtime.time(loaded, plan)
        del loaded  # free sessions before the next job loads
    finally:
        # Creating a temp dir per job costs milliseconds here; only runtimes that write files make one.
        if workdir.exists():
            shutil.rmtree(workdir, ignore_errors=True)
    if measurement.summary is not None:
        stats = measurement.summary
    elif measurement.samples_ms:
        stats = summarize(measurement.samples_ms)
    else:
        raise JobError("INTERNAL", f"runtime {job['runtime']} returned no samples")
    after = read_device_state(state_cpus, files)
    if job["runtime"] not in versions:
        versions[job["runtime"]] = runtime.probe().version
    settings = dict(measurement.settings)
    if job_cpus is not None:
        settings["cpus"] = ",".join(map(str, job_cpus))
    return {
        "stats": asdict(stats),
        "samples_ms": list(measurement.samples_ms) if job["return_samples"] else [],
        "stop_reason": measurement.stop_reason,
        "warmup_runs": measurement.warmup_runs,
        "settings": settings,
        "runtime_version": versions[job["runtime"]],
        "load_ms": load_ms,
        "wall_s": time.perf_counter() - t_start,
        "before": before,
        "after": after,
    }


def job_cpu_set(threads: int, cpus: list[int] | tuple[int, ...], spare_cpus: list[int] | tuple[int, ...] = ()) -> list[int]:
    """The CPUs a job with ``threads`` threads runs on: the pinned ones, plus spare ones until there is one per thread.

    Threads that outnumber their cores share them, and a block timed that way is not the block that deploys
    with that many threads (on a 2-core host, 2 onnxruntime threads on one core timed a 56x56 7x7 MBConv at
    7.8 ms, on two cores at 1.6 ms).

    Raises:
        JobError: FAILED_PRECONDITION when even the spare CPUs are too few.
    """
    chosen = list(cpus) + [c for c in spare_cpus if c not in cpus][:max(0, threads - len(cpus))]
    if threads > len(chosen):
        raise JobError(
            "FAILED_PRECONDITION",
            f"the job asks for {threads} threads but the timing worker may use {len(chosen)} CPU(s) "
            f"({','.join(map(str, sorted(chosen)))}): threads sharing a core time nothing that deploys; ask for at most "
            f"{len(chosen)}, or start the agent with --cpus auto or a list of at least {threads} CPUs",
        )
    return sorted(chosen)


def cap_memory(max_mb: int) -> None:
    """Cap what this process may allocate at ``max_mb``: a bigger job fails, the device keeps going.

    RLIMIT_DATA (Linux >= 4.7 counts every private writable mapping, so it covers malloc, mmap and
    the runtimes' arenas) rather than RLIMIT_AS: CUDA reserves hundreds of GB of address space it
    never touches, which an address-space cap would refuse. RLIMIT_AS where there is no RLIMIT_DATA.
    """
    import resource  # Unix only; the agent's supported systems all have it

    limit = max_mb << 20
    kind = getattr(resource, "RLIMIT_DATA", None)
    if kind is None or not sys.platform.startswith("linux"):
        kind = resource.RLIMIT_AS
    resource.setrlimit(kind, (limit, limit))


def _failure(code: str, message: str, max_mb: int) -> dict[str, Any]:
    """A failed job's reply, its message bounded; running out of memory also asks for a fresh worker."""
    if code != "RESOURCE_EXHAUSTED":
        return {"ok": False, "code": code, "message": one_line(message, MAX_ERROR_CHARS)}
    if max_mb:
        message = f"the job needs more memory than the worker's cap of {max_mb} MB (agent --max-worker-mb): {message}"
    return {"ok": False, "code": code, "message": one_line(message, MAX_ERROR_CHARS), "restart": True}


def _serve(
    conn: _Duplex, extra: dict[str, str], cpus: list[int] | None, jobs_dir: Path, delegates: dict[str, str], max_mb: int,
    spare_cpus: list[int],
) -> None:
    runtimes: dict[str, Runtime] = {}
    versions: dict[str, str] = {}
    count = 0
    while True:
        try:
            request = json.loads(conn.recv_bytes())
        except EOFError:
            return  # the agent went away; so do we
        job = request["job"]
        try:
            if job["runtime"] not in runtimes:
                runtimes[job["runtime"]] = get_runtime(job["runtime"], extra)
            count += 1
            result = run_job(job, runtimes, cpus, jobs_dir / f"job-{count}", versions, delegates, spare_cpus)
            reply = {"ok": True, "result": result}
        except JobError as err:
            reply = _failure(err.code, err.message, max_mb)
        except MemoryError:
            reply = _failure("RESOURCE_EXHAUSTED", "out of memory while running the job", max_mb)
        except Exception as err:  # a runtime bug must cost one job, not the worker
            log.exception("job %s failed", job.get("job_id"))
            code = "RESOURCE_EXHAUSTED" if out_of_memory(err) else "INTERNAL"
            reply = _failure(code, f"{type(err).__name__}: {one_line(err, 200)}", max_mb)
        conn.send_bytes(json.dumps(reply).encode())


def main(argv: list[str] | None = None) -> int:
    """Worker entry point."""
    parser = argparse.ArgumentParser(prog="python -m agent._worker_main")
    parser.add_argument("--rfd", type=int, required=True)
    parser.add_argument("--wfd", type=int, required=True)
    parser.add_argument("--cpus", default="")
    parser.add_argument("--spare-cpus", default="")
    parser.add_argument("--extra-runtime", action="append", default=[])
    parser.add_argument("--jobs-dir", type=Path, required=True)
    parser.add_argument("--delegate", action="append", default=[])
    parser.add_argument("--max-worker-mb", type=int, default=0)
    args = parser.parse_args(argv)
    # Ctrl-C in the agent's terminal reaches the whole process group; the agent stops us by closing
    # the pipe, so the worker ignores SIGINT instead of dying with a traceback mid-job.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if args.max_worker_mb:
        cap_memory(args.max_worker_mb)
    # Runtimes may print to stdout; keep it away from anything that reads ours.
    os.dup2(2, 1)
    handler = logging.StreamHandler()
    handler.setFormatter(EscapingFormatter("worker %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    cpus = [int(c) for c in args.cpus.split(",") if c] or None
    if cpus is not None:
        os.sched_setaffinity(0, cpus)
    extra = dict(item.partition("=")[::2] for item in args.extra_runtime)
    delegates = dict(item.partition("=")[::2] for item in args.delegate)
    reader = Connection(args.rfd, writable=False)
    writer = Connection(args.wfd, readable=False)
    writer.send_bytes(json.dumps({"ready": True, "pid": os.getpid(), "cpus": sorted(allowed_cpus()) if cpus else []}).encode())
    spare = [int(c) for c in args.spare_cpus.split(",") if c]
    _serve(_Duplex(reader, writer), extra, cpus, args.jobs_dir, delegates, args.max_worker_mb, spare)
    sys.stderr.flush()
    # Skip interpreter teardown: with torch loaded it takes seconds, and there is nothing to save.
    os._exit(0)


class _Duplex:
    """Reads from one pipe end and writes to the other, like a duplex Connection."""

    def __init__(self, reader: Connection, writer: Connection) -> None:
        self._reader = reader
        self._writer = writer

    def recv_bytes(self) -> bytes:
        return self._reader.recv_bytes()

    def send_bytes(self, data: bytes) -> None:
        self._writer.send_bytes(data)


if __name__ == "__main__":
    sys.exit(main())
