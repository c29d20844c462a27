"""LiteRT/TFLite: ``ai_edge_litert``, else ``tflite_runtime``, else ``tensorflow.lite``.

Options: ``xnnpack`` (``1`` default: the interpreter's default XNNPACK delegate; ``0``: builtin
kernels only), ``delegate`` (the name of an external delegate the operator allowed with the agent's
``--delegate NAME=PATH``; a job never names a path, or it could load a "model" it uploaded as a
shared object), ``delegate.<key>`` (options passed to that delegate), ``clock``
(:mod:`agent.runtimes._clock`): ``auto`` (default) reads the calling thread's CPU time with one
thread and no external delegate, where the interpreter and XNNPACK compute on the calling thread
(measured here: CPU time equals wall time within 1% on a quiet core), else the wall clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from agent.errors import JobError, bad_model_code, one_line
from agent.runtimes import LoadOptions, RuntimeProbe
from agent.runtimes._clock import clock_ns, resolve_clock
from agent.runtimes._inputs import match_specs, random_tensor, resolve_shape
from agent.runtimes._probe import installed_version
from agent.timing import Measurement, TimingPlan, measure

__all__ = ["TfliteRuntime", "import_interpreter_module"]

_CANDIDATES = (
    ("ai_edge_litert.interpreter", "ai_edge_litert", ("ai-edge-litert", "ai-edge-litert-nightly")),
    ("tflite_runtime.interpreter", "tflite_runtime", ("tflite-runtime",)),
    ("tensorflow.lite", "tensorflow", ("tensorflow", "tensorflow-cpu", "tensorflow-aarch64")),
)


def import_interpreter_module() -> tuple[ModuleType, str]:
    """The first importable interpreter module and its package name.

    Raises:
        JobError: FAILED_PRECONDITION when none is installed.
    """
    import importlib

    for module, package, _ in _CANDIDATES:
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue
        # tensorflow.lite exposes the interpreter one level down.
        return (mod.interpreter if hasattr(mod, "interpreter") and not hasattr(mod, "Interpreter") else mod), package
    raise JobError("FAILED_PRECONDITION", "no TFLite interpreter here; pip install ai-edge-litert (or tflite-runtime)")


@dataclass
class _Loaded:
    interpreter: Any
    settings: dict[str, str]
    clock: str = "wall"  # wall | thread_cpu


def _allowed_delegate(name: str, allowed: Mapping[str, str]) -> str:
    """The path the operator gave for delegate ``name``.

    Raises:
        JobError: INVALID_ARGUMENT when ``name`` is not on the agent's allowlist.
    """
    path = allowed.get(name)
    if path is None:
        offered = ", ".join(sorted(allowed)) or "none (the agent was started without --delegate)"
        raise JobError(
            "INVALID_ARGUMENT", f"delegate {name[:64]!r} is not on this agent's allowlist (--delegate NAME=PATH); offered: {offered}"
        )
    return path


class TfliteRuntime:
    """Times ``.tflite`` flatbuffers with ``Interpreter.invoke``."""

    name = "tflite"

    def probe(self) -> RuntimeProbe:
        for _, package, dists in _CANDIDATES:
            version = installed_version(package, *dists)
            if version is not None:
                return RuntimeProbe(True, version=version, detail=package)
        return RuntimeProbe(False, detail="pip install ai-edge-litert")

    def load(self, model_bytes: bytes, options: LoadOptions) -> _Loaded:
        mod, package = import_interpreter_module()
        opts = dict(options.options)
        xnnpack = opts.pop("xnnpack", "1")
        if xnnpack not in ("0", "1"):
            raise JobError("INVALID_ARGUMENT", f"option xnnpack must be 0 or 1, got {xnnpack!r}")
        delegate_name = opts.pop("delegate", "")
        delegate_path = _allowed_delegate(delegate_name, options.delegates) if delegate_name else ""
        delegate_opts = {k.split(".", 1)[1]: opts.pop(k) for k in list(opts) if k.startswith("delegate.")}
        clock = opts.pop("clock", "auto")
        if opts:
            raise JobError("INVALID_ARGUMENT",
                           f"unknown tflite option(s) {sorted(opts)}; known: xnnpack, delegate, delegate.<key>, clock")
        clock = resolve_clock(clock, options.threads == 1 and not delegate_name,
                              f"threads={options.threads}" + (f", delegate={delegate_name}" if delegate_name else ""))
        kwargs: dict[str, Any] = {"model_content": bytes(model_bytes), "num_threads": options.threads}
        if delegate_path:
            try:
                kwargs["experimental_delegates"] = [mod.load_delegate(delegate_path, delegate_opts)]
            except (ValueError, OSError) as err:
                raise JobError("FAILED_PRECONDITION", f"cannot load delegate {delegate_name!r}: {one_line(err, 200)}") from err
        if xnnpack == "0":
            kwargs["experimental_op_resolver_type"] = mod.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        try:
            interp = mod.Interpreter(**kwargs)
        except (ValueError, RuntimeError) as err:
            raise JobError(bad_model_code(err), f"TFLite cannot load the model: {one_line(err, 200)}") from err
        details = interp.get_input_details()
        specs = match_specs([d["name"] for d in details], options.inputs)
        try:
            for d, spec in zip(details, specs, strict=True):
                if spec is not None and spec.shape:
                    interp.resize_tensor_input(d["index"], list(spec.shape))
            interp.allocate_tensors()
        except (ValueError, RuntimeError) as err:
            raise JobError(bad_model_code(err), f"TFLite rejected the input shapes: {one_line(err, 200)}") from err
        rng = np.random.default_rng(0)
        budget = options.max_input_bytes
        try:
            for d, spec in zip(interp.get_input_details(), specs, strict=True):
                shape = resolve_shape(d["name"], list(d["shape"]), None)
                dtype = spec.dtype if spec is not None and spec.dtype else d["dtype"]
                tensor = random_tensor(shape, dtype, rng, budget)
                budget -= tensor.nbytes
                interp.set_tensor(d["index"], tensor)
            interp.invoke()  # one run here so bad models and shapes surface as bad input
        except (ValueError, RuntimeError) as err:
            raise JobError(bad_model_code(err), f"TFLite cannot run the model: {one_line(err, 200)}") from err
        settings = {"interpreter": package, "xnnpack": xnnpack, "clock": clock}
        if delegate_name:
            settings["delegate"] = delegate_name
        return _Loaded(interpreter=interp, settings=settings, clock=clock)

    def time(self, loaded: _Loaded, plan: TimingPlan) -> Measurement:
        invoke = loaded.interpreter.invoke
        clock = clock_ns(loaded.clock)

        def run_once() -> float:
            t0 = clock()
            invoke()
            return (clock() - t0) / 1e6

        m = measure(run_once, plan)
        m.settings = dict(loaded.settings)
        return m
