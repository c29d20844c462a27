"""The CLI's progress adapter: rich bars on a terminal, plain timed lines in a log."""

from __future__ import annotations

import io
import re

from rich.console import Console

from lutnas._progress import rich_progress


def _lines(buffer: io.StringIO) -> list[str]:
    """The printed lines with the time so far masked (a loaded host may pass a second mid-test)."""
    return [re.sub(r"\d+:\d\d:\d\d elapsed$", "H:MM:SS elapsed", line) for line in buffer.getvalue().splitlines()]


def _console(terminal: bool) -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, force_terminal=terminal, width=120), buffer


def test_off_a_terminal_each_task_prints_its_start_tenths_and_end() -> None:
    console, buffer = _console(terminal=False)
    with rich_progress(console) as progress:
        for done in range(21):
            progress("phase 1/2 full (1 epoch)", done, 20)
        progress("phase 2/2 kernel-1 (1 epoch)", 0, 3)
        progress("subnets", 5, None)
        progress("subnets", 6, None)
    lines = _lines(buffer)
    full = [line for line in lines if line.startswith("phase 1/2")]
    assert [line.split(": ")[1].split(",")[0] for line in full] == [f"{2 * i}/20" for i in range(11)]
    assert all(line.endswith(", H:MM:SS elapsed") for line in lines)
    assert "phase 2/2 kernel-1 (1 epoch): 0/3, H:MM:SS elapsed" in lines
    assert [line for line in lines if line.startswith("subnets")] == ["subnets: 5, H:MM:SS elapsed"]


def test_task_text_is_shown_literally() -> None:
    console, buffer = _console(terminal=False)
    with rich_progress(console) as progress:
        progress("[bold]x\x1b", 1, 1)
    assert _lines(buffer) == ["[bold]x\\x1b: 1/1, H:MM:SS elapsed"]


def test_on_a_terminal_bars_are_drawn_and_disabled_gives_none() -> None:
    console, buffer = _console(terminal=True)
    with rich_progress(console) as progress:
        progress("collect", 3, 4)
    assert "collect" in buffer.getvalue() and "3/4" in buffer.getvalue()
    with rich_progress(console, enabled=False) as progress:
        assert progress is None
