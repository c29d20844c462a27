"""torch: TorchScript files and ``torch.export`` (.pt2) archives, on CPU or CUDA.

Options: ``device`` (``cpu`` default, ``cuda``, ``cuda:N``), ``mode`` on CUDA (``graph`` default:
time CUDA-graph replays with CUDA events, because eager timing of small blocks measures Python
launch overhead; ``eager``: time eager calls with CUDA events).
TorchScript has no declared shapes, so a TorchScript job must give its input shapes.

A ``.pt2`` archive is inspected before ``torch.export.load`` sees it. Its graphs are programs: every
node must call an operator on the allowlist of pure tensor operators (:mod:`agent.runtimes._pt2_graph`
also refuses compiled payloads, guard code and symbolic shapes). And torch unpickles weights and
constants saved with ``use_pickle``, custom and opaque objects, and (after a failed safe load)
legacy weight files and sample inputs, and an unpickler runs whatever the file says. Archives
with any of those are refused; ``.pt`` members must load with ``torch.load(weights_only=True)``.
TorchScript files stay trusted code: TorchScript can call any operator.
"""

from __future__ import annotations

import io
import json
import posixpath
import time
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent.errors import JobError, bad_model_code, one_line
from agent.runtimes import LoadOptions, RuntimeProbe
from agent.runtimes._probe import installed_version
from agent.runtimes._pt2_graph import check_pt2_layout, check_pt2_program, is_program_member
from agent.timing import Measurement, TimingPlan, measure

__all__ = ["TorchRuntime", "detect_torch_format", "check_pt2_archive"]

_FORMATS = ("torchscript", "pt2")
# What zipfile raises for a damaged archive: bad records, undecodable names, truncated or corrupt data.
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, ValueError, EOFError, OSError, NotImplementedError)  # NotImplementedError: a newer zip version
_GRAPH_WARMUP_RUNS = 3  # eager runs on a side stream before capture, as CUDA graphs require


