"""ProxylessNAS and ResNet50 on this machine: OFA's published ProxylessNAS nets, and LUT fidelity per family.

Starts a local agent (onnxruntime, 1 thread) and runs two checks.

1. The 16 published ProxylessNAS nets (``../shared/data/ofa/specialized/*/net.config`` whose ``name`` is
   ProxylessNASNets), or with ``--all-nets`` all 50 (the 34 MobileNetV3 ones too): their blocks are profiled at
   each net's run.config resolution (in the space each net fits), each net is priced from the LUT (the sum of its
   blocks), exported to ONNX and timed end to end with ``lutnas time`` ``--rounds`` times, interleaved. Prints LUT
   sum vs measured per net, as ``lutnas validate`` does, with each net's repeat noise, and how many nets timed.
2. Per family (``ofa-proxyless-w1.3``, ``ofa-resnet50``): every block at ``--resolution`` is profiled, then
   ``--samples`` random subnets (stratified over the predicted range) are timed whole, and the raw and the
   calibrated (held-out) fidelity are printed beside the host's repeat noise.
3. With ``--pricing`` (no agent, CPU only): ResNet50 pricing on a synthetic LUT of every resolution of the
   space, the per-subnet path (decompose each subnet into blocks, sum by key: how a ResNet LUT priced before
   its gather tables) beside the gathered one in the same run: pricing ``--pricing-subnets`` random subnets,
   and a default-size evolutionary search (population 100, 500 generations) under a latency budget.

    python benchmarks/families_bench.py [--resolution 128] [--samples 30] [--rounds 4] [--skip-nets]
    python benchmarks/families_bench.py --all-nets --families '' --rounds 2
    python benchmarks/families_bench.py --pricing --skip-nets --families ''
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from agent.testing import start_agent_process
from lut import LutStore
from lut.blocksum import BlockSumLut
from lut.calibration import fidelity_metrics
from lut.spaces import net_config_source
from lut.predict import CompiledLut
from profiler.export import export_net_config
from profiler.fleet import AgentRef, ProfileSettings, profile
from profiler.validate import ValidationSettings, repeat_noise, validate
from search.evolution import EvolutionSettings, evolutionary_search, latency_constraint
from search.genomes import genome_for
from search.predictor import LutnasPredictor
from space import get_space, read_net_config
from space.counts import block_macs

TOKEN = "families-bench"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
PROXYLESS = "ofa-proxyless-w1.3"
FAMILIES = (PROXYLESS, "ofa-resnet50")
MAX_MESSAGE_MB = "256"  # a whole ResNet50 at fp32 is up to 184 MB


def published_nets(root: Path, every: bool) -> list[tuple[str, Path, int, str]]:
    """(name, net.config, run.config resolution, the space it fits) of the published ProxylessNAS nets under
    ``root``, or of ``every`` net there."""
    out = []
    for cfg in sorted(root.glob("*/net.config")):
        if every or json.loads(cfg.read_text()).get("name") == "ProxylessNASNets":
            r = int(json.loads((cfg.parent / "run.config").read_text())["image_size"])
            (space,) = net_config_source(cfg.parent.name, read_net_config(cfg, resolution=r)).spaces
            out.append((cfg.parent.name, cfg, r, space))
    return out


def lutnas_time(address: str, model: Path) -> float:
    """The median (ms) ``lutnas time --json`` reports for ``model`` on the agent at ``address``.

    Raises:
        RuntimeError: the command failed (its last line).
    """
    done = subprocess.run([str(Path(sys.executable).with_name("lutnas")), "time", "--agent", f"local={address}",
                           str(model), "--json"], capture_output=True, text=True, env={**os.environ, "LUTNAS_TOKEN": TOKEN},
                          check=False)
    if done.returncode != 0:
        raise RuntimeError((done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1])
    return float(json.loads(done.stdout)["median_ms"])


def bench_nets(store: LutStore, address: str, args: argparse.Namespace, folder: Path) -> list[dict]:
    nets = published_nets(args.specialized, args.all_nets)
    blocks = {name: read_net_config(cfg, resolution=r) for name, cfg, r, _ in nets}
    t0 = time.monotonic()
    for space in dict.fromkeys(s for *_, s in nets):  # one setting per space: its nets' blocks only
        mine = [n for n in nets if n[3] == space]
        keys = tuple(dict.fromkeys(b.key for name, *_ in mine for b in blocks[name]))
        resolutions = tuple(sorted({r for _, _, r, _ in mine}))
        prof = profile(store, [AgentRef(f"nets-{space}", address)], ProfileSettings(
            space=space, resolutions=resolutions, only_keys=keys), token=TOKEN)
        if not prof.ok:
            raise SystemExit(f"profiling the nets' blocks failed: {prof.to_dict()}")
        print(f"profiled {len(keys)} blocks of {len(mine)} {space} nets at r {list(resolutions)}", flush=True)
    print(f"profiled in {time.monotonic() - t0:.0f} s", flush=True)
    table: dict[str, float] = {}
    for space in dict.fromkeys(s for *_, s in nets):
        rows = store.rows(store.setting(f"nets-{space}"))
        table.update(zip(rows["block_key"], rows["median_ms"]))
    t0 = time.monotonic()
    paths, errors = {}, {}
    for name, cfg, r, _ in nets:
        paths[name] = folder / f"{name}.onnx"
        try:
            paths[name].write_bytes(export_net_config(cfg, r, "onnx"))
        except Exception as err:  # a net that does not export is counted and named, the rest go on
            errors[name] = f"export: {type(err).__name__}: {err}"
    export_s = time.monotonic() - t0
    t0 = time.monotonic()
    rounds: dict[str, list[float]] = {name: [] for name, *_ in nets}
    for _ in range(args.rounds):  # interleaved: a slow spell of the host touches every net alike
        for name, *_ in nets:
            if name not in errors:
                try:
                    rounds[name].append(lutnas_time(address, paths[name]))
                except RuntimeError as err:
                    errors[name] = f"lutnas time: {err}"
    time_s = time.monotonic() - t0
    results = []
    for name, _, r, space in nets:
        row = {"net": name, "space": space, "r": r, "blocks": len(blocks[name]),
               "lut_ms": float(sum(table[b.key] for b in blocks[name]))}
        if name in errors:
            row["error"] = errors[name]
        else:
            medians = np.asarray(rounds[name])
            row.update(measured_ms=float(np.median(medians)), first_ms=float(np.median(medians[0::2])),
                       repeat_ms=float(np.median(medians[1::2])))
        results.append(row)
    print(f"exported {len(nets)} nets in {export_s:.0f} s; {args.rounds} rounds of lutnas time in {time_s:.0f} s",
          flush=True)
    return results


def bench_family(store: LutStore, address: str, space: str, args: argparse.Namespace) -> dict:
    t0 = time.monotonic()
    prof = profile(store, [AgentRef(space, address)], ProfileSettings(space=space, resolutions=(args.resolution,)),
                   token=TOKEN)
    if not prof.ok:
        raise SystemExit(f"profiling {space} failed: {prof.to_dict()}")
    profile_s = time.monotonic() - t0
    t0 = time.monotonic()
    report = validate(store, space, address, ValidationSettings(
        samples=args.samples, rounds=args.rounds, seed=args.seed, space=space, resolutions=(args.resolution,),
        calibrate=True, pool=args.pool), token=TOKEN)
    measured = report.samples["measured_ms"]
    return {"space": space, "raw": report.raw, "calibrated": report.calibrated, "noise": report.noise,
            "calibration": report.calibration.describe() if report.calibration else None,
            "measured_ms": [float(measured.min()), float(measured.max())],
            "blocks": prof.devices[0].timed + prof.devices[0].skipped,
            "profile_s": profile_s, "validate_s": time.monotonic() - t0}


@contextlib.contextmanager
def per_subnet_pricing() -> Iterator[None]:
    """Every ResNet LUT (latency, MACs and parameter tables alike) prices one subnet at a time, as before."""
    gathered = BlockSumLut.components
    BlockSumLut.components = lambda self, batch: self.components_by_blocks(list(batch))  # type: ignore[method-assign]
    try:
        yield
    finally:
        BlockSumLut.components = gathered  # type: ignore[method-assign]


def bench_pricing(args: argparse.Namespace) -> dict:
    """ResNet50 pricing: the per-subnet path beside the gathered one, on the same subnets and search."""
    space = get_space("ofa-resnet50")
    t0 = time.perf_counter()
    # A synthetic LUT (each block priced from its multiply-adds plus an overhead): only timing matters here.
    table = {b.key: 2e-8 * block_macs(b) + 0.02 for b in space.unique_blocks(list(space.resolutions))}
    lut = CompiledLut.from_table(table, space, device="synthetic")
    compile_s = time.perf_counter() - t0
    rng = np.random.default_rng(args.seed)
    genome = genome_for(space)
    batch = genome.to_batch(genome.sample(args.pricing_subnets, rng))
    out: dict = {"subnets": len(batch), "blocks": len(table), "compile_s": compile_s}
    with per_subnet_pricing():
        t0 = time.perf_counter()
        slow = lut.predict_batch(batch)
        out["price_per_subnet_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    fast = lut.predict_batch(batch)
    out["price_gathered_s"] = time.perf_counter() - t0
    out["max_abs_diff_ms"] = float(np.abs(fast - slow).max())
    # A predictor fitted on synthetic accuracies (growing with the log of latency), a budget at 30% of the range.
    train = genome.to_batch(genome.sample(400, rng))
    acc = 70 + 3 * np.log(lut.predict_batch(train)) + rng.normal(0, 0.05, len(train))
    predictor = LutnasPredictor(space=space.name).fit([s.to_arch() for s in train], acc)
    lo, hi = lut.value_range()
    budget = lo + 0.3 * (hi - lo)
    settings = EvolutionSettings()
    for label, ctx in (("per_subnet", per_subnet_pricing()), ("gathered", contextlib.nullcontext())):
        with ctx:
            t0 = time.perf_counter()
            result = evolutionary_search(space, [latency_constraint("synthetic", lut, budget)], predictor, settings,
                                         random_state=args.seed)
            out[f"search_{label}_s"] = time.perf_counter() - t0
            out[f"search_{label}_accuracy"] = result.predicted_accuracy
            out[f"search_{label}_arch"] = result.arch
    out.update(budget_ms=budget, population=settings.population_size, generations=settings.generations)
    return out


def pricing_table(r: dict) -> str:
    same = "same best subnet" if r["search_per_subnet_arch"] == r["search_gathered_arch"] else "best subnets differ"
    rows = [(f"price {r['subnets']:,} random subnets", r["price_per_subnet_s"], r["price_gathered_s"]),
            (f"search (pop {r['population']}, {r['generations']} gen, {r['budget_ms']:.1f} ms)",
             r["search_per_subnet_s"], r["search_gathered_s"])]
    lines = [f"ofa-resnet50 pricing, synthetic LUT of {r['blocks']:,} blocks (compiled in {r['compile_s']:.2f} s)",
             f"{'':<44} {'per subnet':>11} {'gathered':>10} {'speed-up':>9}"]
    for label, before, after in rows:
        lines.append(f"{label:<44} {before:>10.3f}s {after:>9.3f}s {before / after:>8.1f}x")
    lines.append(f"largest price difference {r['max_abs_diff_ms']:.2e} ms; search best predicted accuracy "
                 f"{r['search_per_subnet_accuracy']:.3f} vs {r['search_gathered_accuracy']:.3f} ({same})")
    return "\n".join(lines)


def nets_table(results: list[dict]) -> str:
    lines = [f"{'net':<42} {'space':<19} {'r':>4} {'blocks':>6} {'LUT sum':>9} {'measured':>9} {'sum/meas':>8} "
             f"{'repeat':>7}"]
    timed = [n for n in results if "error" not in n]
    for n in results:
        if "error" in n:
            lines.append(f"{n['net']:<42} {n['space']:<19} {n['r']:>4} {n['blocks']:>6} {n['lut_ms']:>8.2f}  {n['error']}")
            continue
        noise = abs(n["first_ms"] - n["repeat_ms"]) / min(n["first_ms"], n["repeat_ms"]) * 100
        lines.append(f"{n['net']:<42} {n['space']:<19} {n['r']:>4} {n['blocks']:>6} {n['lut_ms']:>8.2f}  "
                     f"{n['measured_ms']:>8.2f}  {n['lut_ms'] / n['measured_ms']:>8.3f} {noise:>6.1f}%")
    lines.append(f"{len(timed)} of {len(results)} nets timed")
    for space in dict.fromkeys(n["space"] for n in timed):
        mine = [n for n in timed if n["space"] == space]
        m = fidelity_metrics(np.array([n["lut_ms"] for n in mine]), np.array([n["measured_ms"] for n in mine]))
        noise = repeat_noise(np.array([n["first_ms"] for n in mine]), np.array([n["repeat_ms"] for n in mine]))
        lines.append(f"{space} ({len(mine)} nets) raw LUT sums: RMSPE {m['rmspe']:.2f}%, MAPE {m['mape']:.2f}%, "
                     f"bias {m['bias']:+.1f}%, ±5% {m['within_5pct']:.0f}%, ±10% {m['within_10pct']:.0f}%; repeat "
                     f"noise median {noise['repeat_median']:.2f}% p90 {noise['repeat_p90']:.2f}%")
    return "\n".join(lines)


def family_table(results: list[dict], args: argparse.Namespace) -> str:
    lines = [f"{len(results) and args.samples} random subnets per family at r={args.resolution}, "
             f"{args.rounds} interleaved rounds",
             f"{'space':<20} {'fidelity':<22} {'RMSPE':>7} {'MAPE':>6} {'bias':>6} {'±5%':>5} {'±10%':>5}"]
    for r in results:
        for label, m in (("raw LUT sum", r["raw"]), ("calibrated (held-out)", r["calibrated"])):
            if m:
                lines.append(f"{r['space']:<20} {label:<22} {m['rmspe']:>6.2f}% {m['mape']:>5.2f}% {m['bias']:>+5.1f}% "
                             f"{m['within_5pct']:>4.0f}% {m['within_10pct']:>4.0f}%")
        n = r["noise"]
        lines.append(f"{r['space']:<20} repeat noise median {n['repeat_median']:.2f}% p90 {n['repeat_p90']:.2f}%; "
                     f"measured {r['measured_ms'][0]:.1f}-{r['measured_ms'][1]:.1f} ms; {r['blocks']} blocks; "
                     f"profile {r['profile_s']:.0f} s, validate {r['validate_s']:.0f} s")
        lines.append(f"{'':<20} calibration: {r['calibration']}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=128, help="resolution of the random subnets")
    parser.add_argument("--samples", type=int, default=30, help="random subnets per family")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved timing rounds (>= 2)")
    parser.add_argument("--pool", type=int, default=5000, help="random subnets the stratified draw picks from")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--specialized", type=Path, default=SHARED / "ofa" / "specialized")
    parser.add_argument("--skip-nets", action="store_true", help="skip the published nets")
    parser.add_argument("--all-nets", action="store_true",
                        help="all 50 published nets (MobileNetV3 too), not only the 16 ProxylessNAS ones")
    parser.add_argument("--families", default=",".join(FAMILIES), help="comma list (empty: none)")
    parser.add_argument("--db", type=Path, default=None, help="keep the LUT store here (default: a temp dir)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    parser.add_argument("--pricing", action="store_true", help="also time ResNet50 pricing (no agent)")
    parser.add_argument("--pricing-subnets", type=int, default=10_000, help="subnets the pricing check prices")
    args = parser.parse_args()
    out: dict = {}
    if args.pricing:
        out["pricing"] = bench_pricing(args)
        print(pricing_table(out["pricing"]), flush=True)
    families = [f for f in args.families.split(",") if f]
    if args.skip_nets and not families:
        if args.json:
            args.json.write_text(json.dumps(out, indent=1, default=float))
        return
    with tempfile.TemporaryDirectory(prefix="lutnas-families-") as tmp:
        db = args.db or Path(tmp) / "lut.db"
        with start_agent_process(token=TOKEN, extra_args=["--max-message-mb", MAX_MESSAGE_MB]) as agent, \
                LutStore(db) as store:
            if not args.skip_nets:
                t0 = time.monotonic()
                out["nets"] = bench_nets(store, agent.address, args, Path(tmp))
                print(nets_table(out["nets"]), flush=True)
                print(f"published nets: {time.monotonic() - t0:.0f} s in all", flush=True)
            out["families"] = []
            for space in families:
                out["families"].append(bench_family(store, agent.address, space, args))
                print(family_table(out["families"][-1:], args), flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=float))


if __name__ == "__main__":
    main()
