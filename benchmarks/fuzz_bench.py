"""A longer fuzz run of every outside-input target, with the suite's run beside it.

Runs ``tests/security/test_fuzz_inputs.py`` twice: once as the test suite does (fixed cases, scale 1),
then with the case counts scaled by ``--scale`` and fresh random cases (hypothesis not derandomized).
Prints, per target, cases run, wall seconds and the outcome; a failing target prints hypothesis's
minimal failing case below the table. Run: ``python benchmarks/fuzz_bench.py --scale 20``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = "tests/security/test_fuzz_inputs.py"


def run(scale: float) -> tuple[dict[str, dict], str, float]:
    """One pytest run of the fuzz targets at ``scale``: per-test cases, seconds, outcome; pytest's output; wall s."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "cases.jsonl"
        junit = Path(tmp) / "junit.xml"
        env = {**os.environ, "LUTNAS_FUZZ_SCALE": str(scale), "LUTNAS_FUZZ_REPORT": str(report)}
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--timeout", "7200",
             f"--junitxml={junit}", TARGET],
            cwd=ROOT, env=env, capture_output=True, text=True,
        )
        wall = time.perf_counter() - t0
        rows: dict[str, dict] = {}
        if report.exists():
            for line in report.read_text().splitlines():
                doc = json.loads(line)
                rows[doc["test"]] = {"cases": doc["cases"], "seconds": None, "outcome": "passed"}
        if junit.exists():
            text = junit.read_text()
            for name, seconds, body in re.findall(r'<testcase [^>]*name="([^"]+)"[^>]*time="([0-9.]+)"[^>]*?(/>|>.*?</testcase>)', text, re.S):
                row = rows.setdefault(name, {"cases": 0, "seconds": None, "outcome": "passed"})
                row["seconds"] = float(seconds)
                if "<failure" in body or "<error" in body:
                    row["outcome"] = "FAILED"
                elif "<skipped" in body:
                    row["outcome"] = "skipped"
    return rows, proc.stdout + proc.stderr, wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=20.0, help="case-count multiplier for the long run (default 20)")
    args = parser.parse_args(argv)
    base, _, base_wall = run(1.0)
    long, output, long_wall = run(args.scale)
    print(f"{'target':58} {'suite cases':>11} {'suite s':>8} {'long cases':>10} {'long s':>8}  outcome")
    for name in sorted(set(base) | set(long)):
        b, lg = base.get(name, {}), long.get(name, {})
        print(f"{name:58} {b.get('cases', 0):>11,} {b.get('seconds') or 0:>8.1f} {lg.get('cases', 0):>10,} "
              f"{lg.get('seconds') or 0:>8.1f}  {lg.get('outcome', '?')}")
    total_b = sum(r.get("cases", 0) for r in base.values())
    total_l = sum(r.get("cases", 0) for r in long.values())
    print(f"{'all':58} {total_b:>11,} {base_wall:>8.1f} {total_l:>10,} {long_wall:>8.1f}")
    failed = [n for n, r in long.items() if r["outcome"] == "FAILED"]
    if failed:
        print("\nfailures:\n" + output[-8000:])
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
