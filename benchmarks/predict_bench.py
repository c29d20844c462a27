"""Subnet latency prediction throughput: the vectorized CompiledLut vs plain per-subnet Python loops.

Run: ``python benchmarks/predict_bench.py [--lut PATH] [--n 1000000]``. Uses the nsganetv2 i7 LUT
(41 resolutions, ofa-mbv3-w1.0) from ../shared/data when present, else a synthetic table over the
space's resolutions. Prints one table; the target is >= 1,000,000 predictions/s for the vectorized path.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from lut import CompiledLut, fit_calibration, read_rows, subnet_features
from space import get_space

DEFAULT_LUT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nsganetv2" / "i7-8700K_lut.yaml"


def _table(path: Path | None, space) -> tuple[dict[str, float], str]:
    if path is not None and path.is_file():
        return {key: stats["median_ms"] for key, stats, _ in read_rows([path])}, path.name
    rng = np.random.default_rng(0)
    return {b.key: float(rng.uniform(0.05, 2.0)) for b in space.unique_blocks(list(space.resolutions))}, "synthetic"


def _rate(fn, n: int, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return n / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lut", type=Path, default=DEFAULT_LUT)
    parser.add_argument("--space", default="ofa-mbv3-w1.0")
    parser.add_argument("--n", type=int, default=1_000_000, help="population size for the vectorized path")
    args = parser.parse_args()

    space = get_space(args.space)
    table, source = _table(args.lut, space)
    start = time.perf_counter()
    compiled = CompiledLut.from_table(table, space)
    compile_s = time.perf_counter() - start
    rng = np.random.default_rng(0)
    big = space.sample(args.n, rng, resolutions=compiled.resolutions)
    small = big.take(np.arange(2_000))
    mid = big.take(np.arange(20_000))

    # Baseline 1: what a user writes first: decompose each subnet, look every key up in the dict.
    def dict_loop() -> list[float]:
        return [sum(table[b.key] for b in space.blocks(small[i])) for i in range(len(small))]

    # Baseline 2: a tuned Python loop: keys precomputed per (resolution, slot, kernel, expand).
    slot_ms = {}
    for r in compiled.resolutions:
        sides = space.stage_input_sides(r)
        for stage, in_side in enumerate(sides):
            for j in range(space.max_depth):
                side = in_side if j == 0 else (in_side - 1) // space.stage_strides[stage] + 1
                for k in space.ks_choices:
                    for e in space.expand_choices:
                        slot_ms[r, stage * space.max_depth + j, k, e] = table[
                            space.slot_block(stage, j, side, k, e).key
                        ]
    fixed_ms = {r: sum(compiled.fixed_components(r).values()) for r in compiled.resolutions}
    archs = [(list(mid.ks[i]), list(mid.e[i]), list(mid.d[i]), int(mid.r[i])) for i in range(len(mid))]

    def tuned_loop() -> list[float]:
        out = []
        for ks, e, d, r in archs:
            total = fixed_ms[r]
            for stage in range(5):
                for j in range(d[stage]):
                    slot = stage * 4 + j
                    total += slot_ms[r, slot, ks[slot], e[slot]]
            out.append(total)
        return out

    ref = np.array(dict_loop())
    assert np.allclose(compiled.predict_batch(small), ref, rtol=1e-12), "vectorized != dict loop"
    assert np.allclose(np.array(tuned_loop())[:2000], ref, rtol=1e-12), "tuned loop != dict loop"
    feats = subnet_features(compiled, small)
    calibrated = compiled.with_calibration(fit_calibration(feats, 1.5 + 0.9 * feats.raw_ms, models=["per_stage"]))

    rows = [
        ("dict loop (space.blocks + key lookups)", len(small), _rate(dict_loop, len(small), 1)),
        ("python loop, precomputed slot table", len(mid), _rate(tuned_loop, len(mid), 1)),
        (
            "CompiledLut.predict_batch, n=1,000",
            1_000,
            _rate(lambda: compiled.predict_batch(small.take(np.arange(1000))), 1_000),
        ),
        (f"CompiledLut.predict_batch, n={len(mid):,}", len(mid), _rate(lambda: compiled.predict_batch(mid), len(mid))),
        (f"CompiledLut.predict_batch, n={len(big):,}", len(big), _rate(lambda: compiled.predict_batch(big), len(big))),
        (f"  calibrated (per_stage), n={len(big):,}", len(big), _rate(lambda: calibrated.predict_batch(big), len(big))),
    ]
    base = rows[0][2]
    print(
        f"LUT: {source} ({len(table)} rows), space {space.name}, {len(compiled.resolutions)} resolutions, "
        f"compiled in {1000 * compile_s:.0f} ms"
    )
    print(f"{'path':<44} {'subnets':>10} {'subnets/s':>14} {'vs dict loop':>13}")
    for name, n, rate in rows:
        print(f"{name:<44} {n:>10,} {rate:>14,.0f} {rate / base:>12,.0f}x")
    target = rows[4][2]
    print(f"target >= 1,000,000 subnets/s on n={len(big):,}: {'met' if target >= 1e6 else 'NOT met'} ({target:,.0f}/s)")


if __name__ == "__main__":
    main()
