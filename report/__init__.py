"""``lutnas report``: one self-contained HTML page for a LUT store.

The page shows every device setting (facts, coverage, few-shot rows), how well each LUT predicts whole
networks (stored ``validate`` runs), how devices compare (``compare``), and with an accuracy predictor what
to deploy where (fronts per device and the cross-device regret). :func:`gather_report` collects the numbers,
:func:`render_html` draws them with Plotly (an optional extra: ``pip install lutnas[report]``), and
:func:`build_report` does both and writes the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from report.data import DEFAULT_QUANTILES, Progress, ReportData, ReportSettings, gather_report

__all__ = ["DEFAULT_QUANTILES", "ReportData", "ReportSettings", "build_report", "gather_report", "render_html"]


def render_html(data: ReportData) -> str:
    """The report page for ``data`` (see :mod:`report.page`).

    Raises:
        ModuleNotFoundError: plotly is not installed (``pip install lutnas[report]``).
    """
    try:
        from report.page import render_html as render
    except ModuleNotFoundError as err:
        if err.name != "plotly" and not str(err.name or "").startswith("plotly."):
            raise
        raise ModuleNotFoundError("lutnas report needs plotly: pip install 'lutnas[report]'", name="plotly") from err
    return render(data)


def build_report(db: str | Path | Any, out: str | Path, settings: ReportSettings | None = None, *,
                 progress: Progress | None = None) -> Path:
    """Write the report of a store to ``out`` (one HTML file) and return its path.

    Args:
        db: a SQLite path or ``postgresql://`` URL, or an open :class:`lut.LutStore`.
        out: the HTML file to write (its folder is created).
        settings: devices, predictor, budgets and search settings (default: every device, no predictor).
        progress: called with a short phrase before each slow step.

    Raises:
        lut.LutError: no such store, or a device it does not know.
        ValueError: bad settings.
        ModuleNotFoundError: plotly is not installed.
    """
    from lut import LutStore

    out = Path(out)
    if isinstance(db, LutStore):
        data = gather_report(db, settings, progress)
    else:
        with LutStore(db, create=False) as store:
            data = gather_report(store, settings, progress)
    text = render_html(data)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return out
