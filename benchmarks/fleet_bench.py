"""Fleet scale: one host drives many agents on loopback that run a synthetic runtime.

Each agent is a real ``python -m agent`` subprocess (server + pinned worker) offering the
``sleep`` runtime from ``agent.testing`` (plugged in with ``--extra-runtime``; not an agent
default). Its "models" declare a latency, so the host-side scheduling cost is all that is
measured. Reports every agent's busy fraction, host CPU per job, and the same with 10% of the
agents SIGKILLed at random mid-run.

    python benchmarks/fleet_bench.py [--agents 50] [--per-device 5] [--latency-ms 40] [--plan default|light] [--reps 8]
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import tempfile
import threading
import time
from pathlib import Path

from agent.testing import SLEEP_RUNTIME_SPEC, sleep_model, start_agent_process
from lut import LutStore
from profiler.fleet import DEFAULT_PLAN, AgentRef, ProfileSettings, profile

TOKEN = "fleet-bench"


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _run(agents, refs, args, kill_fraction: float, db: Path) -> dict:
    latency = args.latency_ms
    if args.plan == "default":
        plan = dict(DEFAULT_PLAN)  # what `lutnas profile` sends for every block
    else:  # light: a short fixed job, to stress the scheduler's per-job cost
        plan = {
            "warmup_count": 1,
            "warmup_s": 0.0,
            "min_reps": args.reps,
            "min_s": 0.0,
            "max_reps": args.reps,
            "max_s": 60.0,
            "target_rel_ci": 0.5,
        }
    settings = ProfileSettings(
        space="ofa-mbv3-w1.0",
        resolutions=(args.resolution,),
        runtime="sleep",
        fmt="json",
        plan=plan,
        sentinel_every=0,
        agent_wait_s=3.0,
    )
    rng = random.Random(0)
    victims = rng.sample(range(len(agents)), int(round(kill_fraction * len(agents))))
    total_jobs = 0
    killed: list[int] = []

    def export(block, fmt, seed):
        # exact: the agents sleep instead of spinning, so 50 of them fit on a small host's cores.
        return sleep_model(latency, tag=block.key, exact=True)

    def killer():
        time.sleep(args.kill_after_s)
        for i in victims:
            agents[i].proc.kill()
            killed.append(i)

    if victims:
        threading.Thread(target=killer, daemon=True).start()
    cpu0, t0 = _cpu_s(), time.monotonic()
    with LutStore(db) as store:
        report = profile(store, refs, settings, token=TOKEN, export_fn=export)
        rows = sum(len(store.keys(d.setting_id)) for d in report.devices)
    wall = time.monotonic() - t0
    cpu = _cpu_s() - cpu0
    total_jobs = sum(d.timed for d in report.devices)
    per_device = [d.busy_fraction for d in report.devices]
    # Agents killed mid-run stop counting once they are given up; report the agents that served to the end.
    per_agent = [f for d in report.devices for a, f in d.agent_busy.items()
                 if a not in {agents[i].address for i in killed}]
    return {
        "agents": len(agents),
        "killed": len(killed),
        "devices": len(report.devices),
        "jobs": total_jobs,
        "rows": rows,
        "expected_rows": sum(d.total for d in report.devices),
        "wall_s": wall,
        "host_cpu_ms_per_job": 1000 * cpu / max(1, total_jobs),
        "busy_min": min(per_device),
        "busy_median": statistics.median(per_device),
        "agent_busy_min": min(per_agent),
        "failed": sum(len(d.failed) for d in report.devices),
        "aborted": sum(bool(d.aborted) for d in report.devices),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--per-device", type=int, default=5, help="agents sharing one device name")
    parser.add_argument("--latency-ms", type=float, default=40.0, help="declared latency of every synthetic model")
    parser.add_argument("--plan", choices=("default", "light"), default="default",
                        help="default: the profiler's own timing plan; light: --reps runs after one warmup run")
    parser.add_argument("--reps", type=int, default=8, help="timed runs per job with --plan light")
    parser.add_argument("--resolution", type=int, default=160)
    parser.add_argument("--kill-after-s", type=float, default=4.0)
    args = parser.parse_args()

    results = []
    for kill_fraction in (0.0, 0.1):
        print(f"starting {args.agents} agents ...", flush=True)
        agents = []
        try:
            for i in range(args.agents):
                agents.append(
                    start_agent_process(
                        token=TOKEN, extra_args=["--extra-runtime", SLEEP_RUNTIME_SPEC, "--cpus", "all"]
                    )
                )
            refs = [AgentRef(f"board{i // args.per_device:02d}", a.address) for i, a in enumerate(agents)]
            with tempfile.TemporaryDirectory() as tmp:
                results.append(_run(agents, refs, args, kill_fraction, Path(tmp) / "lut.db"))
        finally:
            for a in agents:
                a.stop()

    cols = [
        "agents",
        "killed",
        "devices",
        "jobs",
        "rows",
        "expected_rows",
        "wall_s",
        "host_cpu_ms_per_job",
        "busy_min",
        "busy_median",
        "agent_busy_min",
        "failed",
        "aborted",
    ]
    print()
    print(
        f"fleet: {args.agents} agents, {args.per_device} per device, synthetic {args.latency_ms} ms per run, {args.plan} plan"
    )
    print(" | ".join(f"{c:>12}" for c in cols))
    for r in results:
        print(" | ".join(f"{r[c]:>12.3f}" if isinstance(r[c], float) else f"{r[c]:>12}" for c in cols))


if __name__ == "__main__":
    main()
