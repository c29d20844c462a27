"""Faults on real network stacks at scale: 8 agents, 3 profiling hosts and PostgreSQL, each in its own namespace.

Every run profiles one device setting (all agents under one device name, so the hosts split the blocks
through work leases) of ofa-mbv3-w1.0 at two resolutions with the sleep runtime, into a fresh PostgreSQL
database, and prints a row per scenario against the clean-network run:

- clean: unshaped links;
- phone: every agent's link 150 ms RTT (relay), 2% loss each way, 5 Mbit/s, models padded to --pad-bytes;
- partition: one agent cut from every host for --partition-s mid-profile, then healed (hosts wait --agent-wait-s);
- reboot: one agent cut off, SIGKILLed and restarted on its address, then healed;
- db-partition: one host cut from the database for 3 leases mid-profile.

Columns: wall time, mean device-busy fraction over the hosts, retries (jobs requeued, results recovered from
an agent, late results dropped), rows stored and blocks timed more than once (agents' job logs).
Needs root (network namespaces), iproute2, nftables and PostgreSQL. Run: ``python benchmarks/net_bench.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(_REPO_ROOT))

from lut import LutStore  # noqa: E402
from lut.testing import TemporaryPostgres  # noqa: E402
from tests.reliability._harness import TOKEN, requeued_jobs, timed_keys  # noqa: E402
from tests.reliability._netagents import NetAgent  # noqa: E402
from tests.reliability._netlab import NetLab, unavailable  # noqa: E402

HOSTS = 3


def _run_scenario(name: str, args: argparse.Namespace, workdir: Path) -> dict:
    lab = NetLab()
    pg = None
    agents: list[NetAgent] = []
    procs: list[subprocess.Popen] = []
    try:
        db = lab.node("db")
        pg = TemporaryPostgres(fast=True, listen=db.ip, netns=db.ns)
        pg.start()
        url = pg.create_database("lut")
        LutStore(url).close()
        phone = name == "phone"
        for i in range(args.agents):
            node = lab.node(f"dev{i}")
            if phone:
                node.shape(5.0)
                node.loss(2)
            agents.append(NetAgent(node, workdir / f"dev{i}", rtt_ms=150.0 if phone else 0.0).start())
        hosts = [lab.node(f"host{h}") for h in range(HOSTS)]
        workdir.mkdir(parents=True, exist_ok=True)
        token = workdir / "token"
        token.write_text(TOKEN)
        reports = []
        for h, host in enumerate(hosts):
            mine = agents[h::HOSTS]
            report = workdir / f"report-{h}.json"
            reports.append(report)
            argv = host.python("-m", "tests.reliability._profile_host", "--db", url, "--token-file", str(token),
                               "--report", str(report), "--scale", str(args.scale), "--resolutions", args.resolutions,
                               "--lease-s", str(args.lease_s), "--claim-batch", "8", "--agent-wait-s",
                               str(args.agent_wait_s), "--pad-bytes", str(args.pad_bytes if phone else 0),
                               *[x for a in mine for x in ("--agent", f"board={a.address}")])
            log = open(workdir / f"host-{h}.log", "w")  # noqa: SIM115 - closed with the process
            procs.append(subprocess.Popen(argv, cwd=_REPO_ROOT, env={**os.environ, "PYTHONPATH": str(_REPO_ROOT)},
                                          stdout=log, stderr=subprocess.STDOUT))
        start = time.monotonic()
        _inject(name, args, lab, agents, hosts, db, url)
        for proc in procs:
            proc.wait(args.timeout_s)
        wall = time.monotonic() - start
        devices = [json.loads(r.read_text())["devices"][0] for r in reports if r.exists()]
        with LutStore(url, create=False) as store:
            keys = [k for (k,) in store._query("SELECT block_key FROM lut_rows")]
        timed = timed_keys(*(a.job_log for a in agents))
        faults = [f for d in devices for f in d["agent_faults"]]
        retries = requeued_jobs(faults)
        retries += sum(d.get("recovered", 0) for d in devices) + sum("already stored" in f for f in faults)
        return {"scenario": name, "wall_s": wall, "busy": sum(d["busy_fraction"] for d in devices) / max(1, len(devices)),
                "retries": retries, "rows": len(keys), "distinct": len(set(keys)), "twice": sum(n > 1 for n in timed.values()),
                "hosts_ok": sum(p.returncode == 0 for p in procs), "uploaded_mb": sum(d["uploaded_bytes"] for d in devices) / 1e6}
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
        for agent in agents:
            agent.stop()
        if pg is not None:
            pg.stop()
        lab.close()


def _rows(url: str) -> int:
    with LutStore(url, create=False) as store:
        return int(store._query("SELECT COUNT(*) FROM lut_rows")[0][0])


def _inject(name: str, args: argparse.Namespace, lab: NetLab, agents: list[NetAgent], hosts, db, url: str) -> None:
    """Wait until the profile is under way, then do the scenario's fault."""
    if name in ("clean", "phone"):
        return
    deadline = time.monotonic() + args.timeout_s
    while _rows(url) < args.fault_after_rows and time.monotonic() < deadline:
        time.sleep(0.1)
    if name == "partition":
        agents[0].node.partition()
        time.sleep(args.partition_s)
        agents[0].node.heal()
    elif name == "reboot":
        agents[0].node.partition()
        agents[0].power_cut()
        time.sleep(2.0)
        agents[0].restart()
        agents[0].node.heal()
    elif name == "db-partition":
        hosts[0].partition(db)
        time.sleep(3 * args.lease_s)
        hosts[0].heal()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--agents", type=int, default=8)
    p.add_argument("--resolutions", default="128,160")
    p.add_argument("--scale", type=float, default=4.0, help="block latencies x this (sleep runtime)")
    p.add_argument("--pad-bytes", type=int, default=100_000, help="model padding on the phone link")
    p.add_argument("--partition-s", type=float, default=30.0)
    p.add_argument("--agent-wait-s", type=float, default=60.0)
    p.add_argument("--lease-s", type=float, default=10.0)
    p.add_argument("--fault-after-rows", type=int, default=40)
    p.add_argument("--timeout-s", type=float, default=600.0)
    p.add_argument("--scenarios", default="clean,phone,partition,reboot,db-partition")
    p.add_argument("--keep", type=Path, default=None, help="keep each scenario's host logs and reports here")
    args = p.parse_args(argv)
    reason = unavailable()
    if reason is not None:
        print(f"net_bench: {reason}", file=sys.stderr)
        return 2
    results = []
    for name in args.scenarios.split(","):
        if args.keep is not None:
            results.append(_run_scenario(name, args, args.keep / name))
        else:
            with tempfile.TemporaryDirectory(prefix=f"net-bench-{name}-") as tmp:
                results.append(_run_scenario(name, args, Path(tmp)))
        r = results[-1]
        print(f"{name}: {r}", file=sys.stderr, flush=True)
    clean = next((r for r in results if r["scenario"] == "clean"), None)
    print("| scenario | wall s | vs clean | busy | retries | rows (distinct) | timed twice | hosts ok | uploaded MB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        ratio = f"{r['wall_s'] / clean['wall_s']:.2f}x" if clean else "-"
        print(f"| {r['scenario']} | {r['wall_s']:.1f} | {ratio} | {r['busy']:.1%} | {r['retries']} | "
              f"{r['rows']} ({r['distinct']}) | {r['twice']} | {r['hosts_ok']}/{HOSTS} | {r['uploaded_mb']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
