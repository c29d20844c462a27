"""The suite's figures, checked and printed last (the terminal summary prints them again for CI logs)."""

from __future__ import annotations

import sys

import pytest

from .conftest import summary_lines


def test_summary_figures(tally, pytestconfig: pytest.Config) -> None:
    lines = summary_lines(pytestconfig)
    # Straight to the real stderr: shown even when pytest captures output (no -s).
    print("\nreliability figures so far:\n  " + "\n  ".join(lines or ["(no reliability test ran)"]),
          file=sys.__stderr__, flush=True)
    counts = tally.counts
    assert counts["rows_lost"] == 0
    assert counts["rows_duplicated"] == 0
    assert counts["blocks_timed_twice"] == 0
