"""Progressive shrinking vs. sampling every subnet from the start, at the same training budget, on digits.

Both runs train the same supernet (the small-data preset: OFA-MobileNetV3 at width 0.25, kernels 3/5/7,
expand 3/4/6, depths 2/3/4) on scikit-learn's digits and spend the same number of subnet
forward/backward passes:

* **PS**: full network, then kernel {7,5}, {7,5,3}, depth {4,3}, {4,3,2}, expand {6,4}, {6,4,3},
  distilling from the full network (CE + λ·KD);
* **all-from-start**: every step samples subnets from the whole space, no teacher.

Afterwards the smallest, a middle and the largest subnet are extracted, their BN statistics
recalibrated, and their top-1 accuracy measured on the held-out 20%. Prints a table (and JSON with --json).

    python benchmarks/ps_bench.py            # a few minutes on 2 busy cores
    python benchmarks/ps_bench.py --quick    # smoke run, seconds
    python benchmarks/ps_bench.py --scaling  # steps/s of one shrinking phase on 1 and 2 processes (gloo)
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from supernet import (
    DIGITS_PRESET,
    OFAMobileNetV3,
    TrainConfig,
    evaluate_subnet,
    load_digits_dataset,
    progressive_shrinking_phases,
    sample_all_phases,
    split_dataset,
    train_supernet,
)


def _uniform(net: OFAMobileNetV3, ks: int, e: int, d: int, r: int) -> dict:
    choices = net.choices
    return {"ks": [ks] * choices.n_slots, "e": [e] * choices.n_slots, "d": [d] * choices.n_stages, "r": r}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--epochs", default=",".join(map(str, DIGITS_PRESET.epochs)), help="PS epochs per phase, in phase order"
    )
    parser.add_argument(
        "--resolutions", default=",".join(map(str, DIGITS_PRESET.resolutions)), help="training resolutions"
    )
    parser.add_argument("--batch-size", type=int, default=DIGITS_PRESET.batch_size)
    parser.add_argument("--ps-lr", type=float, default=DIGITS_PRESET.lr, help="peak LR of the shrinking phases")
    parser.add_argument("--baseline-lr", type=float, default=DIGITS_PRESET.lr, help="peak LR of the baseline")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds; results are averaged")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared host)")
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--scaling", action="store_true", help="steps/s with 1 and 2 processes instead")
    args = parser.parse_args(argv)
    if args.scaling:
        return _scaling(args)

    torch.set_num_threads(args.threads)
    epochs = [int(v) for v in args.epochs.split(",")]
    resolutions = tuple(int(v) for v in args.resolutions.split(","))
    seeds = [int(v) for v in args.seeds.split(",")]
    train, held = split_dataset(load_digits_dataset(), DIGITS_PRESET.holdout_fraction, DIGITS_PRESET.split_seed)
    if args.quick:
        train = train.subset(range(256))
        epochs = [1, 0, 0, 0, 0, 0, 1]
        resolutions = (8,)
    preset = DIGITS_PRESET
    net_kw = {"width_mult": preset.width_mult, "n_classes": train.n_classes}
    probe = OFAMobileNetV3(**net_kw)
    ks, e, d = probe.ks_list, probe.expand_ratio_list, probe.depth_list

    ps_phases = progressive_shrinking_phases(
        ks,
        e,
        d,
        epochs=epochs,
        lr=args.ps_lr,
        full_lr=preset.full_lr,
        subnets_per_step=preset.subnets_per_step,
        kd_ratio=preset.kd_ratio,
    )
    budget = sum(p.epochs * p.subnets_per_step for p in ps_phases)  # subnet passes, in epochs
    base_epochs, remainder = divmod(budget, preset.subnets_per_step)
    baseline_phases = sample_all_phases(
        ks, e, d, epochs=base_epochs + remainder, lr=args.baseline_lr, subnets_per_step=preset.subnets_per_step
    )
    r_eval = max(resolutions)
    probes = {
        "smallest": _uniform(probe, min(ks), min(e), min(d), r_eval),
        "middle": _uniform(probe, sorted(ks)[len(ks) // 2], sorted(e)[len(e) // 2], sorted(d)[len(d) // 2], r_eval),
        "largest": _uniform(probe, max(ks), max(e), max(d), r_eval),
    }

    rows: dict[str, dict[str, list[float]]] = {}
    for method, phases in (("progressive shrinking", ps_phases), ("all subnets from start", baseline_phases)):
        for seed in seeds:
            net = OFAMobileNetV3(**net_kw)
            config = TrainConfig(phases=tuple(phases), resolutions=resolutions, batch_size=args.batch_size, seed=seed)
            started = time.perf_counter()
            train_supernet(net, train, config)
            seconds = time.perf_counter() - started
            row = rows.setdefault(method, {"seconds": []})
            row["seconds"].append(seconds)
            for name, arch in probes.items():
                acc = evaluate_subnet(net, arch, train, held, calib_images=512, seed=seed).accuracy
                row.setdefault(name, []).append(acc)
            print(f"{method} seed {seed}: {seconds:.0f}s", file=sys.stderr, flush=True)

    summary = {
        "budget_subnet_epochs": budget,
        "resolution_eval": r_eval,
        "train_images": len(train),
        "held_out_images": len(held),
        "seeds": seeds,
        "results": {m: {k: sum(v) / len(v) for k, v in row.items()} for m, row in rows.items()},
        "probes": probes,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(
        f"digits, {len(train)} train / {len(held)} held-out images, budget {budget} subnet-epochs, "
        f"eval at r={r_eval}, seeds {seeds}; top-1 % after BN recalibration"
    )
    header = f"{'method':<24} {'smallest':>9} {'middle':>9} {'largest':>9} {'train s':>8}"
    print(header)
    print("-" * len(header))
    for method, result in summary["results"].items():
        print(
            f"{method:<24} {result['smallest']:>9.1f} {result['middle']:>9.1f} {result['largest']:>9.1f} "
            f"{result['seconds']:>8.0f}"
        )
    return 0


def _scaling(args: argparse.Namespace) -> int:
    # One kernel phase (two subnets per step, KD off) on the preset's supernet, the same global batch and
    # steps for 1 and 2 processes; steps/s from the phase's own seconds (process start-up excluded).
    from supernet.jobs import DataSpec, TrainJob, run_job, run_train_job
    from supernet.train import Phase

    preset = DIGITS_PRESET
    net = OFAMobileNetV3(width_mult=preset.width_mult, n_classes=10)
    phase = Phase("kernel", ks=(7, 5, 3), e=(6,), d=(4,), epochs=1, lr=0.05, subnets_per_step=2, kd_ratio=0.0)
    resolutions = tuple(int(v) for v in args.resolutions.split(","))
    config = TrainConfig(phases=(phase,), resolutions=resolutions, batch_size=args.batch_size)
    data = DataSpec("digits", preset.image_size, preset.holdout_fraction, preset.split_seed)
    rows = []
    import tempfile

    for nproc in (1, 2):
        with tempfile.TemporaryDirectory() as out:
            job = TrainJob(net.config, data, config, out, validate=False, threads=args.threads)
            result = run_job(run_train_job, job, nproc)
        steps = len(data.load()[0]) // args.batch_size
        rows.append((nproc, steps, result.phases[0]["seconds"]))
    base = rows[0][1] / rows[0][2]
    print(f"progressive-shrinking steps/s, digits, width {preset.width_mult}, global batch {args.batch_size}, "
          f"r {resolutions}, {args.threads} thread(s) per process, gloo")
    print(f"{'processes':>9} {'steps':>6} {'seconds':>8} {'steps/s':>8} {'vs 1':>6}")
    for nproc, steps, seconds in rows:
        print(f"{nproc:>9} {steps:>6} {seconds:>8.1f} {steps / seconds:>8.2f} {steps / seconds / base:>6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
