"""The clock one run's latency is read from, shared by the CPU runtimes.

- ``wall``: ``perf_counter_ns`` around one run.
- ``thread_cpu``: the CPU time of the calling thread during one run (``thread_time_ns``). Valid only
  when the runtime computes on the calling thread (one thread, no asynchronous delegate or execution
  provider); then it is the model's own compute time without the slices the scheduler gives other
  tenants of the core, which keeps whole-network medians on a shared host honest (blocks fit in one
  slice and are rarely preempted; 5-30 ms networks are preempted in nearly every run). Cache and
  memory-bandwidth effects stay in.
- ``auto`` (default): ``thread_cpu`` where it is valid, else ``wall``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from agent.errors import JobError

CLOCKS = ("auto", "wall", "thread_cpu")


def resolve_clock(requested: str, on_calling_thread: bool, why_not: str) -> str:
    """``auto`` resolved to ``thread_cpu`` or ``wall``; an explicit ``thread_cpu`` checked.

    Args:
        requested: The job's ``clock`` option.
        on_calling_thread: Whether this job's runs compute entirely on the calling thread.
        why_not: What makes ``thread_cpu`` invalid for this job, for the error message.

    Raises:
        JobError: INVALID_ARGUMENT for an unknown clock or ``thread_cpu`` where it would miss work.
    """
    if requested not in CLOCKS:
        raise JobError("INVALID_ARGUMENT", f"option clock={requested!r}; known: {', '.join(CLOCKS)}")
    if requested == "auto":
        return "thread_cpu" if on_calling_thread else "wall"
    if requested == "thread_cpu" and not on_calling_thread:
        raise JobError("INVALID_ARGUMENT", f"option clock=thread_cpu needs one thread on the calling thread ({why_not}); use clock=wall")
    return requested


def clock_ns(name: str) -> Callable[[], int]:
    """The nanosecond counter behind a resolved clock name."""
    return time.thread_time_ns if name == "thread_cpu" else time.perf_counter_ns
