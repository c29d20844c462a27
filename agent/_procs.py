"""Ending a process together with everything it started.

The timing worker runs as the leader of its own session and process group, and runs external tools
(``benchmark_model``, ``adb``) each in a process group of their own, so that a tool can be killed with
its children. Killing the worker's group alone would leave such a tool running, reparented to init:
:func:`kill_tree` stops the worker first (it can start nothing more), finds what it started through
``/proc`` while the tree is still whole, and kills each of those process groups, then the worker's.
Where there is no ``/proc`` only the worker's own group is killed.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

__all__ = ["descendants", "kill_tree", "kill_group"]

_PROC = Path("/proc")


def _parent_of(pid: int) -> int | None:
    """The parent pid of a live process, None when it is gone or a zombie."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name in parentheses may hold spaces or ')': the fields start after the last ')'.
    fields = text[text.rindex(")") + 2 :].split()
    return None if fields[0] == "Z" else int(fields[1])


def descendants(pid: int) -> list[int]:
    """Live processes below ``pid`` in the process tree (children first); empty without ``/proc``."""
    if not _PROC.is_dir():
        return []
    children: dict[int, list[int]] = {}
    for entry in os.listdir(_PROC):
        if entry.isdigit():
            parent = _parent_of(int(entry))
            if parent is not None:
                children.setdefault(parent, []).append(int(entry))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(0), []):
            found.append(child)
            todo.append(child)
    return found


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to process group ``pgid``; a group that is already gone is fine."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def kill_tree(leader: int) -> None:
    """SIGKILL process group ``leader`` and every process group its descendants run in.

    Args:
        leader: A process that leads its own process group (started with ``start_new_session``).
    """
    kill_group(leader, signal.SIGSTOP)  # a stopped process forks nothing and keeps its children in the tree
    groups = []
    for pid in descendants(leader):
        try:
            groups.append(os.getpgid(pid))
        except ProcessLookupError:
            continue
    for pgid in dict.fromkeys(groups):
        if pgid != leader:
            kill_group(pgid)
    kill_group(leader)
