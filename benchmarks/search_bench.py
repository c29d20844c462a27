"""Search speed: OFA's EvolutionFinder beside lutnas's vectorized search.

All run OFA's default search (population 100, 500 generations, parents 25%, mutation 50%,
mutate probability 0.1) with the same Note10 LUT, the same OFA accuracy predictor and the
same seeds. Two baselines:

* ``ofa-tutorial``: the search done the way OFA's tutorial EvolutionFinder does it, operation
  for operation: subnets are dicts deep-copied for every try, each latency is a sum of
  per-block lookups whose key strings are built from shape lists, and each generation's
  predictor call deep-copies every subnet's genes and one-hot encodes it into its own tensor
  before one MLP forward pass. This is the baseline the speed target is stated against.
* ``lean-loop``: the same algorithm written as a lean Python loop (f-string keys, one copy per
  mutation try, one tensor per predictor call): what a careful hand-written loop costs.

lutnas runs twice: OFA's rules (the default) and ``distinct_parents=True``.

    python benchmarks/search_bench.py [--budgets 15,20,25,30] [--seeds 0,1,2] [--quick]
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lut import CompiledLut, read_ofa_yaml
from search import (
    EvolutionSettings,
    evolutionary_search,
    latency_constraint,
    load_ofa_predictor,
)
from space import get_space

DATA = Path("/work/shared/data") if not (ROOT.parent / "shared" / "data").is_dir() else ROOT.parent / "shared" / "data"
NOTE10 = sorted((DATA / "ofa" / "note10").glob("*_lookup_table.yaml"))
OFA_WEIGHTS = DATA / "ofa" / "acc_predictor.pth"
RESOLUTIONS = (160, 176, 192, 208, 224)


class DictLatencyTable:
    """Per-block latency by key string, one dict per resolution (OFA's tutorial LatencyTable)."""

    def __init__(self, files: list[Path]) -> None:
        self.tables = {}
        for f in files:
            r = int(f.name.split("_")[0])
            with f.open() as fh:
                self.tables[r] = yaml.safe_load(fh)
        sp = get_space("ofa-mbv3-w1.2")
        self.stage_chs, self.strides = sp.stage_chs, sp.stage_strides
        self.se, self.acts = sp.stage_se, sp.stage_acts
        self.first, self.final, self.mix = sp.first_conv_chs, sp.final_expand_chs, sp.feature_mix_chs

    def _q(self, lut: dict, key: str) -> float:
        return lut[key]["mean"]

    def predict_efficiency(self, spec: dict) -> float:
        r = spec["r"][0]
        lut = self.tables[r]
        side = (r + 1) // 2
        total = self._q(lut, f"Conv-input:{r}x{r}x3-output:{side}x{side}x{self.first}")
        total += self._q(
            lut,
            f"expanded_conv-input:{side}x{side}x{self.first}-output:{side}x{side}x{self.first}"
            f"-expand:{self.first}-kernel:3-stride:1-idskip:1-se:0-hs:0",
        )
        cin = self.first
        for stage in range(5):
            cout = self.stage_chs[stage]
            for j in range(spec["d"][stage]):
                i = stage * 4 + j
                stride = self.strides[stage] if j == 0 else 1
                out_side = (side - 1) // stride + 1
                mid = round(cin * spec["e"][i])
                key = (
                    f"expanded_conv-input:{side}x{side}x{cin}-output:{out_side}x{out_side}x{cout}"
                    f"-expand:{mid}-kernel:{spec['ks'][i]}-stride:{stride}-idskip:{int(j > 0)}"
                    f"-se:{int(self.se[stage])}-hs:{int(self.acts[stage] == 'h_swish')}"
                )
                total += self._q(lut, key)
                side, cin = out_side, cout
        total += self._q(lut, f"Conv_1-input:{side}x{side}x{cin}-output:{side}x{side}x{self.final}")
        total += self._q(lut, f"AvgPool2D-input:{side}x{side}x{self.final}-output:1x1x{self.final}")
        total += self._q(lut, f"Conv_2-input:1x1x{self.final}-output:1x1x{self.mix}")
        total += self._q(lut, f"Logits-input:1x1x{self.mix}-output:1000")
        return total


class LoopPredictor:
    """OFA's predictor called the way OFA's finder calls it: Python one-hots, one forward per call."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.module = module

    @staticmethod
    def spec2feats(spec: dict) -> list[float]:
        ks, ex = list(spec["ks"]), list(spec["e"])
        start, end = 0, 4
        for d in spec["d"]:
            for j in range(start + d, end):
                ks[j] = 0
                ex[j] = 0
            start += 4
            end += 4
        ks_hot, ex_hot, r_hot = [0] * 60, [0] * 60, [0] * 8
        for i in range(20):
            if ks[i]:
                ks_hot[i * 3 + {3: 0, 5: 1, 7: 2}[ks[i]]] = 1
            if ex[i]:
                ex_hot[i * 3 + {3: 0, 4: 1, 6: 2}[ex[i]]] = 1
        r_hot[(spec["r"][0] - 112) // 16] = 1
        return ks_hot + ex_hot + r_hot

    def predict_accuracy(self, specs: list[dict]) -> torch.Tensor:
        x = torch.tensor([self.spec2feats(s) for s in specs], dtype=torch.float32)
        with torch.no_grad():
            return self.module(x)[:, 0]


class LoopEvolutionFinder:
    """OFA's EvolutionFinder algorithm, one Python dict per subnet."""

    def __init__(self, table: DictLatencyTable, predictor: LoopPredictor, constraint_ms: float) -> None:
        self.table, self.predictor, self.constraint = table, predictor, constraint_ms
        self.population_size, self.generations = 100, 500
        self.parent_ratio, self.mutation_ratio, self.mutate_prob = 0.25, 0.5, 0.1

    def random_spec(self) -> dict:
        return {
            "ks": [random.choice([3, 5, 7]) for _ in range(20)],
            "e": [random.choice([3, 4, 6]) for _ in range(20)],
            "d": [random.choice([2, 3, 4]) for _ in range(5)],
            "r": [random.choice(RESOLUTIONS)],
        }

    def random_sample(self) -> tuple[dict, float]:
        while True:
            spec = self.random_spec()
            lat = self.table.predict_efficiency(spec)
            if lat <= self.constraint:
                return spec, lat

    def mutate_sample(self, spec: dict) -> tuple[dict, float]:
        while True:
            new = copy.deepcopy(spec)
            if random.random() < self.mutate_prob:
                new["r"][0] = random.choice(RESOLUTIONS)
            for i in range(20):
                if random.random() < self.mutate_prob:
                    new["ks"][i] = random.choice([3, 5, 7])
                    new["e"][i] = random.choice([3, 4, 6])
            for i in range(5):
                if random.random() < self.mutate_prob:
                    new["d"][i] = random.choice([2, 3, 4])
            lat = self.table.predict_efficiency(new)
            if lat <= self.constraint:
                return new, lat

    def crossover_sample(self, a: dict, b: dict) -> tuple[dict, float]:
        while True:
            new = {k: [random.choice([x, y]) for x, y in zip(a[k], b[k])] for k in ("ks", "e", "d", "r")}
            lat = self.table.predict_efficiency(new)
            if lat <= self.constraint:
                return new, lat

    def run(self) -> tuple[float, dict, float]:
        n_mut = round(self.mutation_ratio * self.population_size)
        n_par = round(self.parent_ratio * self.population_size)
        pool = [self.random_sample() for _ in range(self.population_size)]
        accs = self.predictor.predict_accuracy([s for s, _ in pool])
        population = [(accs[i].item(), pool[i][0], pool[i][1]) for i in range(self.population_size)]
        best = (-1.0, None, None)
        for _ in range(self.generations + 1):
            parents = sorted(population, key=lambda x: x[0], reverse=True)[:n_par]
            if parents[0][0] > best[0]:
                best = parents[0]
            children = [self.mutate_sample(parents[np.random.randint(n_par)][1]) for _ in range(n_mut)]
            children += [
                self.crossover_sample(parents[np.random.randint(n_par)][1], parents[np.random.randint(n_par)][1])
                for _ in range(self.population_size - n_mut)
            ]
            accs = self.predictor.predict_accuracy([s for s, _ in children])
            population = parents + [(accs[i].item(), s, lat) for i, (s, lat) in enumerate(children)]
        return best[0] * 100, best[1], best[2]


# -- OFA's tutorial finder, operation for operation ------------------------------------------
class TutorialLatencyTable:
    """OFA's tutorial latency table: one estimator per resolution; a key string per query,
    assembled from shape lists and ``%d`` fields, then ``table[key]["mean"]``."""

    def __init__(self, files: list[Path]) -> None:
        self.tables = {}
        for f in files:
            with f.open() as fh:
                self.tables[int(f.name.split("_")[0])] = yaml.safe_load(fh)
        sp = get_space("ofa-mbv3-w1.2")
        self.space = sp

    @staticmethod
    def _shape(shape: list[int]) -> str:
        return "x".join(str(v) for v in shape)

    def _query(self, lut: dict, kind: str, in_shape: list[int], out_shape: list[int], **fields: int) -> float:
        parts = [kind, "input:%s" % self._shape(in_shape), "output:%s" % self._shape(out_shape)]
        if kind == "expanded_conv":
            parts += ["expand:%d" % fields["mid"], "kernel:%d" % fields["ks"], "stride:%d" % fields["stride"],
                      "idskip:%d" % fields["idskip"], "se:%d" % fields["se"], "hs:%d" % fields["hs"]]
        return lut["-".join(parts)]["mean"]

    def predict_efficiency(self, spec: dict) -> float:
        sp = self.space
        r = spec["r"][0]
        lut = self.tables[r]
        side = (r + 1) // 2
        first = sp.first_conv_chs
        total = self._query(lut, "Conv", [r, r, 3], [side, side, first])
        total += self._query(lut, "expanded_conv", [side, side, first], [side, side, first],
                             mid=first, ks=3, stride=1, idskip=1, se=0, hs=0)
        cin = first
        for i in range(20):
            stage, j = i // 4, i % 4
            if j + 1 > spec["d"][stage]:
                continue
            stride = sp.stage_strides[stage] if j == 0 else 1
            out_side = int((side - 1) / stride + 1)
            cout = sp.stage_chs[stage]
            total += self._query(lut, "expanded_conv", [side, side, cin], [out_side, out_side, cout],
                                 mid=round(cin * spec["e"][i]), ks=spec["ks"][i], stride=stride,
                                 idskip=int(j > 0), se=int(sp.stage_se[stage]),
                                 hs=int(sp.stage_acts[stage] == "h_swish"))
            side, cin = out_side, cout
        final, mix = sp.final_expand_chs, sp.feature_mix_chs
        total += self._query(lut, "Conv_1", [side, side, cin], [side, side, final])
        total += self._query(lut, "AvgPool2D", [side, side, final], [1, 1, final])
        total += self._query(lut, "Conv_2", [1, 1, final], [1, 1, mix])
        total += self._query(lut, "Logits", [1, 1, mix], [1000])
        return total


class TutorialPredictor:
    """OFA's tutorial accuracy predictor call: per subnet, deep copies of its genes, Python
    one-hot lists turned into a tensor of its own; then one concatenation and one forward."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.module = module

    @staticmethod
    def _features(ks: list[int], ex: list[int], ds: list[int], r: int) -> torch.Tensor:
        for stage, d in enumerate(ds):
            for j in range(stage * 4 + d, stage * 4 + 4):
                ks[j] = 0
                ex[j] = 0
        ks_hot, ex_hot, r_hot = [0 for _ in range(60)], [0 for _ in range(60)], [0 for _ in range(8)]
        ks_pos = {3: 0, 5: 1, 7: 2}
        ex_pos = {3: 0, 4: 1, 6: 2}
        for i in range(20):
            if ks[i] != 0:
                ks_hot[i * 3 + ks_pos[ks[i]]] = 1
            if ex[i] != 0:
                ex_hot[i * 3 + ex_pos[ex[i]]] = 1
        r_hot[(r - 112) // 16] = 1
        return torch.Tensor(ks_hot + ex_hot + r_hot)

    @torch.no_grad()
    def predict_accuracy(self, population: list[dict]) -> torch.Tensor:
        rows = []
        for spec in population:
            feats = self._features(copy.deepcopy(spec["ks"]), copy.deepcopy(spec["e"]), copy.deepcopy(spec["d"]),
                                   copy.deepcopy(spec["r"])[0])
            rows.append(feats.reshape(1, -1).to("cpu"))
        return self.module(torch.cat(rows, 0)).cpu()


class TutorialFinder(LoopEvolutionFinder):
    """OFA's tutorial EvolutionFinder: samples with a ``wid`` entry, crossover deep-copying a
    parent and walking every list of the dict, and OFA's own generation loop (sampling and
    mutation are the lean loop's: a deep copy of the parent per try, as OFA's)."""

    def random_spec(self) -> dict:
        d = [random.choice([2, 3, 4]) for _ in range(5)]
        e, ks = [], []
        for _ in range(20):
            e.append(random.choice([3, 4, 6]))
            ks.append(random.choice([3, 5, 7]))
        return {"wid": None, "ks": ks, "e": e, "d": d, "r": [random.choice(RESOLUTIONS)]}

    def crossover_sample(self, a: dict, b: dict) -> tuple[dict, float]:
        while True:
            new = copy.deepcopy(a)
            for key in new:
                if not isinstance(new[key], list):
                    continue
                for i in range(len(new[key])):
                    new[key][i] = random.choice([a[key][i], b[key][i]])
            lat = self.table.predict_efficiency(new)
            if lat <= self.constraint:
                return new, lat

    def run(self) -> tuple[float, dict, float]:
        n_mut = int(round(self.mutation_ratio * self.population_size))
        n_par = int(round(self.parent_ratio * self.population_size))
        pool, lats = [], []
        for _ in range(self.population_size):
            spec, lat = self.random_sample()
            pool.append(spec)
            lats.append(lat)
        accs = self.predictor.predict_accuracy(pool)
        population = [(accs[i].item(), pool[i], lats[i]) for i in range(self.population_size)]
        best, best_acc = None, -100.0
        for _ in range(self.generations):
            parents = sorted(population, key=lambda x: x[0])[::-1][:n_par]
            if parents[0][0] > best_acc:
                best_acc, best = parents[0][0], parents[0]
            population = parents
            pool, lats = [], []
            for _ in range(n_mut):
                spec, lat = self.mutate_sample(population[np.random.randint(n_par)][1])
                pool.append(spec)
                lats.append(lat)
            for _ in range(self.population_size - n_mut):
                spec, lat = self.crossover_sample(population[np.random.randint(n_par)][1],
                                                  population[np.random.randint(n_par)][1])
                pool.append(spec)
                lats.append(lat)
            accs = self.predictor.predict_accuracy(pool)
            for i in range(self.population_size):
                population.append((accs[i].item(), pool[i], lats[i]))
        return best_acc * 100, best[1], best[2]


def _baseline_row(method: str, finder: LoopEvolutionFinder, budget: float, seed: int) -> dict:
    random.seed(seed)
    np.random.seed(seed)
    start = time.perf_counter()
    acc, _, lat = finder.run()
    return {"method": method, "budget_ms": budget, "seed": seed, "wall_s": time.perf_counter() - start,
            "best_acc": acc, "latency_ms": lat}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", default="15,20,25,30")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--loop-budget", type=float, default=25.0, help="budget the baselines run at")
    parser.add_argument("--quick", action="store_true", help="one seed for the baselines")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    budgets = [float(b) for b in args.budgets.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    torch.set_num_threads(2)

    t0 = time.perf_counter()
    table = {k: s["mean_ms"] for k, s, _ in read_ofa_yaml(NOTE10)}
    lut = CompiledLut.from_table(table, "ofa-mbv3-w1.2", device="note10")
    pred = load_ofa_predictor(OFA_WEIGHTS)
    setup_s = time.perf_counter() - t0
    module = pred.module()
    tutorial_table, lean_table = TutorialLatencyTable(NOTE10), DictLatencyTable(NOTE10)
    rows = []
    # Seed by seed, every method in turn, so a slow spell of this shared host hits them alike.
    for k, seed in enumerate(seeds):
        for budget in budgets:
            for method, settings in (("lutnas", EvolutionSettings()),
                                     ("lutnas distinct-parents", EvolutionSettings(distinct_parents=True))):
                res = evolutionary_search(
                    "ofa-mbv3-w1.2", [latency_constraint("note10", lut, budget)], pred, settings, seed
                )
                rows.append({"method": method, "budget_ms": budget, "seed": seed, "wall_s": res.search_seconds,
                             "best_acc": res.predicted_accuracy, "latency_ms": res.latency_ms["note10"],
                             "scored": res.predicted_subnets})
        if args.quick and k:
            continue
        finder = TutorialFinder(tutorial_table, TutorialPredictor(module), args.loop_budget)
        rows.append(_baseline_row("ofa-tutorial", finder, args.loop_budget, seed))
        finder = LoopEvolutionFinder(lean_table, LoopPredictor(module), args.loop_budget)
        rows.append(_baseline_row("lean-loop", finder, args.loop_budget, seed))
    if args.json:
        print(json.dumps({"setup_s": setup_s, "rows": rows}, indent=2))
        return
    print(f"setup (LUT compile + predictor load): {setup_s:.2f} s")
    print("| method | budget (ms) | seed | wall (s) | best predicted top-1 (%) | LUT latency (ms) |")
    print("|---|---|---|---|---|---|")
    for r in sorted(rows, key=lambda r: (not r["method"].startswith("lutnas"), r["method"], r["budget_ms"],
                                         r["seed"])):
        print(f"| {r['method']} | {r['budget_ms']:g} | {r['seed']} | {r['wall_s']:.2f} | {r['best_acc']:.2f} | "
              f"{r['latency_ms']:.2f} |")
    at = [r for r in rows if r["budget_ms"] == args.loop_budget]
    ours = [r for r in at if r["method"] == "lutnas"]
    if not ours:
        return
    print(f"\nat {args.loop_budget:g} ms, medians over seeds:")
    print("| method | wall (s) | time / lutnas default | best predicted top-1 (%) |")
    print("|---|---|---|---|")
    ours_s = float(np.median([r["wall_s"] for r in ours]))
    for method in ("lutnas", "lutnas distinct-parents", "ofa-tutorial", "lean-loop"):
        mine = [r for r in at if r["method"] == method]
        if mine:
            wall = float(np.median([r["wall_s"] for r in mine]))
            acc = float(np.median([r["best_acc"] for r in mine]))
            print(f"| {method} | {wall:.2f} | {wall / ours_s:.1f}x | {acc:.2f} |")


if __name__ == "__main__":
    main()
