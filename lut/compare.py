"""Comparing devices: how block latencies and subnet rankings carry across LUTs.

For every pair of devices: per-block latency ratios (B / A) over the blocks both LUTs price,
summarized by block kind, by stage and by resolution, and the blocks slower on B (two precisions of one
device compare the same way: ``cpu:fp32`` against ``cpu:int8`` lists where int8 loses); Spearman and Kendall rank correlations over those shared
blocks and over the predicted latencies of random subnets (drawn at resolutions every LUT fully
covers); and for every device, the block groups that dominate its subnets' latency. Plots go
through matplotlib's Agg canvas (no global backend switch).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lut.errors import MissingBlocksError, WorkFailedError
from lut.predict import CompiledLut
from space import ResNetSpace, SearchSpace

__all__ = ["PairComparison", "Comparison", "comparable_resolutions", "compare_luts", "plot_comparison", "block_groups",
           "GROUPS", "space_groups", "space_kinds"]

logger = logging.getLogger(__name__)

# Blocks listed by name in a pair's JSON (slowest first); the count covers all of them.
SLOWER_LISTED = 50

# Latency groups of an OFA-MobileNetV3 subnet, in run order: the fixed blocks and the five elastic stages
# (other spaces: space_groups).
GROUPS: tuple[str, ...] = ("first_conv", "first_block", "stage1", "stage2", "stage3", "stage4", "stage5",
                           "final_expand", "avgpool", "feature_mix", "classifier")


def space_groups(space: SearchSpace | ResNetSpace) -> tuple[str, ...]:
    """A space's latency groups in run order: its fixed blocks and one group per stage (a ResNet's stem is one)."""
    stages = tuple(f"stage{s + 1}" for s in range(space.n_stages))
    if isinstance(space, ResNetSpace):
        return ("stem", *stages, "classifier")
    fixed = space.fixed_kinds
    return (*fixed[:2], *stages, *fixed[2:])


def space_kinds(space: SearchSpace | ResNetSpace) -> tuple[str, ...]:
    """A space's block kinds in run order (what ``ratio_by_kind`` and ``dominant_kinds`` are keyed by)."""
    if isinstance(space, ResNetSpace):
        return ("conv_bn_act", "maxpool", "bottleneck", "classifier")
    return ("first_conv", "mbconv", *space.fixed_kinds[2:])


@dataclass(frozen=True)
class PairComparison:
    """Device ``b`` against device ``a`` (ratios are b / a)."""

    a: str
    b: str
    n_shared_blocks: int  # blocks of the space (at the compared resolutions) both LUTs price
    n_ratio_blocks: int  # of those, with a non-zero latency on both (ratios are defined)
    block_spearman: float
    block_kendall: float
    subnet_spearman: float
    subnet_kendall: float
    median_ratio: float  # median over shared blocks
    subnet_median_ratio: float  # median over the random subnets' predicted latencies
    ratio_by_kind: pd.DataFrame  # index kind; columns n, median, geomean, min, max
    ratio_by_group: pd.DataFrame  # index group (GROUPS); same columns
    ratio_by_resolution: pd.DataFrame  # index resolution, columns GROUPS: median ratio of that resolution's blocks
    slower: pd.DataFrame = field(default_factory=pd.DataFrame)  # blocks slower on b: block_key, kind, group, a_ms, b_ms, ratio

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "a": self.a, "b": self.b, "n_shared_blocks": self.n_shared_blocks, "n_ratio_blocks": self.n_ratio_blocks,
            "block_spearman": self.block_spearman, "block_kendall": self.block_kendall,
            "subnet_spearman": self.subnet_spearman, "subnet_kendall": self.subnet_kendall,
            "median_ratio": self.median_ratio, "subnet_median_ratio": self.subnet_median_ratio,
            "ratio_by_kind": _frame_dict(self.ratio_by_kind), "ratio_by_group": _frame_dict(self.ratio_by_group),
            "ratio_by_resolution": {str(r): {g: (None if np.isnan(v) else float(v)) for g, v in row.items()}
                                    for r, row in self.ratio_by_resolution.iterrows()},
            "n_slower": len(self.slower),
            "slower": self.slower.head(SLOWER_LISTED).to_dict(orient="records"),
        }


