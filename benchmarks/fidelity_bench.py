"""Fidelity: how well a LUT's block sums predict whole networks on this machine, raw and calibrated.

Starts a local agent (``python -m agent``: onnxruntime, 1 thread, timing worker pinned to one
core), profiles ``ofa-mbv3-w1.0`` at one resolution, then times ``--samples`` whole subnets
(stratified over the predicted latency range) in interleaved rounds and fits a calibration chosen
by cross-validation. Prints, per timing clock, the raw LUT sums' fidelity, the calibration's
held-out (k-fold) fidelity and the measurement's own repeat noise beside them.

``--clocks auto,wall`` profiles and validates twice in one run: once with the agent's default
clock (thread CPU time for one thread) and once with wall-clock timing, the plain pipeline.

    python benchmarks/fidelity_bench.py [--resolution 224] [--samples 100] [--rounds 4] [--clocks auto,wall]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from agent.testing import start_agent_process
from lut import LutStore
from profiler.fleet import AgentRef, ProfileSettings, profile
from profiler.validate import ValidationSettings, validate

TOKEN = "fidelity-bench"
SPACE = "ofa-mbv3-w1.0"


def _options(clock: str) -> dict[str, str]:
    return {} if clock == "auto" else {"clock": clock}


def _run_clock(store: LutStore, address: str, clock: str, args: argparse.Namespace) -> dict:
    name = f"local-{clock}"
    t0 = time.monotonic()
    prof = profile(
        store,
        [AgentRef(name, address)],
        ProfileSettings(space=SPACE, resolutions=(args.resolution,), options=_options(clock)),
        token=TOKEN,
    )
    profile_s = time.monotonic() - t0
    if not prof.ok:
        raise SystemExit(f"profile with clock={clock} failed: {prof.to_dict()}")
    report = validate(
        store,
        name,
        address,
        ValidationSettings(
            samples=args.samples,
            rounds=args.rounds,
            seed=args.seed,
            space=SPACE,
            resolutions=(args.resolution,),
            calibrate=True,
            options=_options(clock),
        ),
        token=TOKEN,
    )
    meta = store.validation_runs(store.setting(name)).iloc[-1]["meta"]
    frame = report.samples
    ratio = frame["predicted_ms"] / frame["measured_ms"]
    return {
        "clock": clock,
        "profile_s": round(profile_s, 1),
        "validate_s": round(report.wall_s, 1),
        "raw": report.raw,
        "calibrated": report.calibrated,
        "noise": report.noise,
        "calibration": report.calibration.describe() if report.calibration else None,
        "candidates": report.calibration.candidates if report.calibration else {},
        "sum_over_measured": {"median": float(ratio.median()), "min": float(ratio.min()), "max": float(ratio.max())},
        "measured_ms": {"min": float(frame["measured_ms"].min()), "max": float(frame["measured_ms"].max())},
        "notes": report.notes,
        "run_id": report.run_id,
        "clock_used": meta.get("clock"),
        "round_stat": meta.get("round_stat", "min"),
    }


def _table(results: list[dict], args: argparse.Namespace) -> str:
    head = (
        f"fidelity, {SPACE} r={args.resolution}, onnxruntime 1 thread pinned, {args.samples} subnets, "
        f"{args.rounds} interleaved rounds"
    )
    cols = (
        f"{'clock':<11} {'predictor':<34} {'RMSE ms':>8} {'RMSPE%':>7} {'MAPE%':>6} {'bias%':>6} {'±5%':>5} {'±10%':>5}"
    )
    lines = [head, cols, "-" * len(cols)]
    for r in results:
        cal = r["calibrated"]
        kind = r["calibration"].split(":")[0] if r["calibration"] else "-"
        for label, m in (("raw LUT sum", r["raw"]), (f"calibrated ({kind}, held-out CV)", cal)):
            if m is None:
                continue
            lines.append(
                f"{r['clock']:<11} {label:<34} {m['rmse_ms']:>8.3f} {m['rmspe']:>7.2f} {m['mape']:>6.2f} "
                f"{m['bias']:>+6.1f} {m['within_5pct']:>4.0f}% {m['within_10pct']:>4.0f}%"
            )
        n = r["noise"]
        s = r["sum_over_measured"]
        lines.append(
            f"{r['clock']:<11} repeat noise median {n['repeat_median']:.2f}% p90 {n['repeat_p90']:.2f}%; "
            f"sum/measured median {s['median']:.3f} [{s['min']:.3f}, {s['max']:.3f}]; "
            f"measured {r['measured_ms']['min']:.1f}-{r['measured_ms']['max']:.1f} ms; "
            f"profile {r['profile_s']:.0f} s, validate {r['validate_s']:.0f} s"
        )
        lines.append(
            f"{'':<11} agent clock {r['clock_used']}, a network's latency = {r['round_stat']} of its round medians"
        )
        lines.append(f"{'':<11} calibration: {r['calibration']}")
        for kind, m in r["candidates"].items():
            lines.append(
                f"{'':<11}   candidate {kind:<14} CV RMSPE {m['rmspe']:6.2f}%  ±5% {m['within_5pct']:4.0f}%  "
                f"±10% {m['within_10pct']:4.0f}%"
            )
        for note in r["notes"]:
            lines.append(f"{'':<11} note: {note}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clocks", default="auto", help="comma-separated: auto, thread_cpu, wall")
    parser.add_argument("--db", type=Path, default=None, help="keep the LUT store here (default: a temp dir)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    args = parser.parse_args()
    clocks = [c for c in args.clocks.split(",") if c]
    with tempfile.TemporaryDirectory(prefix="lutnas-fidelity-") as tmp:
        db = args.db or Path(tmp) / "lut.db"
        with start_agent_process(token=TOKEN) as agent, LutStore(db) as store:
            results = [_run_clock(store, agent.address, clock, args) for clock in clocks]
    print(_table(results, args))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=float))
    ratios = [r["raw"]["within_10pct"] for r in results]
    print(
        f"\ntargets: calibrated ≥99% within ±10% and ≥90% within ±5% (held-out); raw ±10%: {np.round(ratios, 1).tolist()}"
    )


if __name__ == "__main__":
    main()
