"""Run one lutnas command in a fresh process and measure what it cost.

The child imports the modules the command needs first, so the memory it reports is what the
command itself added above that baseline (``VmHWM``, the peak resident size, read before and after).
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from dataclasses import dataclass

__all__ = ["Measured", "run_measured"]

_CHILD = r"""
import importlib, json, sys, time
from typer.testing import CliRunner
from lutnas.cli import app

def peak_kb():
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))

argv, preload = json.loads(sys.argv[1]), json.loads(sys.argv[2])
for name in preload:
    importlib.import_module(name)
before = peak_kb()
start = time.perf_counter()
res = CliRunner().invoke(app, argv)
seconds = time.perf_counter() - start
print(json.dumps({"exit_code": res.exit_code, "output": res.output[:100_000], "output_chars": len(res.output),
                  "seconds": seconds, "peak_growth_mb": (peak_kb() - before) / 1024}))
"""


@dataclass(frozen=True)
class Measured:
    """What one command cost in its own process."""

    exit_code: int
    output: str  # the first 100,000 characters
    output_chars: int  # the whole output's length
    seconds: float  # the command alone, imports excluded
    peak_growth_mb: float  # peak resident memory above the imports' peak


# A command that regresses fails in its own process (MemoryError) instead of exhausting the machine.
ADDRESS_SPACE_LIMIT_BYTES = 6 << 30


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT_BYTES, ADDRESS_SPACE_LIMIT_BYTES))


def run_measured(argv: list[str], preload: list[str], timeout_s: float = 120.0) -> Measured:
    """Run ``lutnas argv`` in a new Python process after importing ``preload``.

    Raises:
        AssertionError: the process itself failed (ran out of its address space, crashed).
    """
    out = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(argv), json.dumps(preload)],
                         capture_output=True, text=True, timeout=timeout_s, preexec_fn=_limit_memory)
    if out.returncode != 0:
        raise AssertionError(f"lutnas {argv[:2]} died with status {out.returncode}: {out.stderr[-2000:]}")
    return Measured(**json.loads(out.stdout.strip().splitlines()[-1]))