@dataclass(frozen=True)
class Comparison:
    """The result of :func:`compare_luts`."""

    devices: tuple[str, ...]
    space: str
    resolutions: tuple[int, ...]  # subnets were drawn at these
    n_subnets: int
    pairs: tuple[PairComparison, ...]
    dominant: dict[str, list[tuple[str, float]]]  # device -> (group, mean share of latency), largest first
    dominant_kinds: dict[str, list[tuple[str, float]]]  # device -> (block kind, mean share), largest first
    subnet_ms: dict[str, np.ndarray] = field(repr=False)  # device -> predicted latency of every drawn subnet

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (without the per-subnet latencies)."""
        return {
            "devices": list(self.devices), "space": self.space, "resolutions": list(self.resolutions),
            "n_subnets": self.n_subnets, "pairs": [p.to_dict() for p in self.pairs],
            "dominant_groups": {d: [{"group": g, "share": s} for g, s in v] for d, v in self.dominant.items()},
            "dominant_kinds": {d: [{"kind": k, "share": s} for k, s in v] for d, v in self.dominant_kinds.items()},
            "subnet_latency_ms": {d: {"min": float(v.min()), "median": float(np.median(v)), "max": float(v.max())}
                                  for d, v in self.subnet_ms.items()},
        }


def block_groups(space: SearchSpace | ResNetSpace, resolutions: Iterable[int]) -> dict[str, tuple[str, str]]:
    """``{block_key: (kind, group)}`` for every block of ``space`` at ``resolutions`` (group from :func:`space_groups`)."""
    if isinstance(space, ResNetSpace):
        return _resnet_groups(space, resolutions)
    out: dict[str, tuple[str, str]] = {}
    for r in resolutions:
        stem, _ = space.stem_blocks(r)
        out[stem[0].key] = ("first_conv", "first_conv")
        out[stem[1].key] = ("mbconv", "first_block")
        for block in space.unique_blocks(r):
            if block.key in out:
                continue
            if block.kind == "mbconv":
                out[block.key] = ("mbconv", f"stage{space.stage_chs.index(block.out_chs) + 1}")
            else:
                out[block.key] = (block.kind, block.kind)
    return out


def _resnet_groups(space: ResNetSpace, resolutions: Iterable[int]) -> dict[str, tuple[str, str]]:
    """ResNet blocks: the stem's convs and pool, bottlenecks by stage (their output widths differ per stage)."""
    stage_of = {chs: s for s in range(space.n_stages) for chs in space.stage_widths(s)}
    out: dict[str, tuple[str, str]] = {}
    for block in space.unique_blocks(list(resolutions)):
        if block.kind == "bottleneck":
            out[block.key] = ("bottleneck", f"stage{stage_of[block.out_chs] + 1}")
        else:
            out[block.key] = (block.kind, "classifier" if block.kind == "classifier" else "stem")
    return out


def _ratio_summary(ratios: pd.Series, labels: pd.Series, order: Sequence[str]) -> pd.DataFrame:
    rows = {}
    for label in order:
        vals = ratios[labels == label].to_numpy()
        if len(vals):
            rows[label] = {"n": int(len(vals)), "median": float(np.median(vals)),
                           "geomean": float(np.exp(np.mean(np.log(vals)))),
                           "min": float(vals.min()), "max": float(vals.max())}
    return pd.DataFrame.from_dict(rows, orient="index", columns=["n", "median", "geomean", "min", "max"])


def _group_shares(lut: CompiledLut, batch: Any) -> tuple[dict[str, float], dict[str, float]]:
    if isinstance(lut.space, ResNetSpace):
        return _block_shares(lut, batch)
    parts = lut.components(batch)
    total = parts["raw_ms"]
    per_group: dict[str, np.ndarray] = {}
    fixed = _fixed_by_r(lut, batch.r)
    for i, kind in enumerate(lut.space.fixed_kinds):
        per_group[kind] = fixed[:, i]
    for s in range(lut.space.n_stages):
        per_group[f"stage{s + 1}"] = parts[f"stage{s + 1}_ms"]
    safe_total = np.where(total > 0, total, np.nan)
    groups = {g: float(np.nanmean(per_group[g] / safe_total)) for g in space_groups(lut.space)}
    kinds = {"first_conv": groups["first_conv"],
             "mbconv": groups["first_block"] + sum(groups[f"stage{s + 1}"] for s in range(lut.space.n_stages))}
    kinds.update({k: groups[k] for k in lut.space.fixed_kinds[2:]})
    return groups, kinds


