"""The on-device timing agent: a gRPC server that times model files with local runtimes.

Importing this package is cheap (no torch, no pandas, no runtime library): those load only when
a job needs them. Start one with ``python -m agent`` or ``lutnas agent serve``.
"""

import importlib
from typing import TYPE_CHECKING, Any

# public name -> the module that defines it; loaded on first use, so the host's command line, which only
# needs agent._logtext's escaping, does not load numpy and the runtimes' registry to print its help.
_NAMES = {
    "AGENT_VERSION": "agent.config",
    "AgentConfig": "agent.config",
    "JobError": "agent.errors",
    "RUNTIMES": "agent.runtimes",
    "LoadOptions": "agent.runtimes",
    "Runtime": "agent.runtimes",
    "RuntimeProbe": "agent.runtimes",
    "get_runtime": "agent.runtimes",
    "list_runtimes": "agent.runtimes",
    "Measurement": "agent.timing",
    "Stats": "agent.timing",
    "TimingPlan": "agent.timing",
    "measure": "agent.timing",
    "summarize": "agent.timing",
}

if TYPE_CHECKING:
    from agent.config import AGENT_VERSION, AgentConfig
    from agent.errors import JobError
    from agent.runtimes import RUNTIMES, LoadOptions, Runtime, RuntimeProbe, get_runtime, list_runtimes
    from agent.timing import Measurement, Stats, TimingPlan, measure, summarize

__all__ = [
    "AGENT_VERSION",
    "AgentConfig",
    "JobError",
    "RUNTIMES",
    "LoadOptions",
    "Runtime",
    "RuntimeProbe",
    "get_runtime",
    "list_runtimes",
    "Measurement",
    "Stats",
    "TimingPlan",
    "measure",
    "summarize",
]


def __getattr__(name: str) -> Any:
    module = _NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'agent' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_NAMES))
