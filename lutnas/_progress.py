"""The one progress adapter of the command line: library calls report ``progress(task, done, total)``.

On a terminal it draws rich bars on stderr. Off one (a pipe, a CI log, ``nohup``) bars would only render when
the work ends, so it prints plain lines instead: when a task first shows up, each tenth of the way, and when
it finishes, each with the time since the command started.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from lutnas._common import err_console
from lutnas._text import escape_controls, literal

__all__ = ["ProgressFn", "rich_progress"]

#: ``progress(task, done, total)``: the same task text for the same bar; total None when unknown.
ProgressFn = Callable[[str, int, "int | None"], None]


@contextmanager
def rich_progress(console: Console | None = None, enabled: bool = True) -> Iterator[ProgressFn | None]:
    """Yield the progress callable a library call takes (None when not ``enabled``, so nothing is shown).

    Args:
        console: where to draw (stderr's console by default).
        enabled: False yields None (e.g. on the ranks of a process group that do not report).
    """
    console = console or err_console
    if not enabled:
        yield None
    elif console.is_terminal:
        with _Bars(console) as bars:
            yield bars.update
    else:
        yield _Lines(console).update


class _Bars:
    """One rich bar per task text."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            TextColumn("{task.description}", style="bold", markup=False),  # task texts may quote names
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
        )
        self.tasks: dict[str, object] = {}

    def __enter__(self) -> _Bars:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def update(self, task: str, done: int, total: int | None) -> None:
        if task not in self.tasks:
            self.tasks[task] = self.progress.add_task(escape_controls(task), total=total)
        self.progress.update(self.tasks[task], completed=done, total=total)


class _Lines:
    """Plain lines for logs: a task's first report, each tenth of the way, its end; with the time so far."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.started = time.monotonic()
        self.tenths: dict[str, int] = {}  # task -> the last tenth of the way printed

    def update(self, task: str, done: int, total: int | None) -> None:
        tenth = min(10, done * 10 // total) if total else 0
        if task in self.tenths and self.tenths[task] >= tenth:
            return
        self.tenths[task] = tenth
        self._line(task, done, total)

    def _line(self, task: str, done: int, total: int | None) -> None:
        elapsed = int(time.monotonic() - self.started)
        count = f"{done}/{total}" if total else str(done)
        clock = f"{elapsed // 3600}:{elapsed // 60 % 60:02d}:{elapsed % 60:02d}"
        self.console.print(literal(f"{task}: {count}, {clock} elapsed"), soft_wrap=True, highlight=False)
