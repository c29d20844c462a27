"""ProxylessNAS and ResNet50 on this machine: OFA's published ProxylessNAS nets, and LUT fidelity per family.

Starts a local agent (onnxruntime, 1 thread) and runs two checks.

1. The 16 published ProxylessNAS nets (``../shared/data/ofa/specialized/*/net.config`` whose ``name`` is
   ProxylessNASNets): their blocks are profiled at each net's run.config resolution, each net is priced from
   the LUT (the sum of its blocks), exported to ONNX and timed end to end ``--rounds`` times, interleaved.
   Prints LUT sum vs measured per net, as ``lutnas validate`` does, with each net's repeat noise.
2. Per family (``ofa-proxyless-w1.3``, ``ofa-resnet50``): every block at ``--resolution`` is profiled, then
   ``--samples`` random subnets (stratified over the predicted range) are timed whole, and the raw and the
   calibrated (held-out) fidelity are printed beside the host's repeat noise.
3. With ``--pricing`` (no agent, CPU only): ResNet50 pricing on a synthetic LUT of every resolution of the
   space, the per-subnet path (decompose each subnet into blocks, sum by key: how a ResNet LUT priced before
   its gather tables) beside the gathered one in the same run: pricing ``--pricing-subnets`` random subnets,
   and a default-size evolutionary search (population 100, 500 generations) under a latency budget.

    python benchmarks/families_bench.py [--resolution 128] [--samples 30] [--rounds 4] [--skip-nets]
    python benchmarks/families_bench.py --pricing --skip-nets --families ''
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from agent.testing import start_agent_process
from lut import LutStore
from lut.blocksum import BlockSumLut
from lut.calibration import fidelity_metrics
from lut.predict import CompiledLut
from profiler.agents import time_model_file
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
MAX_MESSAGE_MB = "256"  # a whole ResNet50 at fp32 is up to ~140 MB


def proxyless_nets(root: Path) -> list[tuple[str, Path, int]]:
    """(name, net.config, run.config resolution) of every published ProxylessNAS net under ``root``."""
    out = []
    for cfg in sorted(root.glob("*/net.config")):
        if json.loads(cfg.read_text()).get("name") == "ProxylessNASNets":
            out.append((cfg.parent.name, cfg, int(json.loads((cfg.parent / "run.config").read_text())["image_size"])))
    return out


def bench_nets(store: LutStore, address: str, args: argparse.Namespace, folder: Path) -> list[dict]:
    nets = proxyless_nets(args.specialized)
    blocks = {name: read_net_config(cfg, resolution=r) for name, cfg, r in nets}
    keys = tuple(dict.fromkeys(b.key for bl in blocks.values() for b in bl))
    resolutions = tuple(sorted({r for _, _, r in nets}))
    t0 = time.monotonic()
    prof = profile(store, [AgentRef("nets", address)], ProfileSettings(space=PROXYLESS, resolutions=resolutions,
                                                                       only_keys=keys), token=TOKEN)
    if not prof.ok:
        raise SystemExit(f"profiling the nets' blocks failed: {prof.to_dict()}")
    print(f"profiled {len(keys)} blocks of {len(nets)} nets at r {list(resolutions)} in {time.monotonic() - t0:.0f} s")
    rows = store.rows(store.setting("nets"))
    table = dict(zip(rows["block_key"], rows["median_ms"]))
    paths = {}
    for name, cfg, r in nets:
        paths[name] = folder / f"{name}.onnx"
        paths[name].write_bytes(export_net_config(cfg, r, "onnx"))
    rounds: dict[str, list[float]] = {name: [] for name, _, _ in nets}
    for _ in range(args.rounds):  # interleaved: a slow spell of the host touches every net alike
        for name, _, _ in nets:
            report = time_model_file(f"local={address}", paths[name], token=TOKEN)
            rounds[name].append(float(report.doc["median_ms"]))
    results = []
    for name, _, r in nets:
        medians = np.asarray(rounds[name])
        results.append({"net": name, "r": r, "blocks": len(blocks[name]),
                        "lut_ms": float(sum(table[b.key] for b in blocks[name])),
                        "measured_ms": float(np.median(medians)), "first_ms": float(np.median(medians[0::2])),
                        "repeat_ms": float(np.median(medians[1::2]))})
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
    lines = [f"{'net':<42} {'r':>4} {'blocks':>6} {'LUT sum':>9} {'measured':>9} {'sum/meas':>8} {'repeat':>7}"]
    for n in results:
        noise = abs(n["first_ms"] - n["repeat_ms"]) / min(n["first_ms"], n["repeat_ms"]) * 100
        lines.append(f"{n['net']:<42} {n['r']:>4} {n['blocks']:>6} {n['lut_ms']:>8.2f}  {n['measured_ms']:>8.2f}  "
                     f"{n['lut_ms'] / n['measured_ms']:>8.3f} {noise:>6.1f}%")
    lut = np.array([n["lut_ms"] for n in results])
    measured = np.array([n["measured_ms"] for n in results])
    m = fidelity_metrics(lut, measured)
    noise = repeat_noise(np.array([n["first_ms"] for n in results]), np.array([n["repeat_ms"] for n in results]))
    lines.append(f"raw LUT sums: RMSPE {m['rmspe']:.2f}%, MAPE {m['mape']:.2f}%, bias {m['bias']:+.1f}%, "
                 f"±5% {m['within_5pct']:.0f}%, ±10% {m['within_10pct']:.0f}%; repeat noise median "
                 f"{noise['repeat_median']:.2f}% p90 {noise['repeat_p90']:.2f}%")
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
                out["nets"] = bench_nets(store, agent.address, args, Path(tmp))
                print(nets_table(out["nets"]), flush=True)
            out["families"] = []
            for space in families:
                out["families"].append(bench_family(store, agent.address, space, args))
                print(family_table(out["families"][-1:], args), flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=float))


if __name__ == "__main__":
    main()