def _block_shares(lut: Any, batch: Any) -> tuple[dict[str, float], dict[str, float]]:
    """Mean latency shares by group and by kind, summed block by block (ResNet subnets)."""
    space = lut.space
    subs = list(batch)
    labels = block_groups(space, sorted({s.r for s in subs}))
    groups = dict.fromkeys(space_groups(space), 0.0)
    kinds = dict.fromkeys(space_kinds(space), 0.0)
    for sub in subs:
        blocks = space.blocks(sub)
        ms = np.asarray(lut.block_latencies(blocks, sub.r))
        total = ms.sum() * len(subs)
        if total <= 0:
            continue
        for block, v in zip(blocks, ms):
            kind, group = labels[block.key]
            groups[group] += v / total
            kinds[kind] += v / total
    return groups, kinds


def _fixed_by_r(lut: CompiledLut, r: np.ndarray) -> np.ndarray:
    uniq, inverse = np.unique(r, return_inverse=True)
    table = np.array([[lut.fixed_components(int(x))[k] for k in lut.space.fixed_kinds] for x in uniq])
    return table[inverse]


def comparable_resolutions(luts: Mapping[str, CompiledLut], resolutions: Sequence[int] | None = None
                           ) -> tuple[int, ...]:
    """The resolutions :func:`compare_luts` compares ``luts`` at: ``resolutions``, checked, or every one all cover.

    Raises:
        ValueError: fewer than two devices or different spaces.
        MissingBlocksError: no resolution every LUT covers, or a requested one that some LUT does not.
    """
    if len(luts) < 2:
        raise ValueError(f"compare needs at least two devices, got {list(luts)}")
    spaces = {lut.space.name for lut in luts.values()}
    if len(spaces) != 1:
        raise ValueError(f"compare needs LUTs of one space, got {sorted(spaces)}")
    common = set.intersection(*(set(lut.resolutions) for lut in luts.values()))
    if resolutions is None:
        if not common:
            cover = "; ".join(f"{n}: {list(lut.resolutions)}" for n, lut in luts.items())
            raise MissingBlocksError(f"no resolution is fully covered by every device ({cover})")
        return tuple(sorted(common))
    res = tuple(sorted({int(r) for r in resolutions}))
    bad = [r for r in res if r not in common]
    if bad:
        raise MissingBlocksError(f"resolution(s) {bad} not fully covered by every device; common: {sorted(common)}")
    return res


