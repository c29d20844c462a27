"""Runtimes behind one small interface, picked by name.

A runtime turns model bytes into something runnable (:meth:`Runtime.load`) and times it
(:meth:`Runtime.time`); the agent never needs to know what a block is. Each implementation
imports its library inside ``load``, so importing this package stays cheap on a Raspberry Pi;
:meth:`Runtime.probe` reports availability from package metadata without importing anything heavy.

Built-ins live in ``RUNTIMES`` (fixed at import). An operator can plug in more with
``--extra-runtime module:attr``; those are passed around explicitly, never written into ``RUNTIMES``.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

from agent.timing import Measurement, TimingPlan

__all__ = [
    "RUNTIMES",
    "Runtime",
    "RuntimeProbe",
    "LoadOptions",
    "InputSpec",
    "get_runtime",
    "list_runtimes",
    "load_runtime_class",
]


@dataclass(frozen=True)
class InputSpec:
    """A job's request for one input tensor."""

    name: str  # empty: the model's i-th input
    shape: tuple[int, ...]  # empty: the model's declared shape
    dtype: str  # numpy dtype name; empty: the model's own


@dataclass(frozen=True)
class LoadOptions:
    """What ``Runtime.load`` gets besides the model bytes."""

    format: str = ""  # onnx, tflite, torchscript, pt2, json; empty: the runtime decides
    threads: int = 1
    inputs: tuple[InputSpec, ...] = ()
    options: Mapping[str, str] = field(default_factory=dict)  # runtime-specific (device, mode, delegate, ...)
    workdir: Path | None = None  # a private directory for this job: create it if needed; removed after the job
    plan: TimingPlan = field(default_factory=TimingPlan)  # tools that run their own loop need it at load
    max_input_bytes: int = 256 << 20
    delegates: Mapping[str, str] = field(default_factory=dict)  # the operator's allowlist: name -> shared object path


@dataclass(frozen=True)
class RuntimeProbe:
    """Whether a runtime can run here, found without importing it."""

    available: bool
    version: str = ""
    detail: str = ""  # why not, or what it offers


@runtime_checkable
class Runtime(Protocol):
    """The interface every runtime implements."""

    name: str

    def probe(self) -> RuntimeProbe:
        """Report availability and version cheaply (no heavy import)."""
        ...

    def load(self, model_bytes: bytes, options: LoadOptions) -> Any:
        """Build a runnable model; raise ``JobError`` for bad models, shapes or options."""
        ...

    def time(self, loaded: Any, plan: TimingPlan) -> Measurement:
        """Time the loaded model under ``plan`` (usually via :func:`agent.timing.measure`)."""
        ...


# Name -> "module:attr"; resolved on first use so an unused runtime costs nothing.
RUNTIMES: Mapping[str, str] = MappingProxyType(
    {
        "onnxruntime": "agent.runtimes.onnxruntime_rt:OnnxRuntime",
        "tflite": "agent.runtimes.tflite_rt:TfliteRuntime",
        "torch": "agent.runtimes.torch_rt:TorchRuntime",
        "benchmark_model": "agent.runtimes.benchmark_model_rt:BenchmarkModelRuntime",
    }
)


def list_runtimes(extra: Mapping[str, str] | None = None) -> list[str]:
    """Names of the built-in runtimes plus any ``extra`` ones, sorted."""
    return sorted({*RUNTIMES, *(extra or {})})


def load_runtime_class(spec: str) -> type:
    """Import ``module:attr`` and return the class.

    Raises:
        ValueError: the spec is malformed or does not name a class with ``name``, ``load`` and ``time``.
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"runtime spec must look like 'package.module:ClassName', got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"cannot import runtime module {module_name!r} from {spec!r}: {err}") from err
    cls = getattr(module, attr, None)
    if not isinstance(cls, type) or not all(hasattr(cls, part) for part in ("name", "load", "time", "probe")):
        raise ValueError(f"{spec!r} is not a runtime class (needs name, probe, load and time)")
    return cls


def get_runtime(name: str, extra: Mapping[str, str] | None = None) -> Runtime:
    """Instantiate the runtime called ``name``.

    Args:
        name: A built-in name or a key of ``extra``.
        extra: Operator-supplied runtimes, name -> "module:attr".

    Raises:
        ValueError: unknown name, listing the known ones.
    """
    table = {**RUNTIMES, **(extra or {})}
    spec = table.get(name)
    if spec is None:
        raise ValueError(f"unknown runtime {name!r}; known: {', '.join(list_runtimes(extra))}")
    return load_runtime_class(spec)()
