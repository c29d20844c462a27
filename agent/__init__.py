"""The on-device timing agent: a gRPC server that times model files with local runtimes.

Importing this package is cheap (no torch, no pandas, no runtime library): those load only when
a job needs them. Start one with ``python -m agent`` or ``lutnas agent serve``.
"""

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
