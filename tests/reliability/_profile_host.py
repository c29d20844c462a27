"""A profiler host process for the host-crash test: ``python -m tests.reliability._profile_host``.

It is what ``lutnas profile`` does (``profiler.fleet.profile`` into a SQLite or PostgreSQL store), with the sleep
exporter plugged in, because the CLI only exports real ONNX/TFLite blocks. The test SIGKILLs this
process mid-run and runs it again. On completion it writes the profile report as JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from lut import LutStore
from profiler.fleet import AgentRef, profile

from ._harness import SleepExporter, profile_settings

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run one profile; exit 0 when every block has a row, 1 otherwise."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--db", required=True, help="SQLite path or postgresql:// URL")
    p.add_argument("--agent", required=True, action="append", help="NAME=HOST:PORT (repeat for more agents)")
    p.add_argument("--token-file", type=Path, required=True)
    p.add_argument("--report", type=Path, required=True, help="where to write the report JSON")
    p.add_argument("--trap-key", default="")
    p.add_argument("--trap-path", default="")
    p.add_argument("--hold-key", default="")
    p.add_argument("--hold-marker", default="")
    p.add_argument("--scale", type=float, default=1.0, help="multiplies every block's latency")
    p.add_argument("--lease-s", type=float, default=None, help="work lease length (default the profiler's)")
    p.add_argument("--claim-batch", type=int, default=None, help="blocks per claim (default the profiler's)")
    p.add_argument("--resolutions", default="", help="comma-separated resolutions (default the suite's)")
    p.add_argument("--agent-wait-s", type=float, default=None, help="how long to wait for a vanished agent")
    p.add_argument("--pad-bytes", type=int, default=0, help="padding in every model (large uploads)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    refs = [AgentRef(*spec.split("=", 1)) for spec in args.agent]
    exporter = SleepExporter(scale=args.scale, trap_key=args.trap_key, trap_path=args.trap_path, hold_key=args.hold_key,
                             hold_marker=args.hold_marker, pad_bytes=args.pad_bytes)
    with LutStore(args.db) as store:
        overrides = {k: v for k, v in (("lease_s", args.lease_s), ("claim_batch", args.claim_batch),
                                       ("agent_wait_s", args.agent_wait_s)) if v is not None}
        if args.resolutions:
            overrides["resolutions"] = tuple(int(r) for r in args.resolutions.split(","))
        report = profile(store, refs, profile_settings(**overrides),
                         token=args.token_file.read_text().strip(), export_fn=exporter)
    args.report.write_text(json.dumps(report.to_dict()))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
