"""Host side of measurement: block/subnet builders, ONNX/TFLite exporters, the artifact cache,
the agent client, the fleet scheduler and end-to-end validation.

Heavy parts (torch, onnx) load on first use, so ``from profiler.client import AgentClient``
stays cheap for commands that only talk to agents.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "AgentClient",
    "AgentError",
    "AgentSpec",
    "DevicesReport",
    "ProfileRun",
    "TimingReport",
    "ValidationRun",
    "device_facts",
    "profile_lut",
    "time_model_file",
    "validate_lut",
    "ArtifactCache",
    "FORMATS",
    "AgentRef",
    "ProfileSettings",
    "ProfileReport",
    "ValidationSettings",
    "build_block",
    "build_from_net_config",
    "build_subnet",
    "export_block",
    "export_module",
    "export_net_config",
    "export_subnet",
    "profile",
    "sha256_hex",
    "validate",
]

_HOME = {
    "AgentClient": "profiler.client",
    "AgentError": "profiler.client",
    "AgentSpec": "profiler.agents",
    "DevicesReport": "profiler.agents",
    "TimingReport": "profiler.agents",
    "device_facts": "profiler.agents",
    "time_model_file": "profiler.agents",
    "ProfileRun": "profiler.profile_run",
    "profile_lut": "profiler.profile_run",
    "ValidationRun": "profiler.validate_run",
    "validate_lut": "profiler.validate_run",
    "ArtifactCache": "profiler.artifacts",
    "sha256_hex": "profiler.artifacts",
    "FORMATS": "profiler.export",
    "export_block": "profiler.export",
    "export_module": "profiler.export",
    "export_net_config": "profiler.export",
    "export_subnet": "profiler.export",
    "build_block": "profiler.builders",
    "build_from_net_config": "profiler.builders",
    "build_subnet": "profiler.builders",
    "AgentRef": "profiler.fleet",
    "ProfileSettings": "profiler.fleet",
    "ProfileReport": "profiler.fleet",
    "profile": "profiler.fleet",
    "ValidationSettings": "profiler.validate",
    "validate": "profiler.validate",
}


def __getattr__(name: str) -> Any:
    try:
        module = _HOME[name]
    except KeyError:
        raise AttributeError(f"module 'profiler' has no attribute {name!r}") from None
    return getattr(importlib.import_module(module), name)
