"""Store write throughput: rows/s written by 1, 2 and 4 concurrent profiling hosts into PostgreSQL vs SQLite.

Each host is a process that does exactly the store work of ``lutnas profile`` on one shared device
setting, with the agent's timing left out: it claims blocks through work leases (a batch at a time),
and writes each block's row with its provenance in its own transaction as a result would arrive.
All hosts start together; rows/s is the setting's row count over the wall time from the start to
the last host's end. Every run is checked: each block stored exactly once and claimed by one host.

The baseline is one host writing into SQLite (the embedded default). PostgreSQL runs on this machine
(``lut.testing.TemporaryPostgres`` with durable commits, fsync on), so its numbers include a local
socket round trip per statement but no network. Run: ``python benchmarks/store_bench.py``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import tempfile
import threading
import time
from pathlib import Path

from lut import DeviceSetting, LutStore
from lut.testing import TemporaryPostgres
from profiler.fleet import plan_blocks
from profiler.worklist import DeviceWork, Leases, host_id

SETTING = DeviceSetting("bench-board", "onnxruntime", "1.20.0", 1, "fp32", "onnx")


def _host(locator: str, space: str, resolutions: list[int], batch: int, start_at: float, out: mp.Queue) -> None:
    """One profiling host: claim, 'time', write, until the setting has no work left."""
    blocks = plan_blocks(space, resolutions)
    with LutStore(locator) as store:
        sid = store.ensure_setting(SETTING, info={"bench": True})
        leases = Leases(store, sid, host_id(), [b.key for b in blocks], batch=batch, lease_s=60.0)
        work = DeviceWork(blocks, leases=leases)
        stop = threading.Event()
        while time.time() < start_at:
            time.sleep(0.001)
        written = 0
        while (task := work.take("agent", stop)) is not None:
            work.complete("agent", task, None)
            stats = {"median_ms": 1.0 + written % 7, "mean_ms": 1.1, "std_ms": 0.05, "p10_ms": 0.95, "p90_ms": 1.2,
                     "n": 50}
            prov = {"agent_version": "bench", "temp_before_c": 40.0, "temp_after_c": 41.0, "sentinel_drift": 0.0,
                    "extra": {"agent": "127.0.0.1:1", "rel_ci_median": 0.004, "stop_reason": "ci"}}
            store.put_row(sid, task.block.key, stats, prov)
            written += 1
        leases.close()
        out.put((written, time.time()))


def _run(locator: str, hosts: int, space: str, resolutions: list[int], batch: int) -> tuple[float, int]:
    """(rows/s, rows) of ``hosts`` concurrent hosts filling one fresh setting of ``locator``."""
    LutStore(locator).close()  # create the store before the hosts race to open it
    ctx = mp.get_context("spawn")
    out: mp.Queue = ctx.Queue()
    start_at = time.time() + 6.0  # every host has imported and opened the store by then
    procs = [ctx.Process(target=_host, args=(locator, space, resolutions, batch, start_at, out)) for _ in range(hosts)]
    for p in procs:
        p.start()
    results = [out.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
    end = max(t for _, t in results)
    written = sum(n for n, _ in results)
    with LutStore(locator, create=False) as store:
        rows = store.count_rows()[store.setting(SETTING.name).id]
        distinct = len(store.keys(SETTING.name))
    expected = len(plan_blocks(space, resolutions))
    if not (rows == distinct == written == expected):
        raise RuntimeError(f"{hosts} hosts: {written} writes, {rows} rows, {distinct} keys, {expected} expected")
    return rows / (end - start_at), rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--space", default="ofa-mbv3-w1.2")
    p.add_argument("--resolutions", default="128,144,160,176,192,208,224")
    p.add_argument("--hosts", default="1,2,4")
    p.add_argument("--batch", type=int, default=16, help="blocks per claim (the profiler's default)")
    p.add_argument("--repeats", type=int, default=3, help="runs per cell; the median is shown")
    args = p.parse_args()
    resolutions = [int(r) for r in args.resolutions.split(",")]
    counts = [int(h) for h in args.hosts.split(",")]
    results: dict[tuple[str, int], list[float]] = {}
    with TemporaryPostgres(fast=False) as pg, tempfile.TemporaryDirectory() as tmp:
        n = 0
        for repeat in range(args.repeats):
            for hosts in counts:
                for engine in ("sqlite", "postgresql"):
                    n += 1
                    locator = str(Path(tmp) / f"s{n}.db") if engine == "sqlite" else pg.create_database(f"b{n}")
                    rate, rows = _run(locator, hosts, args.space, resolutions, args.batch)
                    results.setdefault((engine, hosts), []).append(rate)
                    print(f"  run {repeat + 1}: {engine:10s} {hosts} host(s): {rows} rows, {rate:8.0f} rows/s", flush=True)
    base = statistics.median(results[("sqlite", counts[0])])
    print(f"\nrows/s (median of {args.repeats}), one setting, {rows} blocks, claims of {args.batch}; "
          f"baseline: SQLite, {counts[0]} host")
    print(f"{'hosts':>5} | {'SQLite':>10} | {'PostgreSQL':>10} | {'SQLite/base':>11} | {'PG/base':>8}")
    for hosts in counts:
        lite, pgr = (statistics.median(results[(e, hosts)]) for e in ("sqlite", "postgresql"))
        print(f"{hosts:>5} | {lite:10.0f} | {pgr:10.0f} | {lite / base:10.2f}x | {pgr / base:7.2f}x")


if __name__ == "__main__":
    main()
