"""The reliability suite's shared tally and the figures it prints at the end of every pytest run.

Each test adds what it did to one session-wide tally (requests tried, faults injected, rows lost,
rows duplicated, ...). ``pytest_terminal_summary`` prints it, so CI logs show the figures even
without ``-s`` and even when a test fails. The ``lab`` fixture gives the real-network tests their namespaces.
"""

from __future__ import annotations

from collections import Counter

import pytest

from ._netlab import NetLab, unavailable

_TALLY = pytest.StashKey[Counter]()
_NOTES = pytest.StashKey[list]()

# The figures always printed, in this order, with their labels.
FIGURES = (
    ("requests_tried", "requests tried"),
    ("faults_injected", "faults injected"),
    ("rows_lost", "rows lost"),
    ("rows_duplicated", "rows duplicated"),
    ("blocks_timed_twice", "blocks timed twice"),
    ("in_flight_retimed", "in-flight jobs timed again after a host crash"),
)


class Tally:
    """Counts of one pytest session (kept in ``config.stash``, not in module globals)."""

    def __init__(self, config: pytest.Config) -> None:
        self.counts = config.stash.setdefault(_TALLY, Counter())
        self.notes = config.stash.setdefault(_NOTES, [])

    def add(self, **counts: int) -> None:
        """Add to named counters (see ``FIGURES``; other names are printed too)."""
        self.counts.update(counts)

    def note(self, line: str) -> None:
        """A one-line remark for the summary (e.g. which fault a test injected)."""
        self.notes.append(line)


@pytest.fixture(scope="session")
def tally(pytestconfig: pytest.Config) -> Tally:
    """The session's reliability tally."""
    return Tally(pytestconfig)


@pytest.fixture
def lab():
    """A fresh network-namespace lab per test; skipped (saying why) where the kernel or the user cannot make
    namespaces."""
    reason = unavailable()
    if reason is not None:
        pytest.skip(f"real-network tests need network namespaces: {reason}")
    lab = NetLab()
    yield lab
    lab.close()


def summary_lines(config: pytest.Config) -> list[str]:
    """The figures as lines of text (empty when no reliability test ran)."""
    counts = config.stash.get(_TALLY, Counter())
    notes = config.stash.get(_NOTES, [])
    if not counts and not notes:
        return []
    lines = [f"{label}: {counts.get(key, 0)}" for key, label in FIGURES]
    known = {key for key, _ in FIGURES}
    lines += [f"{key.replace('_', ' ')}: {value}" for key, value in sorted(counts.items()) if key not in known]
    lines += [f"- {note}" for note in notes]
    return lines


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """Print the reliability figures after every run that executed a reliability test."""
    lines = summary_lines(config)
    if not lines:
        return
    terminalreporter.write_sep("=", "reliability figures")
    for line in lines:
        terminalreporter.write_line(line)


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the summary test after every other test, whatever order the others run in."""
    summary = [item for item in items if item.name == "test_summary_figures" and "reliability" in str(item.path)]
    for item in summary:
        items.remove(item)
    items.extend(summary)