def detect_torch_format(model_bytes: bytes) -> str:
    """``pt2`` for a torch.export archive, ``torchscript`` for other zip archives.

    Raises:
        JobError: INVALID_ARGUMENT when the bytes are not a zip archive.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(model_bytes)) as zf:
            names = zf.namelist()
    except _ZIP_ERRORS as err:
        raise JobError("INVALID_ARGUMENT", "not a TorchScript or torch.export archive (not a zip file)") from err
    return "pt2" if any(n.endswith("archive_format") for n in names) else "torchscript"


def check_pt2_archive(torch: Any, model_bytes: bytes) -> None:
    """Refuse a torch.export archive whose loading would run anything but pure tensor operators.

    The zip directory is judged first (members, sizes), then the graphs and payload configs as JSON;
    ``torch`` reads a member only after all of that passed.

    Raises:
        JobError: INVALID_ARGUMENT naming the offending member or operator.
    """
    try:
        zf = zipfile.ZipFile(io.BytesIO(model_bytes))
    except _ZIP_ERRORS as err:
        raise JobError("INVALID_ARGUMENT", f"pt2 archive: not a readable zip file: {one_line(err, 100)}") from err
    with zf:
        check_pt2_layout(zf.infolist(), len(model_bytes))
        pickles = []
        for info in zf.infolist():
            # Judged by base name wherever the member sits: a payload config or a pickle in an
            # unexpected folder is checked too.
            base = posixpath.basename(info.filename)
            if is_program_member(info.filename):
                check_pt2_program(info.filename, _read(zf, info))
            elif base.endswith(("_weights_config.json", "_constants_config.json")):
                _check_payload_config(info.filename, _read(zf, info))
            elif base.endswith((".pt", ".pkl")):
                pickles.append(info)
        for info in pickles:
            _check_safe_pickle(torch, info.filename, _read(zf, info))


def _read(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    # Reads at most the declared size, which check_pt2_layout bounded.
    try:
        return zf.read(info)
    except (*_ZIP_ERRORS, NotImplementedError, RuntimeError) as err:  # also: unknown compression, encrypted
        raise JobError("INVALID_ARGUMENT", f"pt2 archive: member {info.filename[:100]!r} is damaged: {one_line(err, 100)}") from err


def _check_payload_config(member: str, raw: bytes) -> None:
    try:
        entries = json.loads(raw)["config"]
        payloads = [(fqn, bool(p.get("use_pickle")), str(p.get("path_name", ""))) for fqn, p in entries.items()]
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise JobError("INVALID_ARGUMENT", f"pt2 archive: {member} is not a payload config") from err
    for fqn, use_pickle, path_name in payloads:
        if use_pickle:
            raise JobError("INVALID_ARGUMENT", f"pt2 archive: {fqn[:64]!r} is stored as a pickle; only plain tensors are accepted")
        if member.endswith("_constants_config.json") and not path_name.startswith("tensor_"):
            raise JobError("INVALID_ARGUMENT", f"pt2 archive: constant {fqn[:64]!r} is an object ({path_name[:64]!r}), not a tensor")


def _check_safe_pickle(torch: Any, member: str, raw: bytes) -> None:
    # torch.export.load reads these with weights_only=True first and falls back to the full
    # unpickler; a member the safe loader reads never reaches that fallback.
    try:
        torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as err:  # any refusal or damage: the member is not plain tensors
        raise JobError("INVALID_ARGUMENT", f"pt2 archive: {member[:80]} is not plain tensors: {one_line(err, 120)}") from err


@dataclass
class _Loaded:
    run_once: Callable[[], float]
    settings: dict[str, str]


class TorchRuntime:
    """Times TorchScript or exported programs with torch."""

    name = "torch"

    def probe(self) -> RuntimeProbe:
        version = installed_version("torch", "torch")
        if version is None:
            return RuntimeProbe(False, detail="pip install torch")
        return RuntimeProbe(True, version=version)

    def load(self, model_bytes: bytes, options: LoadOptions) -> _Loaded:
        try:
            import torch
        except ImportError as err:
            raise JobError("FAILED_PRECONDITION", f"torch is not installed here: {err}") from err
        opts = dict(options.options)
        device_name = opts.pop("device", "cpu")
        mode = opts.pop("mode", "graph" if device_name.startswith("cuda") else "eager")
        if opts:
            raise JobError("INVALID_ARGUMENT", f"unknown torch option(s) {sorted(opts)}; known: device, mode")
        if mode not in ("graph", "eager"):
            raise JobError("INVALID_ARGUMENT", f"option mode={mode!r}; known: graph, eager")
        try:
            device = torch.device(device_name)
        except RuntimeError as err:
            raise JobError("INVALID_ARGUMENT", f"option device={device_name!r} is not a torch device") from err
        if device.type not in ("cpu", "cuda"):
            raise JobError("INVALID_ARGUMENT", f"option device={device_name!r}; known: cpu, cuda, cuda:N")
        if device.type == "cuda":
            if not torch.cuda.is_available():
                raise JobError("FAILED_PRECONDITION", "option device=cuda but torch sees no CUDA device here")
            if device.index is not None and device.index >= torch.cuda.device_count():
                raise JobError(
                    "FAILED_PRECONDITION", f"option device={device_name!r} but torch sees {torch.cuda.device_count()} CUDA device(s)"
                )
            # Events, streams and graph replays all use the current device; make it the job's.
            torch.cuda.set_device(device)
        if device.type == "cpu" and mode == "graph":
            raise JobError("INVALID_ARGUMENT", "mode=graph needs device=cuda")
        fmt = options.format or detect_torch_format(model_bytes)
        if fmt not in _FORMATS:
            raise JobError("INVALID_ARGUMENT", f"torch format {fmt!r}; known: {', '.join(_FORMATS)}")
        torch.set_num_threads(options.threads)
        model, example = _load_module(torch, model_bytes, fmt, device)
        inputs = _make_inputs(torch, options, example, device)
        settings = {"device": str(device), "mode": mode, "format": fmt}
        with torch.no_grad():
            try:
                model(*inputs)  # one run here so shape errors surface as bad input
            except (RuntimeError, TypeError, ValueError, IndexError) as err:
                shapes = [list(t.shape) for t in inputs]
                raise JobError(bad_model_code(err), f"torch rejected inputs {shapes}: {one_line(err, 200)}") from err
        if device.type == "cpu":
            return _Loaded(run_once=_cpu_timer(torch, model, inputs), settings=settings)
        if mode == "eager":
            return _Loaded(run_once=_cuda_eager_timer(torch, model, inputs, device), settings=settings)
        return _Loaded(run_once=_cuda_graph_timer(torch, model, inputs, device), settings=settings)

    def time(self, loaded: _Loaded, plan: TimingPlan) -> Measurement:
        m = measure(loaded.run_once, plan)
        m.settings = dict(loaded.settings)
        return m


def _load_module(torch: Any, model_bytes: bytes, fmt: str, device: Any) -> tuple[Any, tuple | None]:
    buf = io.BytesIO(model_bytes)
    try:
        if fmt == "torchscript":
            module = torch.jit.load(buf, map_location=device)
            module.eval()
            return module, None
        check_pt2_archive(torch, model_bytes)
        program = torch.export.load(buf)
    except JobError:
        raise
    except Exception as err:  # torch raises many types for a corrupt archive; all mean "bad model"
        raise JobError(bad_model_code(err), f"torch cannot load the {fmt} model: {one_line(err, 200)}") from err
    example = getattr(program, "example_inputs", None)
    args = example[0] if example else _placeholder_examples(torch, program)
    module = program.module().to(device)
    return module, tuple(args) if args is not None else None


def _placeholder_examples(torch: Any, program: Any) -> tuple | None:
    # Older exports carry no example_inputs; the user-input placeholders' fake tensors give shapes.
    user_inputs = set(program.graph_signature.user_inputs)
    vals = [n.meta.get("val") for n in program.graph.nodes if n.op == "placeholder" and n.name in user_inputs]
    if not vals or any(v is None or not hasattr(v, "shape") for v in vals):
        return None
    return tuple(torch.zeros(tuple(int(d) for d in v.shape), dtype=v.dtype) for v in vals)


def _make_inputs(torch: Any, options: LoadOptions, example: tuple | None, device: Any) -> list[Any]:
    gen = torch.Generator().manual_seed(0)
    if options.inputs:
        tensors = []
        budget = options.max_input_bytes
        for i, spec in enumerate(options.inputs):
            if not spec.shape:
                raise JobError("INVALID_ARGUMENT", f"torch input {i} needs a shape")
            dtype_name = spec.dtype or "float32"
            dtype = getattr(torch, dtype_name, None)
            if not isinstance(dtype, torch.dtype):
                raise JobError("INVALID_ARGUMENT", f"torch input {i} dtype {dtype_name!r} is not a torch dtype")
            numel = 1
            for d in spec.shape:
                numel *= int(d)
            nbytes = numel * torch.empty((), dtype=dtype).element_size()
            if nbytes > budget:
                raise JobError("RESOURCE_EXHAUSTED", f"torch input {i} of shape {list(spec.shape)} needs {nbytes} bytes; limit {budget}")
            budget -= nbytes
            if dtype.is_floating_point:
                t = torch.randn(tuple(spec.shape), generator=gen).to(dtype)
            else:
                t = torch.randint(0, 8, tuple(spec.shape), generator=gen).to(dtype)
            tensors.append(t.to(device))
        return tensors
    if example is None:
        raise JobError("INVALID_ARGUMENT", "this torch model declares no input shapes; give them in the job")
    return [torch.randn(t.shape, generator=gen).to(t.dtype).to(device) if t.is_floating_point() else t.to(device) for t in example]


def _cpu_timer(torch: Any, model: Any, inputs: list[Any]) -> Callable[[], float]:
    clock = time.perf_counter_ns

    def run_once() -> float:
        with torch.no_grad():
            t0 = clock()
            model(*inputs)
            return (clock() - t0) / 1e6

    return run_once


def _cuda_eager_timer(torch: Any, model: Any, inputs: list[Any], device: Any) -> Callable[[], float]:
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)

    def run_once() -> float:
        with torch.no_grad():
            start.record()
            model(*inputs)
            end.record()
        end.synchronize()
        return float(start.elapsed_time(end))

    return run_once


def _cuda_graph_timer(torch: Any, model: Any, inputs: list[Any], device: Any) -> Callable[[], float]:
    with torch.cuda.device(device):
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.no_grad(), torch.cuda.stream(side):
            for _ in range(_GRAPH_WARMUP_RUNS):
                model(*inputs)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.no_grad(), torch.cuda.graph(graph):
                model(*inputs)
        except RuntimeError as err:
            raise JobError(
                "FAILED_PRECONDITION", f"model cannot be captured as a CUDA graph (try mode=eager): {one_line(err, 200)}"
            ) from err
        torch.cuda.synchronize(device)
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)

    def run_once() -> float:
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        return float(start.elapsed_time(end))

    return run_once