def compare_luts(luts: Mapping[str, CompiledLut], *, resolutions: Sequence[int] | None = None,
                 n_subnets: int = 10_000, random_state: int | None = 0) -> Comparison:
    """Compare the LUTs of two or more devices compiled for the same space.

    Args:
        luts: device name -> compiled LUT (raw sums are compared; calibrations are ignored).
        resolutions: where to draw subnets and take shared blocks (default: every resolution all LUTs fully cover).
        n_subnets: random subnets to rank.
        random_state: seeds the subnet draw.

    Raises:
        ValueError: fewer than two devices or different spaces.
        MissingBlocksError: no resolution every LUT covers, or a requested one that some LUT does not.
    """
    from scipy.stats import kendalltau, spearmanr

    res = comparable_resolutions(luts, resolutions)
    names = list(luts)
    space = next(iter(luts.values())).space
    rng = np.random.default_rng(random_state)
    if isinstance(space, ResNetSpace):  # priced block by block: a list of subnets is its batch
        batch: Any = space.sample_archs(n_subnets, rng, resolutions=res)
    else:
        batch = space.sample(n_subnets, rng, resolutions=res)
    subnet_ms = {n: luts[n].predict_batch(batch, calibrated=False) for n in names}
    groups = block_groups(space, res)
    per_res_keys = {r: [b.key for b in space.unique_blocks(r)] for r in res}
    tables = {n: luts[n].table for n in names}

    pairs = []
    for a, b in itertools.combinations(names, 2):
        shared = sorted(k for k in groups if k in tables[a] and k in tables[b])
        lat_a = np.array([tables[a][k] for k in shared])
        lat_b = np.array([tables[b][k] for k in shared])
        ok = (lat_a > 0) & (lat_b > 0)
        ratios = pd.Series(lat_b[ok] / lat_a[ok])
        kinds = pd.Series([groups[k][0] for k, keep in zip(shared, ok) if keep])
        grps = pd.Series([groups[k][1] for k, keep in zip(shared, ok) if keep])
        pairs.append(PairComparison(
            a=a, b=b, n_shared_blocks=len(shared), n_ratio_blocks=int(ok.sum()),
            block_spearman=_corr(spearmanr, lat_a, lat_b), block_kendall=_corr(kendalltau, lat_a, lat_b),
            subnet_spearman=_corr(spearmanr, subnet_ms[a], subnet_ms[b]),
            subnet_kendall=_corr(kendalltau, subnet_ms[a], subnet_ms[b]),
            median_ratio=float(ratios.median()) if len(ratios) else float("nan"),
            subnet_median_ratio=float(np.median(subnet_ms[b] / subnet_ms[a])),
            ratio_by_kind=_ratio_summary(ratios, kinds, space_kinds(space)),
            ratio_by_group=_ratio_summary(ratios, grps, space_groups(space)),
            ratio_by_resolution=_ratio_by_resolution(tables[a], tables[b], per_res_keys, groups,
                                                     space_groups(space)),
            slower=_slower_blocks([k for k, keep in zip(shared, ok) if keep], lat_a[ok], lat_b[ok], groups),
        ))
    dominant, dominant_kinds = {}, {}
    for n in names:
        g, k = _group_shares(luts[n], batch)
        dominant[n] = sorted(g.items(), key=lambda item: -item[1])
        dominant_kinds[n] = sorted(k.items(), key=lambda item: -item[1])
    return Comparison(devices=tuple(names), space=space.name, resolutions=res, n_subnets=n_subnets,
                      pairs=tuple(pairs), dominant=dominant, dominant_kinds=dominant_kinds, subnet_ms=subnet_ms)


def _slower_blocks(keys: Sequence[str], lat_a: np.ndarray, lat_b: np.ndarray,
                   groups: Mapping[str, tuple[str, str]]) -> pd.DataFrame:
    """The blocks that take longer on ``b`` than on ``a`` (e.g. int8 slower than fp32), slowest ratio first."""
    frame = pd.DataFrame({"block_key": list(keys), "kind": [groups[k][0] for k in keys],
                          "group": [groups[k][1] for k in keys], "a_ms": lat_a, "b_ms": lat_b})
    frame["ratio"] = frame["b_ms"] / frame["a_ms"]
    return frame[frame["ratio"] > 1.0].sort_values("ratio", ascending=False).reset_index(drop=True)


def _ratio_by_resolution(ta: Mapping[str, float], tb: Mapping[str, float], per_res_keys: Mapping[int, list[str]],
                         groups: Mapping[str, tuple[str, str]], order: Sequence[str] = GROUPS) -> pd.DataFrame:
    rows = {}
    for r, keys in per_res_keys.items():
        by_group: dict[str, list[float]] = {}
        for k in keys:
            if ta.get(k, 0) > 0 and tb.get(k, 0) > 0:
                by_group.setdefault(groups[k][1], []).append(tb[k] / ta[k])
        rows[r] = {g: float(np.median(by_group[g])) if g in by_group else np.nan for g in order}
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(order))


