"""TFLite's ``benchmark_model`` binary, for devices where no Python runtime installs (Android).

The operator names the binary (``--benchmark-model-bin``); a job cannot choose what to execute.
The tool runs its own loop, so the result carries its aggregates only (``Stats.summary_only``):
parsed from its ``Timings (microseconds): count= first= curr= min= max= avg= std=`` line.
Options ``flag.<name>=<value>`` pass ``--<name>=<value>`` through (e.g. ``flag.use_gpu=true``).
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from agent.errors import JobError, one_line
from agent.runtimes import LoadOptions, RuntimeProbe
from agent.timing import Measurement, Stats, TimingPlan

__all__ = ["BenchmarkModelRuntime", "parse_timings_line", "BINARY_OPTION"]

BINARY_OPTION = "binary"  # set by the agent from --benchmark-model-bin, never by a job
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


@dataclass
class _Loaded:
    binary: str
    model_path: Path
    threads: int
    flags: dict[str, str]


class BenchmarkModelRuntime:
    """Runs ``benchmark_model --graph=...`` and parses its timings line."""

    name = "benchmark_model"

    def probe(self) -> RuntimeProbe:
        # Availability depends on the agent's --benchmark-model-bin; the server fills it in.
        return RuntimeProbe(False, detail="start the agent with --benchmark-model-bin PATH")

    def load(self, model_bytes: bytes, options: LoadOptions) -> _Loaded:
        opts = dict(options.options)
        binary = opts.pop(BINARY_OPTION, "")
        if not binary:
            raise JobError("FAILED_PRECONDITION", "benchmark_model needs the agent to run with --benchmark-model-bin PATH")
        flags = {}
        for key, value in opts.items():
            name = key.split(".", 1)[1] if key.startswith("flag.") else ""
            if not _FLAG_NAME.match(name) or name == "graph":
                raise JobError("INVALID_ARGUMENT", f"unknown benchmark_model option {key!r}; use flag.<name>=<value>")
            flags[name] = value
        if options.workdir is None:
            raise JobError("INTERNAL", "benchmark_model needs a job directory")
        options.workdir.mkdir(parents=True, exist_ok=True)
        model_path = options.workdir / "model.tflite"
        model_path.write_bytes(model_bytes)
        return _Loaded(binary=binary, model_path=model_path, threads=options.threads, flags=flags)

    def time(self, loaded: _Loaded, plan: TimingPlan) -> Measurement:
        args = [
            loaded.binary,
            f"--graph={loaded.model_path}",
            f"--num_threads={loaded.threads}",
            f"--warmup_runs={plan.warmup_count}",
            f"--warmup_min_secs={plan.warmup_s}",
            f"--num_runs={plan.min_reps}",
            f"--min_secs={plan.min_s}",
            f"--max_secs={plan.max_s}",
            *(f"--{k}={v}" for k, v in sorted(loaded.flags.items())),
        ]
        try:
            proc = subprocess.run(args, capture_output=True, text=True, timeout=plan.budget_s() + _EXTRA_TIMEOUT_S, check=False)
        except OSError as err:
            raise JobError("FAILED_PRECONDITION", f"cannot run {loaded.binary}: {err.strerror}") from err
        except subprocess.TimeoutExpired as err:
            raise JobError("DEADLINE_EXCEEDED", f"{loaded.binary} ran past {err.timeout:.0f} s") from err
        output = proc.stdout + "\n" + proc.stderr
        if proc.returncode != 0:
            tail = one_line(output.strip().splitlines()[-1] if output.strip() else "", 200)
            raise JobError("INVALID_ARGUMENT", f"benchmark_model exited with {proc.returncode}: {tail}")
        try:
            stats = parse_timings_line(output)
        except ValueError as err:
            raise JobError("INTERNAL", f"{loaded.binary}: {err}") from err
        settings = {"binary": loaded.binary, **{f"flag.{k}": v for k, v in loaded.flags.items()}}
        return Measurement(samples_ms=[], stop_reason="summary", warmup_runs=plan.warmup_count, summary=stats, settings=settings)
