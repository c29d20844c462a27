"""TFLite's ``benchmark_model`` binary, for devices where no Python runtime installs (Android).

The operator names the binary (``--benchmark-model-bin``); a job cannot choose what to execute.
The tool runs its own loop, so the result carries its aggregates only (``Stats.summary_only``):
parsed from its ``Timings (microseconds): count= first= curr= min= max= avg= std=`` line.
Options ``flag.<name>=<value>`` pass ``--<name>=<value>`` through (e.g. ``flag.use_gpu=true``), except the
timing flags (:data:`AGENT_FLAGS`): those come from the job's threads and plan, so a job cannot time longer
than its deadline allows. The tool runs in a process group of its own, killed whole when the job ends.

With ``--adb SERIAL`` (:mod:`agent.adb`) the binary is a path on the phone: the model is pushed
there once (content-addressed) and the tool runs over ``adb shell``, pinned with ``taskset`` to the
phone's big cores.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

from agent._procs import kill_group
from agent.adb import ADB_CPUS_OPTION, ADB_SERIAL_OPTION, AdbDevice, AdbError, taskset_mask
from agent.errors import JobError, one_line
from agent.runtimes import LoadOptions, RuntimeProbe
from agent.timing import Measurement, Stats, TimingPlan

__all__ = ["AGENT_FLAGS", "BenchmarkModelRuntime", "parse_timings_line", "probe_binary", "BINARY_OPTION"]

BINARY_OPTION = "binary"  # set by the agent from --benchmark-model-bin, never by a job
# Flags the agent derives from the job's threads and plan; a job's flag.<name> may not set them (agent.jobs).
# run_delay and run_frequency pace the timed runs, so they would stretch the timing just the same.
AGENT_FLAGS = frozenset(
    {"graph", "num_threads", "warmup_runs", "warmup_min_secs", "num_runs", "min_secs", "max_secs", "run_delay", "run_frequency"}
)
_FLAG_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_TIMINGS = re.compile(
    r"Timings \(microseconds\): count=(?P<count>\d+) first=(?P<first>[-+.\deE]+) curr=(?P<curr>[-+.\deE]+)"
    r" min=(?P<min>[-+.\deE]+) max=(?P<max>[-+.\deE]+) avg=(?P<avg>[-+.\deE]+) std=(?P<std>[-+.\deE]+)"
)
_EXTRA_TIMEOUT_S = 60.0  # model init and process start on top of the plan's budget


def parse_timings_line(output: str) -> Stats:
    """Statistics from the last full ``Timings (microseconds): ...`` line of benchmark_model output.

    benchmark_model prints one such line for warmup and one for the timed runs; the last is the
    timed one. Values are converted to milliseconds.

    Raises:
        ValueError: no such line.
    """
    matches = list(_TIMINGS.finditer(output))
    if not matches:
        raise ValueError("no 'Timings (microseconds): count= first= curr= min= max= avg= std=' line in the output")
    g = matches[-1].groupdict()
    avg_ms = float(g["avg"]) / 1000.0
    return Stats(
        median_ms=avg_ms,
        mean_ms=avg_ms,
        std_ms=float(g["std"]) / 1000.0,
        min_ms=float(g["min"]) / 1000.0,
        max_ms=float(g["max"]) / 1000.0,
        p10_ms=0.0,
        p90_ms=0.0,
        n=int(g["count"]),
        rel_ci_median=0.0,
        summary_only=True,
    )


def probe_binary(path: Path, adb_serial: str | None = None) -> RuntimeProbe:
    """Whether the operator's binary is there: a file here, or an executable on the phone with ``adb_serial``."""
    if not adb_serial:
        ok = Path(path).is_file()
        return RuntimeProbe(ok, version="binary", detail=str(path) if ok else f"{path} is not a file")
    try:
        ok = AdbDevice(adb_serial).is_executable(str(path))
    except AdbError as err:
        return RuntimeProbe(False, version="binary", detail=str(err))
    if ok:
        return RuntimeProbe(True, version="binary", detail=f"{path} on {adb_serial}")
    return RuntimeProbe(False, version="binary", detail=f"{path} is no executable on {adb_serial}; adb push it there and chmod +x it")


@dataclass
class _Loaded:
    binary: str
    model_path: Path | str  # a path on the phone in adb mode
    threads: int
    flags: dict[str, str]
    phone: AdbDevice | None = None  # adb mode: the phone that runs the binary
    phone_cpus: tuple[int, ...] = ()  # adb mode: the big cores to pin to (none: unpinned)