def _corr(fn: Any, x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return float("nan")
    return float(fn(x, y)[0])


def _frame_dict(frame: pd.DataFrame) -> dict[str, dict[str, float]]:
    return {str(i): {c: (int(v) if c == "n" else float(v)) for c, v in row.items()} for i, row in frame.iterrows()}


def plot_comparison(cmp: Comparison, path: str | Path, max_points: int = 5000) -> Path:
    """Write a PNG: subnet-latency scatter of every device against the first (rank correlation in the
    title) and a heat map of per-group median block ratios against the first device.

    Returns:
        ``path``.
    """
    path = Path(path)
    fig = comparison_figure(cmp, max_points)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    logger.info("wrote comparison plot %s", path)
    return path


# Characters of a 9-point title that fit one 5-inch subplot; longer titles (long selectors) wrap onto more lines
# instead of running into the next subplot's.
_TITLE_CHARS = 52


def _wrapped(text: str, width: int = _TITLE_CHARS) -> str:
    import textwrap

    return textwrap.fill(text, width=width, break_on_hyphens=False)


def comparison_figure(cmp: Comparison, max_points: int = 5000) -> Any:
    """The matplotlib Figure :func:`plot_comparison` writes (titles and labels wrapped to their subplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ref = cmp.devices[0]
    others = [p for p in cmp.pairs if p.a == ref]
    n_plots = len(others) + 1
    fig = Figure(figsize=(5 * n_plots, 4.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, n_plots, squeeze=False)[0]
    x_all = cmp.subnet_ms[ref]
    shown = np.arange(len(x_all))[:max_points]
    for ax, pair in zip(axes, others):
        y_all = cmp.subnet_ms[pair.b]
        ax.scatter(x_all[shown], y_all[shown], s=3, alpha=0.35, linewidths=0)
        ax.set_xlabel(_wrapped(f"{ref} predicted latency (ms)"))
        ax.set_ylabel(_wrapped(f"{pair.b} predicted latency (ms)", 40))
        ax.set_title(_wrapped(f"{pair.b} vs {ref}: Spearman {pair.subnet_spearman:.3f}, "
                              f"Kendall {pair.subnet_kendall:.3f}"), fontsize=9)
        ax.grid(alpha=0.3)
    heat = axes[-1]
    frames = [(p.b, p.ratio_by_resolution) for p in others]
    cols = [g for g in frames[0][1].columns if any(f[g].notna().any() for _, f in frames)] if frames else []
    labels = [f"{b} r={r}" if len(frames) > 1 else f"r={r}" for b, f in frames for r in f.index]
    data = np.vstack([f[cols].to_numpy(dtype=np.float64) for _, f in frames])
    logdata = np.log2(np.where(data > 0, data, np.nan))
    lim = float(np.nanmax(np.abs(logdata))) if np.isfinite(logdata).any() else 1.0
    image = heat.imshow(logdata, cmap="coolwarm", vmin=-max(lim, 1e-3), vmax=max(lim, 1e-3), aspect="auto")
    heat.set_xticks(range(len(cols)), cols, rotation=45, ha="right", fontsize=8)
    heat.set_yticks(range(len(labels)), labels, fontsize=7 if len(labels) <= 20 else 5)
    if data.size <= 400:
        for i in range(data.shape[0]):
            for j in range(data.shape[1]):
                if np.isfinite(data[i, j]):
                    heat.text(j, i, f"{data[i, j]:.2f}", ha="center", va="center", fontsize=6)
    heat.set_title(_wrapped(f"median block latency ratio vs {ref}, per stage and resolution"), fontsize=9)
    fig.colorbar(image, ax=heat, label="log2 ratio")
    fig.suptitle(f"{cmp.space}, r in {list(cmp.resolutions)}, {cmp.n_subnets} random subnets", fontsize=10)
    return fig


# -- the compare command as one call --------------------------------------------------------------
#: What compare's latencies are: a ratio of two devices' blocks means the same whether or not either is calibrated.
COMPARE_MODEL = "raw LUT sums (device calibrations are not applied)"


@dataclass(frozen=True)
class CompareReport:
    """What ``lutnas compare`` reports: the comparison, few-shot notes, the plot and (with a predictor) regret.

    ``to_dict()`` is ``lutnas compare --json``. ``luts`` are the compiled (raw) LUTs compared, by name.
    """

    comparison: Comparison
    few_shot: list[dict[str, Any]]
    plot: str | None = None
    regret: Any = None  # a search.RegretReport, added by search.compare
    extrapolation: dict[str, Any] | None = None  # with regret: picks predicted above the predictor's data
    notes: tuple[str, ...] = field(default=(), compare=False)
    luts: Mapping[str, CompiledLut] = field(default_factory=dict, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        doc = {**self.comparison.to_dict(), "latency_model": COMPARE_MODEL, "few_shot": self.few_shot}
        if self.plot is not None:
            doc["plot"] = self.plot
        if self.regret is not None:
            doc["regret"] = {**self.regret.to_dict(), "extrapolation": self.extrapolation}
        return doc


def compare_names(devices: Sequence[str], precision: str | Sequence[str] | None = None) -> list[str]:
    """The selectors compared: ``devices`` (each may be ``A,B``), narrowed to one precision, or one device
    at two precisions (``["cpu"], "fp32,int8"`` -> ``cpu:fp32``, ``cpu:int8``).

    Raises:
        ValueError: other precision counts, or fewer than two distinct devices.
    """
    from lut.selectors import with_precision

    names = [n for item in devices for n in str(item).split(",") if n]
    text = ",".join(precision) if isinstance(precision, (list, tuple)) else (precision or "")
    precisions = [p for p in text.split(",") if p]
    if len(precisions) == 2 and len(names) == 1:
        names = [f"{names[0]}:{p}" for p in precisions]
    elif len(precisions) == 1:
        names = [str(with_precision(n, precisions[0])) for n in names]
    elif precisions:
        raise ValueError(f"precision must be one precision, or two (A,B) with one device; got {text!r} for {names}")
    if len(names) < 2 or len(set(names)) != len(names):
        raise ValueError(f"compare needs two or more distinct devices (--device A --device B), got {names}")
    return names


def compare(store: Any, devices: Sequence[str], *, precision: str | Sequence[str] | None = None,
            space: str | None = None, resolutions: Sequence[int] | None = None, subnets: int = 10_000,
            seed: int = 0, plot: str | Path | None = None, sources: Sequence[Any] = ()) -> CompareReport:
    """Compare devices' LUTs: block latency ratios, rank correlations, dominant block kinds (raw LUT sums).

    Args:
        store: the LUT store (a LutStore or its locator).
        devices: names, selectors or ids (two or more; each may be ``A,B``); one device with two
            ``precision`` values compares those two settings of it.
        precision: one precision for every device, or two (``fp32,int8``) of one device.
        space: the search space (default: the one every LUT, and ``sources``, fit).
        resolutions: resolutions to compare at (default: every one all LUTs cover).
        subnets: random subnets to rank.
        seed: seed of the subnet draw.
        plot: write a PNG there (latency scatter and per-stage ratio heat map).
        sources: more inputs the space must fit (``lut.spaces`` sources, e.g. a predictor's).

    Raises:
        ValueError: bad devices, precisions, space or resolutions (a LutError subclass where the store says).
        OSError: the plot cannot be written.
    """
    from lut.manage import few_shot_status, open_store, resolve_space, store_space
    from lut.selectors import resolve_all

    names = compare_names(devices, precision)
    if subnets < 2:
        raise ValueError(f"subnets must be at least 2, got {subnets}")
    with open_store(store) as opened:
        stored = dict(zip(names, resolve_all(opened.settings(), names)))
        chosen = resolve_space(store_space(opened, stored, list(sources), space), stored.values())
        luts = {name: CompiledLut.from_store(opened, s, chosen, calibrated=False) for name, s in stored.items()}
        status = [few_shot_status(opened, s) for s in stored.values()]
    compared = comparable_resolutions(luts, list(resolutions) if resolutions else None)
    try:
        cmp = compare_luts(luts, resolutions=compared, n_subnets=subnets, random_state=seed)
    except Exception as err:  # noqa: BLE001 - the input was checked above: what the comparison raises is its failure
        raise WorkFailedError.wrapping(err, "comparison") from err
    if plot is not None:
        plot_comparison(cmp, plot)
    return CompareReport(comparison=cmp, few_shot=[doc for doc, _ in status if doc is not None],
                         plot=str(plot) if plot is not None else None,
                         notes=tuple(note for _, note in status if note), luts=luts)
