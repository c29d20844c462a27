"""Host side of deploy/arm64/check: profile one resolution and validate 3 subnets on the emulated board.

Runs the library functions ``lutnas profile`` and ``lutnas validate`` call, with a short timing plan:
under qemu-user a block runs hundreds of times slower than on the board it stands for, and emulated
timings mean nothing anyway; the plumbing (exports, uploads, the agent's worker, the store) is the point.
Prints one JSON document: {"rows": N, "validated": K, "profile_s": ..., "validate_s": ...}.
"""

from __future__ import annotations

import argparse
import json
import sys

from lut import LutStore
from profiler.fleet import AgentRef, ProfileSettings, profile
from profiler.validate import ValidationSettings, validate

# One warmup run and two timed runs per job (target_rel_ci 0: no early stop; max_reps ends it).
SHORT_PLAN = {"warmup_count": 1, "warmup_s": 0.0, "min_reps": 2, "min_s": 0.0, "max_reps": 2, "max_s": 30.0, "target_rel_ci": 0.0}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agent", required=True, help="NAME=HOST:PORT")
    p.add_argument("--db", required=True)
    p.add_argument("--cache-dir", required=True, help="host artifact cache (block exports), kept between runs")
    p.add_argument("--space", default="ofa-mbv3-w1.2")
    p.add_argument("--resolution", type=int, default=128)
    p.add_argument("--samples", type=int, default=3)
    p.add_argument("--token", default=None)
    args = p.parse_args(argv)
    name, _, address = args.agent.partition("=")
    settings = ProfileSettings(space=args.space, resolutions=(args.resolution,), plan=SHORT_PLAN, sentinel_every=0,
                               job_timeout_s=600.0, cache_dir=args.cache_dir)
    with LutStore(args.db, create=True) as store:
        report = profile(store, [AgentRef(name, address)], settings, token=args.token)
        (dev,) = report.devices
        if not report.ok:
            print(f"error: profile on {name}: {dev.aborted or dev.failed[:3]}", file=sys.stderr)
            return 1
        checked = validate(store, name, address, ValidationSettings(samples=args.samples, rounds=2, plan=SHORT_PLAN,
                                                                     job_timeout_s=900.0), token=args.token)
    print(json.dumps({"rows": dev.timed + dev.skipped, "validated": len(checked.samples), "profile_s": round(report.wall_s, 1),
                      "validate_s": round(checked.wall_s, 1), "raw": checked.raw}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
