"""Few-shot LUT transfer (lut.transfer) beside the best-single-proxy baseline.

Run: ``python benchmarks/transfer_bench.py --part b`` (HELP's data, no device needed) or
``--part a --db FULL.db [FULL2.db ...] [--retest-db OTHER.db ...]`` (fully profiled LUTs of settings made on this machine,
one per setting: ``lutnas profile`` with a local agent, once; the store is reused) or
``--part c --setting S --lut-db FEW.db FULL.db --runs-db FEW.db [FULL.db]`` (stores a user made with ``lutnas profile``,
``--few-shot`` or not, and ``lutnas validate``).

(a) Every full LUT in ``--db`` is held out in turn, the others are its sources. K blocks are picked by
    ``lut.transfer.plan_few_shot`` and taken from the held-out LUT (as a profile would time them); the
    rest is predicted. Over 1,000 random subnets: Spearman of predicted vs fully profiled subnet sums
    and the share within ±10%, beside the baseline (the best single source scaled by a linear fit on
    the same K blocks). Given several stores in ``--db`` (the same settings profiled several times), each
    block's latency is its lowest median over them, as ``lutnas profile --rounds N`` keeps: timing on a
    shared host only ever adds time, so the lowest of time-separated readings is the least disturbed
    one. The ceiling rows give the fit every block of the held-out LUT: what its own
    disagreement with the sources (timing noise included) leaves for any K. With ``--retest-db`` (the
    same settings profiled again, e.g. later the same day) each prediction is also scored against the
    other run's full profile, which shares no timing with the K blocks; the "full re-profile" row
    scores one full profile against the other, the agreement two full profiles of a setting reach on
    the host (no prediction scored against a re-profile can expect more).
(b) HELP's 5,000 OFA-MobileNetV3 subnets timed end to end on 12 GPU settings: leave one setting out,
    measure 10 subnets (picked by ``select_items``, spread over resolutions and source disagreement),
    predict the other 4,990 from the other 11 settings; Spearman over all 5,000, beside the baseline
    on the same 10 subnets. Three ceilings, fitted to 2,500 subnets of the target itself and scored on
    the other 2,500: a linear model on the lutnas encoding (no sources), one on the encoding plus every
    source's log latency (the transfer's own model family with 250x the data), and gradient-boosted
    trees on the encoding plus every source's latency. They bound what these measurements allow at all: the
    rest is the target's own timing noise (batch-1 GPU latencies carry much of it), which neither
    2,500 of its own subnets nor any transfer can predict. "order lag-1" is the lag-1 autocorrelation
    of the linear ceiling's residuals in the data's subnet order: high where the device's speed
    drifted while consecutive subnets were timed.
(c) The check that matters to a user: each store's LUT of one setting (a few-shot one, a full profile,
    an older profile) priced against whole networks the device ran end to end, as stored by
    ``lutnas validate`` (the newest run of the setting in each ``--runs-db`` store). Raw LUT sums,
    no calibration; the validate run's own repeat noise is what no LUT can beat.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.ensemble import HistGradientBoostingRegressor

from lut import LutStore
from lut.errors import LutError
from lut.transfer import (
    TransferModel,
    best_proxy,
    block_descriptors,
    plan_few_shot,
    predicted_rows,
    select_items,
    transfer_table,
)
from search.encoding import get_encoding
from space import SubnetBatch, get_space

# ../shared/data beside the checkout (or beside any folder above it, for worktrees)
HELP = next((p / "shared" / "data" / "help" / "ofa_latency_5000.json" for p in Path(__file__).resolve().parents
             if (p / "shared" / "data" / "help").is_dir()), Path("ofa_latency_5000.json"))


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    return float(spearmanr(a, b)[0])


def _lag1(residuals: np.ndarray) -> float:
    """Lag-1 autocorrelation of a fit's residuals in the data's subnet order: near 0 for independent
    timing noise, high when the device's speed wandered while consecutive subnets were timed (a drift
    that no architecture-based prediction can follow)."""
    return float(np.corrcoef(residuals[:-1], residuals[1:])[0, 1])


def part_b(path: Path, k: int, seed: int) -> pd.DataFrame:
    data = json.loads(path.read_text())
    lat = pd.DataFrame(data["latency_ms"])
    space = get_space("ofa-mbv3-w1.2")
    batch = SubnetBatch.from_subnets([space.validate(a) for a in data["archs"]])
    feats = get_encoding("lutnas", space)(batch).astype(np.float64)
    feats = feats[:, feats.std(axis=0) > 0]
    r_bin = pd.DataFrame({"r": np.asarray(batch.r) // 16})
    half = np.random.default_rng(seed).permutation(len(lat))
    train, test = half[: len(lat) // 2], half[len(lat) // 2:]
    rows = []
    for target in lat.columns:
        y = lat[target].to_numpy()
        src = lat.drop(columns=target).to_numpy()
        picked = select_items(src, feats, k, r_bin, random_state=seed)
        y_obs = np.full(len(y), np.nan)
        y_obs[picked] = y[picked]
        start = time.perf_counter()
        model = TransferModel(n_sources=src.shape[1]).fit(np.hstack([src, feats]), y_obs)
        ours = model.predict(np.hstack([src, feats]))
        fit_s = time.perf_counter() - start
        base, chosen = best_proxy(src, picked, y[picked])
        A = np.column_stack([feats, np.ones(len(y))])
        coef, *_ = np.linalg.lstsq(A[train], np.log(y[train]), rcond=None)
        both = np.hstack([np.log(src), feats])
        B = np.column_stack([both, np.ones(len(y))])
        coef_both, *_ = np.linalg.lstsq(B[train], np.log(y[train]), rcond=None)
        trees = HistGradientBoostingRegressor(max_iter=400, learning_rate=0.05, random_state=seed)
        trees.fit(both[train], np.log(y[train]))
        rows.append({
            "setting": target, "batch": int(target.rsplit("_", 1)[1]),
            "transfer": _spearman(ours, y), "best proxy": _spearman(base, y),
            "proxy source": lat.columns.drop(target)[chosen], "candidate": model.model_,
            "CV err %": 100 * model.cv_error_, "ceiling": _spearman(A[test] @ coef, y[test]),
            "ceiling +sources": _spearman(B[test] @ coef_both, y[test]),
            "ceiling trees": _spearman(trees.predict(both[test]), y[test]),
            "order lag-1": _lag1(np.log(y) - A @ coef), "fit s": fit_s,
        })
    return pd.DataFrame(rows)


def _sums(table: dict[str, float], space, batch: SubnetBatch) -> np.ndarray:
    from lut import CompiledLut

    return CompiledLut.from_table(table, space).predict_batch(batch, calibrated=False)


def _full_tables(dbs: list[Path], keys: list[str]) -> dict[str, dict[str, float]]:
    """``{setting description: {key: ms}}`` of every setting that has all ``keys`` in every store of ``dbs``;
    over several stores, each key's lowest median (what ``lutnas profile --rounds N`` keeps of N rounds)."""
    per_store = []
    for db in dbs:
        with LutStore(db) as store:
            tables = {}
            for s in store.settings():
                table = store.table(s.id)
                if all(k in table for k in keys):
                    tables[s.setting.describe()] = {k: table[k] for k in keys}
        per_store.append(tables)
    common = [n for n in per_store[0] if all(n in t for t in per_store[1:])]
    return {n: {k: min(t[n][k] for t in per_store) for k in keys} for n in common}


