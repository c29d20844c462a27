"""The fleet scheduler: fill per-device LUTs by driving many agents at once.

Roles, one module each:
- :mod:`.settings`: what to profile (:class:`ProfileSettings`), the agents (:class:`AgentRef`), the block plan;
- :mod:`.reports`: what a profile did, per device and overall, and progress events;
- :mod:`.exports`: the exporters run ahead of the agents in a process pool, into the content-addressed
  artifact cache, so exporting never stalls a device (or a caller's export function, for synthetic runtimes);
- :mod:`.session`: one connection's stream to an agent, a few jobs kept on it (the agent runs one at a
  time: timing must own the device), a model uploaded only when the agent lacks it;
- :mod:`.sentinel`: the drift sentinel, a fixed reference block re-timed every N jobs; when it drifts past
  a threshold the agent cools down and the jobs since the last good reading are timed again;
- :mod:`.worker`: one thread per agent takes blocks from its device's list and writes each result to the
  store in its own transaction as it arrives;
- :mod:`.run`: :func:`profile`, which checks the devices, plans each one's work (resume is the default: blocks
  with a row for that device setting are never timed again), starts the workers and reports.

A job-level error is retried with backoff and finally recorded as a failed block. An agent
that disappears gives its in-flight job back to the device's list (another agent of that
device takes it) and is polled until it returns or ``agent_wait_s`` passes.
"""

from __future__ import annotations

from .exports import ExportError
from .reports import UNSTEADY_ROUNDS, DeviceReport, ProfileReport, Progress
from .run import profile
from .sentinel import sentinel_block
from .settings import DEFAULT_PLAN, FORMAT_FOR_RUNTIME, AgentRef, ProfileError, ProfileSettings, default_cache_dir, plan_blocks

__all__ = [
    "ProfileSettings",
    "AgentRef",
    "DeviceReport",
    "ProfileReport",
    "ExportError",
    "ProfileError",
    "Progress",
    "profile",
    "plan_blocks",
    "sentinel_block",
    "DEFAULT_PLAN",
    "UNSTEADY_ROUNDS",
    "default_cache_dir",
    "FORMAT_FOR_RUNTIME",
]
