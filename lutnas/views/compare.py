"""How ``lutnas compare`` shows a comparison and its regret on stderr (the report's numbers, as tables)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lutnas._common import err_console
from lutnas._tables import block_key_cell, summary_table
from lutnas._text import literal

__all__ = ["print_comparison", "print_regret", "render"]

# Rank correlations two to a cell (blocks / subnets): eight columns do not fit 80; six do, selectors whole.
_PAIR_COLUMNS = ("A", "B", "shared blocks", "median ratio", "Spearman blocks / subnets", "Kendall blocks / subnets")


def render(report: Any, plot: Path | None) -> None:
    """A :class:`lut.compare.CompareReport`: the comparison and, with a predictor, the regret."""
    print_comparison(report.comparison, plot)
    if report.regret is not None:
        print_regret(report.regret)


def print_comparison(cmp: Any, plot: Path | None) -> None:
    """The pairs table, each pair's ratios by kind and group and its slower blocks, and dominant groups."""
    from lut.compare import COMPARE_MODEL
    from space import describe_resolutions

    err_console.print(literal(f"{cmp.space}, resolutions {describe_resolutions(cmp.resolutions)}, "
                              f"{cmp.n_subnets} random subnets"))
    pairs = summary_table("pairs (ratio = B / A)", _PAIR_COLUMNS, right=_PAIR_COLUMNS[2:])
    for p in cmp.pairs:
        pairs.add_row(literal(p.a), literal(p.b), str(p.n_shared_blocks), f"{p.median_ratio:.3f}",
                      f"{p.block_spearman:.3f} / {p.subnet_spearman:.3f}",
                      f"{p.block_kendall:.3f} / {p.subnet_kendall:.3f}")
    err_console.print(pairs)
    for p in cmp.pairs:
        for by, frame in (("kind", p.ratio_by_kind), ("group", p.ratio_by_group)):
            table = summary_table(f"{p.b} / {p.a} by {by}", (by, "n", "median", "geomean", "min", "max"),
                                  right=("n", "median", "geomean", "min", "max"))
            for g, row in frame.iterrows():
                table.add_row(literal(g), str(int(row["n"])),
                              *(f"{row[c]:.3f}" for c in ("median", "geomean", "min", "max")))
            err_console.print(table)
        _print_slower(p)
    for device, shares in cmp.dominant.items():
        top = ", ".join(f"{g} {100 * s:.1f}%" for g, s in shares[:4])
        err_console.print(literal(f"{device}: latency dominated by {top}"))
    if plot is not None:
        err_console.print(literal(f"plot written to {plot}"))
    err_console.print(literal(f"latencies: {COMPARE_MODEL}"))


def _print_slower(pair: Any, shown: int = 10) -> None:
    """The blocks slower on B (for two precisions: where the lower precision loses)."""
    if pair.slower.empty:
        err_console.print(literal(f"no block is slower on {pair.b} than on {pair.a}"))
        return
    title = (f"{len(pair.slower)} of {pair.n_ratio_blocks} blocks slower on {pair.b} than on {pair.a}"
             + (f" (slowest {shown})" if len(pair.slower) > shown else ""))
    table = summary_table(title, ("block", "group", f"{pair.a} ms", f"{pair.b} ms", "ratio"),
                          right=(f"{pair.a} ms", f"{pair.b} ms", "ratio"))
    for row in pair.slower.head(shown).itertuples():  # block keys come from imported files
        table.add_row(block_key_cell(row.block_key), literal(row.group), f"{row.a_ms:.3f}", f"{row.b_ms:.3f}",
                      f"{row.ratio:.2f}")
    err_console.print(table)


def _arch_summary(arch: dict[str, Any], space: Any) -> str:
    """``r=208 d=4,3,4,4,4 k=5.2 e=4.6`` (kernel and expand averaged over the active slots); ``space`` is a
    SearchSpace or a built-in space's name."""
    from space import get_space

    space = get_space(space)
    sub = space.validate(arch)
    active = space.active_slots(sub)
    ks = sum(sub.ks[i] for i in active) / len(active)
    e = sum(sub.e[i] for i in active) / len(active)
    return f"r={sub.r} d={','.join(str(d) for d in sub.d)} k={ks:.1f} e={e:.1f}"


def print_regret(report: Any) -> None:
    """Per budget quantile: each device's pick, then the matrix of what each pick costs on each device."""
    from space import describe_resolutions

    err_console.print(literal(f"matched budgets: {report.space}, resolutions "
                              f"{describe_resolutions(report.resolutions)}, "
                              f"{report.generations} generations per search"))
    for qr in report.by_quantile:
        picks = summary_table(f"best subnet per device, budget quantile {qr.quantile:g}",
                              ("device", "range (ms)", "budget (ms)", "pick", "predicted top-1 (%)", "latency (ms)"))
        for p in qr.picks.values():
            found = "" if p.found_by == p.device else f" (from {p.found_by}'s search; own {p.searched_accuracy:.2f})"
            picks.add_row(*map(literal, (p.device, f"{p.range_ms[0]:.2f}..{p.range_ms[1]:.2f}", f"{p.budget_ms:.2f}",
                                         _arch_summary(p.arch, report.searched or report.space), f"{p.predicted_accuracy:.2f}{found}",
                                         f"{p.latency_ms:.2f}")))
        err_console.print(picks)
        err_console.print(_regret_matrix(report, qr))


def _regret_matrix(report: Any, qr: Any) -> Any:
    matrix = summary_table(f"regret at quantile {qr.quantile:g}", ("pick of", *report.devices),
                           caption="the row's pick on the column's device: predicted top-1 points lost "
                                   "(its latency), or how far over that device's budget it runs")
    for a in report.devices:
        cells = []
        for b in report.devices:
            c = qr.price(a, b)
            if c.feasible:
                cells.append(literal(f"{c.regret:+.2f} ({c.latency_ms:.2f} ms)"))
            else:
                cells.append(literal(("over budget", "red"),
                                     f" +{c.over_budget_ms:.2f} ms (+{c.over_budget_pct:.1f}%)"))
        matrix.add_row(literal(a), *cells)
    return matrix
