"""Precision: int8/fp16 speedups per block, the int8 LUT's fidelity, and the block-boundary term, on this machine.

1. **Speedups.** Every ``--every``-th block of ``ofa-mbv3-w1.0`` at one resolution, exported at fp32, fp16 and
   int8 (see ``profiler.quantize``) and timed in this process with onnxruntime and LiteRT (1 thread, the
   thread's CPU time, interleaved rounds, the lowest round median). Prints the per-kind and per-stage
   median fp32/X speedup, and the blocks where int8 is slower than fp32.
2. **Fidelity.** A local agent (onnxruntime, 1 thread, pinned) profiles the space at fp32 and at int8, then
   times ``--samples`` whole subnets of each precision (exported with the same recipe) in interleaved rounds
   and fits a calibration; the raw and held-out calibrated fidelity print beside the repeat noise.
3. **Boundary term.** An int8 block timed with float I/O quantizes its input and dequantizes its output;
   inside a network each tensor is quantized once. The LUT times integer-I/O blocks, so the term is left
   out by construction; here it is measured (float-I/O minus integer-I/O time of the speedup blocks, fitted
   linearly in the boundary tensors' elements) and added to the int8 validation subnets' sums, to show how
   far a LUT of float-I/O blocks would have been off.

    python benchmarks/precision_bench.py [--resolution 160] [--samples 30] [--rounds 4] [--every 3]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from agent.testing import start_agent_process
from layers import block_input_shape
from lut import LutStore
from lut.calibration import fidelity_metrics
from lut.compare import block_groups
from profiler.builders import build_block
from profiler.export import export_block
from profiler.export_onnx import to_onnx_model
from profiler.fleet import AgentRef, ProfileSettings, profile
from profiler.quantize import calibration_inputs, float_boundary
from profiler.validate import ValidationSettings, validate
from space import get_space

TOKEN = "precision-bench"
SPACE = "ofa-mbv3-w1.0"
PRECISIONS = ("fp32", "fp16", "int8")
# Lighter than the profiler's default plan (as the demo's), with two interleaved rounds per block.
PLAN = {"warmup_count": 5, "warmup_s": 0.05, "min_reps": 15, "min_s": 0.1, "max_reps": 300, "max_s": 0.8,
        "target_rel_ci": 0.02}
VALIDATION_PLAN = {"warmup_count": 3, "warmup_s": 0.05, "min_reps": 10, "min_s": 0.1, "max_reps": 100, "max_s": 0.5,
                   "target_rel_ci": 0.02}


# -- 1. speedups ------------------------------------------------------------------------------


def _ort_runner(data: bytes):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    session = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    meta = session.get_inputs()[0]
    dtype = np.uint8 if meta.type == "tensor(uint8)" else np.float32
    feed = {meta.name: np.random.default_rng(0).integers(0, 255, meta.shape).astype(dtype)
            if dtype == np.uint8 else np.random.default_rng(0).standard_normal(meta.shape, dtype=np.float32)}
    return lambda: session.run(None, feed)


def _litert_runner(data: bytes):
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=data, num_threads=1)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    rng = np.random.default_rng(0)
    x = (rng.integers(-128, 127, inp["shape"]).astype(np.int8) if inp["dtype"] == np.int8
         else rng.standard_normal(inp["shape"], dtype=np.float32))
    interp.set_tensor(inp["index"], x)
    return interp.invoke


def _median_ms(run, reps: int) -> float:
    # 1-thread runtimes compute on the calling thread: its CPU time leaves out preemption by other tenants,
    # like the agent's thread_cpu clock the LUT rows use.
    samples = []
    for _ in range(reps):
        t0 = time.thread_time_ns()
        run()
        samples.append((time.thread_time_ns() - t0) / 1e6)
    return float(np.median(samples))


def _time_models(runners: dict[tuple, object], rounds: int, reps: int) -> dict[tuple, float]:
    best = {k: float("inf") for k in runners}
    rng = np.random.default_rng(0)
    keys = list(runners)
    for _ in range(rounds):
        for i in rng.permutation(len(keys)):
            run = runners[keys[i]]
            for _ in range(3):
                run()  # warm up
            best[keys[i]] = min(best[keys[i]], _median_ms(run, reps))
    return best


def speedups(resolution: int, every: int, rounds: int, reps: int) -> pd.DataFrame:
    space = get_space(SPACE)
    blocks = space.unique_blocks(resolution)[::every]
    groups = block_groups(space, [resolution])
    rows = []
    for block in blocks:
        runners = {}
        for fmt, make in (("onnx", _ort_runner), ("tflite", _litert_runner)):
            for precision in PRECISIONS:
                runners[(fmt, precision)] = make(export_block(block, fmt, precision=precision))
        times = _time_models(runners, rounds, reps)
        for (fmt, precision), ms in times.items():
            rows.append({"block_key": block.key, "kind": groups[block.key][0], "group": groups[block.key][1],
                         "runtime": "onnxruntime" if fmt == "onnx" else "litert", "precision": precision, "ms": ms})
    frame = pd.DataFrame(rows)
    wide = frame.pivot_table(index=["block_key", "kind", "group", "runtime"], columns="precision", values="ms")
    wide = wide.reset_index()
    for precision in ("fp16", "int8"):
        wide[f"speedup_{precision}"] = wide["fp32"] / wide[precision]
    return wide


def _speedup_table(wide: pd.DataFrame) -> str:
    lines = [f"{'runtime':<12} {'group':<13} {'n':>3} {'fp32 ms':>8} {'fp16 x':>7} {'int8 x':>7} "
             f"{'int8 min':>8} {'int8 max':>8}"]
    for (runtime, group), g in wide.groupby(["runtime", "group"], sort=False):
        lines.append(f"{runtime:<12} {group:<13} {len(g):>3} {g['fp32'].median():>8.3f} "
                     f"{g['speedup_fp16'].median():>7.2f} {g['speedup_int8'].median():>7.2f} "
                     f"{g['speedup_int8'].min():>8.2f} {g['speedup_int8'].max():>8.2f}")
    for runtime, g in wide.groupby("runtime", sort=False):
        slower = g[g["speedup_int8"] < 1.0]
        lines.append(f"{runtime}: all blocks median fp16 {g['speedup_fp16'].median():.2f}x, int8 "
                     f"{g['speedup_int8'].median():.2f}x; int8 slower than fp32 on {len(slower)}/{len(g)} blocks")
        for r in slower.sort_values("speedup_int8").head(8).itertuples():
            lines.append(f"    {r.speedup_int8:.2f}x  {r.block_key}")
    return "\n".join(lines)


# -- 3. boundary term ---------------------------------------------------------------------------


def boundary_terms(resolution: int, every: int, rounds: int, reps: int) -> pd.DataFrame:
    """Per block: onnxruntime int8 time with float I/O and with integer I/O, and the boundary elements."""
    space = get_space(SPACE)
    rows = []
    for block in space.unique_blocks(resolution)[::every]:
        shape = block_input_shape(block)
        fp32 = to_onnx_model(build_block(block), shape)
        inputs = calibration_inputs(shape)
        runners = {"integer": _ort_runner(export_block(block, "onnx", precision="int8")),
                   "float": _ort_runner(float_boundary(fp32, inputs).SerializeToString())}
        times = _time_models(runners, rounds, reps)
        elems = int(np.prod(shape)) + block.out_hw * block.out_hw * block.out_chs
        rows.append({"block_key": block.key, "elements": elems, "integer_ms": times["integer"],
                     "float_ms": times["float"], "boundary_ms": times["float"] - times["integer"]})
    return pd.DataFrame(rows)


def _boundary_effect(terms: pd.DataFrame, samples: pd.DataFrame) -> dict:
    """Fit boundary_ms ~ a + b * elements and add it to every block of each validated int8 subnet."""
    slope, intercept = np.polyfit(terms["elements"], terms["boundary_ms"], 1)
    space = get_space(SPACE)
    extra = np.array([sum(intercept + slope * (int(np.prod(block_input_shape(b))) + b.out_hw * b.out_hw * b.out_chs)
                          for b in space.blocks(arch)) for arch in samples["arch"]])
    measured = samples["measured_ms"].to_numpy()
    predicted = samples["predicted_ms"].to_numpy()
    return {"slope_ms_per_melem": float(slope * 1e6), "intercept_ms": float(intercept),
            "block_share_median": float((terms["boundary_ms"] / terms["integer_ms"]).median()),
            "subnet_share_median": float(np.median(extra / measured)),
            "float_io_raw": fidelity_metrics(predicted + extra, measured)}


# -- 2. fidelity --------------------------------------------------------------------------------


def fidelity(store: LutStore, address: str, precision: str, args: argparse.Namespace) -> tuple[dict, pd.DataFrame]:
    name = "local"
    t0 = time.monotonic()
    prof = profile(store, [AgentRef(name, address)],
                   ProfileSettings(space=SPACE, resolutions=(args.resolution,), precision=precision, plan=PLAN,
                                   rounds=2, sentinel_every=0, export_workers=1),
                   token=TOKEN)
    if not prof.ok:
        raise SystemExit(f"{precision} profile failed: {prof.to_dict()}")
    profile_s = time.monotonic() - t0
    report = validate(store, f"{name}:{precision}", address,
                      ValidationSettings(samples=args.samples, rounds=args.rounds, seed=args.seed, space=SPACE,
                                         resolutions=(args.resolution,), calibrate=True, plan=VALIDATION_PLAN),
                      token=TOKEN)
    frame = report.samples
    return {"precision": precision, "profile_s": round(profile_s, 1), "validate_s": round(report.wall_s, 1),
            "raw": report.raw, "calibrated": report.calibrated, "noise": report.noise,
            "calibration": report.calibration.describe() if report.calibration else None,
            "measured_ms": [float(frame["measured_ms"].min()), float(frame["measured_ms"].max())],
            "sum_over_measured": float((frame["predicted_ms"] / frame["measured_ms"]).median())}, frame


def _fidelity_table(results: list[dict]) -> str:
    lines = [f"{'precision':<9} {'predictor':<30} {'RMSPE%':>7} {'bias%':>6} {'±5%':>5} {'±10%':>5}"]
    for r in results:
        for label, m in (("raw LUT sum", r["raw"]), ("calibrated (held-out CV)", r["calibrated"])):
            lines.append(f"{r['precision']:<9} {label:<30} {m['rmspe']:>7.2f} {m['bias']:>+6.1f} "
                         f"{m['within_5pct']:>4.0f}% {m['within_10pct']:>4.0f}%")
        n = r["noise"]
        lines.append(f"{r['precision']:<9} repeat noise median {n['repeat_median']:.2f}% p90 {n['repeat_p90']:.2f}%; "
                     f"sum/measured {r['sum_over_measured']:.3f}; measured {r['measured_ms'][0]:.2f}-"
                     f"{r['measured_ms'][1]:.2f} ms; profile {r['profile_s']:.0f} s, validate {r['validate_s']:.0f} s; "
                     f"{r['calibration']}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=160)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--every", type=int, default=3, help="time every N-th block of the space for speedups")
    parser.add_argument("--reps", type=int, default=30, help="runs per model per round (speedups, boundary)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    args = parser.parse_args()
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # in-process timings on one core, like the agent's

    t0 = time.monotonic()
    wide = speedups(args.resolution, args.every, 3, args.reps)
    print(f"1. speedup fp32/X per block, {SPACE} r={args.resolution}, every {args.every}th block, 1 thread, "
          f"thread CPU time, 3 interleaved rounds ({time.monotonic() - t0:.0f} s)")
    print(_speedup_table(wide))

    with tempfile.TemporaryDirectory(prefix="lutnas-precision-") as tmp, \
            start_agent_process(token=TOKEN) as agent, LutStore(Path(tmp) / "lut.db") as store:
        runs = [fidelity(store, agent.address, p, args) for p in ("fp32", "int8")]
    results = [r for r, _ in runs]
    print(f"\n2. LUT fidelity, {SPACE} r={args.resolution}, onnxruntime 1 thread pinned, {args.samples} subnets, "
          f"{args.rounds} interleaved rounds (targets: calibrated >= 99% within ±10%, >= 90% within ±5%)")
    print(_fidelity_table(results))

    terms = boundary_terms(args.resolution, args.every, 3, args.reps)
    effect = _boundary_effect(terms, runs[1][1])
    m = effect["float_io_raw"]
    print(f"\n3. int8 block boundary (onnxruntime): float-I/O minus integer-I/O block time, {len(terms)} blocks: "
          f"median {terms['boundary_ms'].median() * 1e3:.1f} us ({100 * effect['block_share_median']:.1f}% of the "
          f"block); fit {effect['intercept_ms'] * 1e3:.1f} us + {effect['slope_ms_per_melem'] * 1e3:.1f} us/M "
          f"elements.\n   Added to every block of the {len(runs[1][1])} int8 subnets: +{100 * effect['subnet_share_median']:.1f}% "
          f"of the measured latency (median); a float-I/O LUT's raw sums would be within ±10% for "
          f"{m['within_10pct']:.0f}% and ±5% for {m['within_5pct']:.0f}% (bias {m['bias']:+.1f}%) vs the "
          f"integer-I/O LUT's {results[1]['raw']['within_10pct']:.0f}% / {results[1]['raw']['within_5pct']:.0f}%.")
    if args.json:
        args.json.write_text(json.dumps({"speedups": wide.to_dict(orient="records"), "fidelity": results,
                                         "boundary": {**effect, "blocks": terms.to_dict(orient="records")}},
                                        indent=1, default=float))


if __name__ == "__main__":
    main()