def _score(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    return {"spearman": _spearman(pred, truth), "within 10%": 100 * float(np.mean(np.abs(pred / truth - 1) <= 0.10))}


def _held_out(target: str, tables: dict[str, dict[str, float]], truths: dict[str, np.ndarray], ks: list[int],
              space, resolutions: tuple[int, ...], batch: SubnetBatch, seed: int) -> list[dict]:
    """Rows for one held-out setting: the ceiling, then transfer and best proxy at each K, each scored
    against every reference in ``truths`` (``{reference name: subnet sums}``).

    Everything the predictions see (sources, the K timed blocks) comes from ``tables`` and is fitted
    once; a reference may be the same profile's subnet sums or an independent re-profile's.
    """
    blocks = space.unique_blocks(list(resolutions))
    keys = [b.key for b in blocks]
    full = tables[target]
    sources = {n: t for n, t in tables.items() if n != target}
    src = np.array([[t[k] for t in sources.values()] for k in keys])
    # The ceiling: every block of the held-out LUT given to the fit. What is left is the held-out LUT's
    # own disagreement with its sources (timing noise included), which no K can remove.
    X = np.hstack([src, block_descriptors(blocks).to_numpy()])
    y = np.array([full[key] for key in keys])
    fitted = TransferModel(n_sources=src.shape[1], max_cv_error=10.0).fit(X, y).predict(X)
    predictions = [({"K": len(keys), "method": "ceiling (all blocks)"}, _sums(dict(zip(keys, fitted)), space, batch))]
    for k in ks:
        picked = plan_few_shot(sources, space, resolutions, k, random_state=seed)
        measured = {key: full[key] for key in picked}
        result = transfer_table(sources, measured, space, resolutions, max_cv_error=10.0)
        ours = _sums({**result.predicted_ms, **measured}, space, batch)
        idx = np.array([keys.index(key) for key in picked])
        base_all, _ = best_proxy(src, idx, np.array([full[key] for key in picked]))
        base = _sums({**dict(zip(keys, np.maximum(base_all, 0.0))), **measured}, space, batch)
        predictions.append(({"K": k, "method": "transfer", "CV err %": 100 * result.cv_error}, ours))
        predictions.append(({"K": k, "method": "best proxy"}, base))
    return [{"reference": reference, **row, **_score(pred, truth)}
            for reference, truth in truths.items() for row, pred in predictions]


def part_a(db: list[Path], ks: list[int], n_subnets: int, seed: int, space_name: str,
           resolutions: tuple[int, ...], retest: list[Path] | None = None) -> pd.DataFrame:
    """Rows per (held-out setting, reference, K, method).

    ``db``: one store, or several profiles of the same settings (each block's lowest median is kept).
    Without ``retest`` the reference is the held-out setting's own full profile (which also supplied
    the K timed blocks). With it, each setting profiled in both stores is also scored against the
    *other* store's profile, in both directions: the K blocks and sources come from one profiling
    run, the reference from an independent one. The "re-profile" row then scores one full profile
    against the other: how far two full profiles of the same setting on this host agree, which no
    transfer scored against a re-profile can beat.
    """
    space = get_space(space_name)
    keys = [b.key for b in space.unique_blocks(list(resolutions))]
    runs = {"run 1": _full_tables(db, keys)}
    if retest is not None:
        runs["run 2"] = _full_tables(retest, keys)
    for name, tables in runs.items():
        if len(tables) < 2:
            raise SystemExit(f"{name} holds {len(tables)} full LUT(s) of {space_name} at {resolutions}; need >= 2")
    batch = space.sample(n_subnets, np.random.default_rng(seed), resolutions=resolutions)
    sums = {name: {n: _sums(t, space, batch) for n, t in tables.items()} for name, tables in runs.items()}
    rows = []
    for source_run, tables in runs.items():
        other = next((r for r in runs if r != source_run), None)
        for target in tables:
            # the run's own profile (only for run 1: run 2 scored against itself repeats the same question)
            truths = {"same profile": sums[source_run][target]} if source_run == "run 1" else {}
            if other is not None and target in runs[other]:
                truths["re-profile"] = sums[other][target]
            if not truths:
                continue
            base = {"held out": target, "blocks from": source_run}
            rows += [{**base, **row}
                     for row in _held_out(target, tables, truths, ks, space, resolutions, batch, seed)]
            if "re-profile" in truths:
                rows.append({**base, "reference": "re-profile", "K": len(keys), "method": "full re-profile",
                             **_score(sums[source_run][target], truths["re-profile"])})
    return pd.DataFrame(rows)


def _print_part_a(frame: pd.DataFrame, n_subnets: int) -> None:
    print(f"(a) held out in turn, {n_subnets} random subnets, subnet sums vs a full profile of the held-out setting")
    for reference, part in frame.groupby("reference", sort=False):
        print(f"\nreference: {reference}" + (" (both directions averaged)" if reference == "re-profile" else ""))
        per_setting = part.pivot_table(index=["held out", "K"], columns="method", values=["spearman", "within 10%"])
        print(per_setting.to_string(float_format=lambda v: f"{v:.3f}"))
        per_k = part.pivot_table(index="K", columns="method", values=["spearman", "within 10%"])
        print("mean over held-out settings")
        print(per_k.to_string(float_format=lambda v: f"{v:.3f}"))


def part_c(lut_dbs: list[Path], run_dbs: list[Path], setting: str, space_name: str) -> pd.DataFrame:
    """Every LUT of ``setting`` in ``lut_dbs`` scored against the end-to-end timings of the newest
    ``lutnas validate`` run of that setting in each of ``run_dbs`` (raw LUT sums, no calibration).

    A LUT's real test: whole networks timed on the device. One row per (LUT, run).
    """
    space = get_space(space_name)
    runs = {}
    for db in run_dbs:
        with LutStore(db) as store:
            stored = store.setting(setting)
            listed = store.validation_runs(stored)
            if listed.empty:
                raise SystemExit(f"{db} has no validation run of {stored.describe()}; run lutnas validate first")
            samples = store.validation_samples(int(listed["id"].iloc[-1]))
            runs[f"{db.name} run {int(listed['id'].iloc[-1])}"] = (
                SubnetBatch.from_subnets([space.validate(a) for a in samples["arch"]]), samples["measured_ms"].to_numpy())
    rows = []
    for db in lut_dbs:
        with LutStore(db) as store:
            stored = store.setting(setting)
            table, predicted = store.table(stored.id), predicted_rows(store, stored)
        for run, (batch, measured) in runs.items():
            sums = _sums(table, space, batch)
            ratio = sums / measured
            rows.append({"LUT": db.name, "rows predicted": 0 if predicted is None else predicted.predicted,
                         "end-to-end run": run, "subnets": len(measured), **_score(sums, measured),
                         "within 5%": 100 * float(np.mean(np.abs(ratio - 1) <= 0.05)),
                         "median bias %": 100 * float(np.median(ratio) - 1)})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("a", "b", "c", "all"), default="b")
    parser.add_argument("--help-data", type=Path, default=HELP)
    parser.add_argument("--k", type=int, default=10, help="measured subnets in part b")
    parser.add_argument("--db", type=Path, nargs="+",
                        help="part a: a store of fully profiled settings; several: the same settings profiled again, "
                             "each block's lowest median is kept (as profile --rounds does)")
    parser.add_argument("--retest-db", type=Path, nargs="+",
                        help="part a: another profile of the same settings (an independent reference); several: "
                             "each block's lowest median, as for --db")
    parser.add_argument("--ks", default="5,10,20,40", help="part a: measured blocks")
    parser.add_argument("--lut-db", type=Path, nargs="+", help="part c: stores holding a LUT of --setting each "
                                                               "(e.g. a few-shot one and a full profile)")
    parser.add_argument("--runs-db", type=Path, nargs="+", help="part c: stores holding lutnas validate runs of "
                                                                "--setting (the newest of each is used)")
    parser.add_argument("--setting", help="part c: the device setting, as lutnas names it (e.g. host:tflite:int8:threads=1)")
    parser.add_argument("--space", default="ofa-mbv3-w1.2")
    parser.add_argument("--resolutions", default="160,192,224")
    parser.add_argument("--subnets", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 20)
    if args.part in ("b", "all"):
        frame = part_b(args.help_data, args.k, args.seed)
        print(f"(b) HELP, leave one setting out, {args.k} measured subnets, Spearman over 5,000 subnets")
        print(frame.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        b1 = frame[frame["batch"] == 1]
        print(f"mean: transfer {frame['transfer'].mean():.3f}, best proxy {frame['best proxy'].mean():.3f}, "
              f"ceiling {frame['ceiling'].mean():.3f} (+sources {frame['ceiling +sources'].mean():.3f}, "
              f"trees {frame['ceiling trees'].mean():.3f}); "
              f"batch 1: transfer {b1['transfer'].mean():.3f}, best proxy {b1['best proxy'].mean():.3f}, "
              f"ceiling {b1['ceiling'].mean():.3f} (+sources {b1['ceiling +sources'].mean():.3f}, "
              f"trees {b1['ceiling trees'].mean():.3f})")
    if args.part in ("a", "all"):
        if args.db is None:
            raise SystemExit("--part a needs --db (a store of fully profiled settings)")
        res = tuple(int(r) for r in args.resolutions.split(","))
        frame = part_a(args.db, [int(k) for k in args.ks.split(",")], args.subnets, args.seed, args.space, res,
                       retest=args.retest_db)
        _print_part_a(frame, args.subnets)
    if args.part == "c":
        if not (args.lut_db and args.runs_db and args.setting):
            raise SystemExit("--part c needs --lut-db, --runs-db and --setting")
        try:
            frame = part_c(args.lut_db, args.runs_db, args.setting, args.space)
        except LutError as err:  # a store without the setting, or naming it ambiguously
            raise SystemExit(str(err)) from err
        print(f"(c) LUTs of {args.setting} vs whole networks timed end to end (lutnas validate), raw sums")
        print(frame.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