class BenchmarkModelRuntime:
    """Runs ``benchmark_model --graph=...`` and parses its timings line."""

    name = "benchmark_model"

    def probe(self) -> RuntimeProbe:
        # Availability depends on the agent's --benchmark-model-bin; the server fills it in.
        return RuntimeProbe(False, detail="start the agent with --benchmark-model-bin PATH")

    def load(self, model_bytes: bytes, options: LoadOptions) -> _Loaded:
        opts = dict(options.options)
        binary = opts.pop(BINARY_OPTION, "")
        serial = opts.pop(ADB_SERIAL_OPTION, "")
        phone_cpus = tuple(int(c) for c in opts.pop(ADB_CPUS_OPTION, "").split(",") if c.strip().isdigit())
        if not binary:
            raise JobError("FAILED_PRECONDITION", "benchmark_model needs the agent to run with --benchmark-model-bin PATH")
        flags = {}
        for key, value in opts.items():
            name = key.split(".", 1)[1] if key.startswith("flag.") else ""
            if not _FLAG_NAME.match(name):
                raise JobError("INVALID_ARGUMENT", f"unknown benchmark_model option {key!r}; use flag.<name>=<value>")
            if name in AGENT_FLAGS:
                raise JobError("INVALID_ARGUMENT", f"benchmark_model flag {name!r} is set by the agent from the job's threads and plan")
            flags[name] = value
        if serial:
            phone = AdbDevice(serial)
            try:
                remote = phone.push_blob(model_bytes, ".tflite")
            except AdbError as err:
                raise JobError("FAILED_PRECONDITION", str(err)) from err
            return _Loaded(binary, remote, options.threads, flags, phone, phone_cpus)
        if options.workdir is None:
            raise JobError("INTERNAL", "benchmark_model needs a job directory")
        options.workdir.mkdir(parents=True, exist_ok=True)
        model_path = options.workdir / "model.tflite"
        model_path.write_bytes(model_bytes)
        return _Loaded(binary=binary, model_path=model_path, threads=options.threads, flags=flags)

    def time(self, loaded: _Loaded, plan: TimingPlan) -> Measurement:
        args = [
            loaded.binary,
            *(f"--{k}={v}" for k, v in sorted(loaded.flags.items())),
            f"--graph={loaded.model_path}",
            f"--num_threads={loaded.threads}",
            f"--warmup_runs={plan.warmup_count}",
            f"--warmup_min_secs={plan.warmup_s}",
            f"--num_runs={plan.min_reps}",
            f"--min_secs={plan.min_s}",
            f"--max_secs={plan.max_s}",
        ]
        if loaded.phone is not None:
            pin = ["taskset", taskset_mask(loaded.phone_cpus)] if loaded.phone_cpus else []
            args = [loaded.phone.adb, "-s", loaded.phone.serial, "shell", shlex.join([*pin, *args])]
        returncode, output = _run_tool(args, plan.budget_s() + _EXTRA_TIMEOUT_S, loaded.binary)
        if returncode != 0:
            tail = one_line(output.strip().splitlines()[-1] if output.strip() else "", 200)
            raise JobError("INVALID_ARGUMENT", f"benchmark_model exited with {returncode}: {tail}")
        try:
            stats = parse_timings_line(output)
        except ValueError as err:
            raise JobError("INTERNAL", f"{loaded.binary}: {err}") from err
        settings = {"binary": loaded.binary, **{f"flag.{k}": v for k, v in loaded.flags.items()}}
        if loaded.phone is not None:
            settings["phone_cpus"] = ",".join(map(str, loaded.phone_cpus)) or "all"
        return Measurement(samples_ms=[], stop_reason="summary", warmup_runs=plan.warmup_count, summary=stats, settings=settings)


def _run_tool(args: list[str], timeout_s: float, binary: str) -> tuple[int, str]:
    """Run the tool in a session of its own; its exit status and output (stdout, then stderr).

    However this ends (done, past ``timeout_s``, or the worker interrupted), the tool's whole process
    group is killed before returning: nothing it started keeps running after the job.

    Raises:
        JobError: FAILED_PRECONDITION when it cannot start, DEADLINE_EXCEEDED past ``timeout_s``.
    """
    try:
        proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
        )
    except OSError as err:
        raise JobError("FAILED_PRECONDITION", f"cannot run {binary}: {err.strerror}") from err
    try:
        stdout, stderr = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired as err:
        raise JobError("DEADLINE_EXCEEDED", f"{binary} ran past {timeout_s:.0f} s") from err
    finally:
        kill_group(proc.pid)  # the tool if it still runs, and whatever it left behind
        if proc.returncode is None:
            proc.communicate()  # reap it
    return proc.returncode, stdout + "\n" + stderr
