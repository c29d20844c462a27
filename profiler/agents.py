"""Talking to agents by the names users give them: ``[NAME=]HOST:PORT`` specs, naming a device by the one rule
of ``profile``, ``validate`` and ``time``, device facts (``lutnas devices``) and timing any model file
(``lutnas time``).

Uses only the agent client (grpc, protobuf): no torch, no pandas, so ``lutnas devices`` and ``lutnas time``
start fast and run anywhere the agent does.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from profiler.client import (
    AgentClient,
    AgentError,
    AgentJobError,
    connect_kw,
    message_to_dict,
    oversized_message,
    runtime_for_path,
)

__all__ = [
    "AgentSpec",
    "BAD_JOB_CODES",
    "DevicesReport",
    "ModelRejected",
    "Notes",
    "TimingReport",
    "device_facts",
    "name_agents",
    "parse_shape",
    "time_model_file",
]

log = logging.getLogger(__name__)

# Job error codes that mean the caller's model or request was bad, not that the device failed.
BAD_JOB_CODES = frozenset({"INVALID_ARGUMENT", "NOT_FOUND", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION"})

# Model formats the agent needs named for the torch runtime (it cannot tell the archives apart otherwise).
_TORCH_FORMATS = {".pt": "torchscript", ".pt2": "pt2"}


class ModelRejected(AgentJobError, ValueError):
    """The agent refused the model or the request (bad file, shapes, runtime missing): bad input."""


@dataclass(frozen=True)
class AgentSpec:
    """One agent as a user names it.

    Attributes:
        address: ``host:port``.
        name: NAME of ``NAME=HOST:PORT``: the device's name, which wins over the agent's own;
            None for a bare ``HOST:PORT`` (the agent's own name is used, see :func:`name_agents`).
    """

    address: str
    name: str | None = None

    @classmethod
    def parse(cls, text: str) -> AgentSpec:
        """``NAME=HOST:PORT`` or ``HOST:PORT``.

        Raises:
            ValueError: not of that form (one line naming the text).
        """
        name, sep, address = text.partition("=")
        if not sep:
            name, address = "", text
        elif not name:
            raise ValueError(f"--agent must be NAME=HOST:PORT or HOST:PORT, got {text!r}")
        host, colon, port = address.rpartition(":")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"--agent must be NAME=HOST:PORT or HOST:PORT, got {text!r}")
        return cls(address=address, name=name or None)

    @classmethod
    def of(cls, agent: str | AgentSpec) -> AgentSpec:
        """``agent`` itself, or parsed from its text."""
        return agent if isinstance(agent, AgentSpec) else cls.parse(agent)


def _device_name(spec: AgentSpec, reported: str, consequence: str) -> tuple[str, str]:
    """(the device's name, a line for the user) by the one rule: NAME wins, else the agent's own name."""
    if spec.name is None:
        name = reported or spec.address
        return name, f"{spec.address}: using the agent's name {name!r}"
    if reported and reported != spec.name:
        return spec.name, (f"agent at {spec.address} calls itself {reported!r}; {consequence.format(name=spec.name)} "
                           "(--agent NAME wins over the agent's own name)")
    return spec.name, ""


class Notes:
    """Lines for the user, said as they arise: to ``notify`` when given, else to the log; kept in ``lines``."""

    def __init__(self, notify: Callable[[str], None] | None = None) -> None:
        self.notify = notify
        self.lines: list[str] = []

    def add(self, line: str) -> None:
        """Say ``line`` (an empty one is skipped)."""
        if not line:
            return
        self.lines.append(line)
        if self.notify is not None:
            self.notify(line)
        else:
            log.info("%s", line)

    def extend(self, lines: Iterable[str]) -> None:
        """Say each of ``lines``."""
        for line in lines:
            self.add(line)


def name_agents(agents: Sequence[str | AgentSpec], *, token: str | None = None, tls_ca: str | Path | None = None,
                connect_timeout_s: float | None = None, consequence: str = "",
                notes: Notes | None = None) -> list[tuple[str, str]]:
    """Ask each agent its name and name its device: NAME of ``NAME=HOST:PORT``, else the agent's own name.

    Args:
        agents: ``[NAME=]HOST:PORT`` texts or specs.
        token: Bearer token.
        tls_ca: CA certificate of TLS agents.
        connect_timeout_s: How long to keep trying an agent that does not answer (None: the client's defaults).
        consequence: What NAME is used for, ``{name}`` standing for it, for the line said when the agent calls
            itself otherwise (e.g. ``"rows are stored under {name!r}"``).
        notes: Where the lines for the user go (how each device was named); None logs them.

    Returns:
        ``[(device name, address)]`` in order.

    Raises:
        ValueError: a malformed spec.
        AgentError: an agent did not answer (the message names it).
    """
    specs = [AgentSpec.of(a) for a in agents]
    notes = notes if notes is not None else Notes()
    named: list[tuple[str, str]] = []
    for spec in specs:
        try:
            with _client(spec.address, token, tls_ca, connect_timeout_s) as client:
                reported = client.device_info().name
        except AgentError as err:
            if spec.name is None:
                err.args = (f"cannot ask {spec.address} its name ({err}); give --agent NAME=HOST:PORT",)
            else:
                err.args = (f"device {spec.name!r}: {err}",)
            raise
        name, line = _device_name(spec, reported, consequence)
        named.append((name, spec.address))
        notes.add(line)
    return named


def _client(address: str, token: str | None, tls_ca: str | Path | None, connect_timeout_s: float | None,
            **kw: Any) -> AgentClient:
    """A client that gives up on an unreachable agent after ``connect_timeout_s`` (None: the client's defaults;
    given, it also waits that long for one that refuses connections, e.g. still starting)."""
    if connect_timeout_s is not None:
        _check_timeout(connect_timeout_s)
    return AgentClient(address, token=token, tls_ca=tls_ca, **connect_kw(connect_timeout_s), **kw)


def _check_timeout(value: float) -> None:
    if not (isinstance(value, (int, float)) and value > 0 and value != float("inf")):
        raise ValueError(f"--connect-timeout-s must be a finite number > 0, got {value!r}")


# -- devices --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DevicesReport:
    """Device facts of several agents (``lutnas devices --json``).

    Attributes:
        devices: One dict per agent that answered: ``GetDeviceInfo`` as JSON, plus ``address`` and ``device``
            (NAME of ``NAME=HOST:PORT``, else the agent's own name).
        errors: One ``{"address", "error", "code"}`` per agent that did not.
    """

    devices: list[dict[str, Any]]
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every agent answered."""
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {"devices": self.devices, "errors": self.errors}

    def facts(self) -> list[tuple[str, list[str]]]:
        """The facts a reader compares, one ``(label, [text per device])`` row each (``-`` when unknown):
        ``device`` is the user's NAME, ``agent's name`` what the agent calls itself."""
        return [(label, [fact(row) for row in self.devices]) for label, fact in _FACTS]


def _max_threads(row: dict[str, Any]) -> str:
    """How many threads a job may ask for: one per CPU the timing worker may use (``-``: unpinned, any)."""
    cpus = [c for c in (row.get("properties") or {}).get("timing_cpus", "").split(",") if c]
    return f"{len(cpus)} (CPUs {','.join(cpus)})" if cpus else "-"


def _governors(row: dict[str, Any]) -> str:
    names = sorted({c.get("governor", "") for c in (row.get("state") or {}).get("cpus", []) if c.get("governor")})
    return ",".join(names) or "-"


def _max_temp(row: dict[str, Any]) -> str:
    temps = [z.get("temp_c", 0.0) for z in (row.get("state") or {}).get("thermal", [])]
    return f"{max(temps):.1f}" if temps else "-"


def _runtimes(row: dict[str, Any]) -> str:
    return ", ".join(f"{x['name']} {x.get('version', '')}".strip() for x in row.get("runtimes", []) if x.get("available"))


def _agent(row: dict[str, Any]) -> str:
    return (f"{row.get('agent_version', '')} (auth {'on' if row.get('auth_required') else 'off'}, "
            f"tls {'on' if row.get('tls') else 'off'})")


_FACTS: tuple[tuple[str, Callable[[dict[str, Any]], str]], ...] = (
    ("device", lambda r: r.get("device", "")),
    ("agent's name", lambda r: r.get("name", "") or "-"),
    ("arch", lambda r: r.get("machine", "") or "-"),
    ("board", lambda r: r.get("board", "") or "-"),
    ("CPU", lambda r: r.get("cpu_model", "") or "-"),
    ("cores", lambda r: str(r.get("cpu_cores", ""))),
    ("int8 dot", lambda r: (r.get("properties") or {}).get("int8_dot_product", "") or "-"),
    ("RAM MB", lambda r: str(r.get("ram_mb", ""))),
    ("OS", lambda r: r.get("os", "")),
    ("pinned CPUs", lambda r: ",".join(map(str, r.get("pinned_cpus", []))) or "-"),
    ("threads up to", _max_threads),
    ("governor", _governors),
    ("max temp °C", _max_temp),
    ("runtimes", _runtimes),
    ("accelerators", lambda r: ", ".join(a.get("name", "") for a in r.get("accelerators", [])) or "-"),
    ("agent", _agent),
)


def device_facts(agents: Sequence[str | AgentSpec], *, token: str | None = None, tls_ca: str | Path | None = None,
                 connect_timeout_s: float | None = None) -> DevicesReport:
    """Ask each agent for its device facts (CPU, RAM, OS, runtimes, temperatures, ...).

    Args:
        agents: ``[NAME=]HOST:PORT`` texts or specs.
        token: Bearer token.
        tls_ca: CA certificate of TLS agents.
        connect_timeout_s: How long to keep trying an agent that does not answer (None: the client's defaults).

    Returns:
        The facts of those that answered and an error line for each that did not.

    Raises:
        ValueError: no agents, or a malformed spec.
        AgentError: the only agent given did not answer.
    """
    specs = [AgentSpec.of(a) for a in agents]
    if not specs:
        raise ValueError("agents must name at least one agent: --agent [NAME=]HOST:PORT, got none")
    rows, errors = [], []
    for spec in specs:
        timeout_s = max(connect_timeout_s or 0.0, 10.0)  # device facts read sensors: allow the call its time
        try:
            with _client(spec.address, token, tls_ca, connect_timeout_s, timeout_s=timeout_s) as client:
                doc = message_to_dict(client.device_info())
        except AgentError as err:
            if len(specs) == 1:
                raise
            errors.append({"address": spec.address, "error": str(err), "code": err.code})
            continue
        rows.append({**doc, "address": spec.address, "device": spec.name or doc.get("name") or spec.address})
    return DevicesReport(devices=rows, errors=errors)


# -- timing one model file --------------------------------------------------------------------------


def parse_shape(text: str) -> tuple[str, list[int]]:
    """``NAME=1x3x224x224`` or ``1x3x224x224`` (an input by position) as ``(name, dims)``.

    Raises:
        ValueError: not of that form.
    """
    name, _, dims = text.rpartition("=")
    try:
        shape = [int(d) for d in dims.lower().split("x")]
    except ValueError:
        raise ValueError(f"--shape must be NAME=1x3x224x224 or 1x3x224x224, got {text!r}") from None
    return name, shape


def _clock(runtime: str, options: Mapping[str, str]) -> str:
    """Which clock a timing was read from: the runtime reports it (onnxruntime), else it follows from the runtime."""
    if "clock" in options:
        return options["clock"]
    if runtime == "torch" and options.get("device", "").startswith("cuda"):
        return "cuda_event"
    if runtime == "benchmark_model":
        return "benchmark_model"
    return "wall"


@dataclass(frozen=True)
class TimingReport:
    """One model file timed on one device (``lutnas time --json``).

    Attributes:
        device: The device's name (NAME of ``NAME=HOST:PORT``, else the agent's own).
        address: The agent's ``host:port``.
        model: The model file's path.
        doc: The whole JSON document: statistics (``median_ms``, ``p90_ms``, ``n``, ...), runtime, clock, device state.
        notes: Lines for the user (how the device was named).
    """

    device: str
    address: str
    model: str
    doc: dict[str, Any]
    notes: tuple[str, ...] = ()

    @property
    def median_ms(self) -> float:
        """The median latency, ms."""
        return float(self.doc["median_ms"])

    def to_dict(self) -> dict[str, Any]:
        return dict(self.doc)

    def summary(self) -> list[tuple[str, str]]:
        """``(statistic, text)`` pairs for a reader: the latency statistics, the CI, the runtime and the clock."""
        doc = self.doc
        rows = [(f"{s} ms", f"{doc[f'{s}_ms']:.4f}" if doc[f"{s}_ms"] < 1 else f"{doc[f'{s}_ms']:.3f}")
                for s in ("median", "mean", "std", "min", "p10", "p90", "max")]
        ci = doc.get("rel_ci_median")
        threads = f"{doc['threads']} thread{'s' if doc['threads'] != 1 else ''}"
        return rows + [("n", str(doc["n"])), ("95% CI of median", "-" if ci is None else f"±{100 * ci:.2f}%"),
                       ("stopped by", doc["stop_reason"]),
                       ("runtime", f"{doc['runtime']} {doc['runtime_version']}, {threads}"),
                       ("clock", _CLOCK_WORDS.get(doc["clock"], doc["clock"]))]


_CLOCK_WORDS = {
    "thread_cpu": "thread CPU time (preemption excluded; --option clock=wall for wall time)",
    "wall": "wall clock",
    "cuda_event": "CUDA events",
    "benchmark_model": "benchmark_model's own timer",
}


def time_model_file(agent: str | AgentSpec, path: str | Path, *, runtime: str | None = None, threads: int = 1,
                    shapes: Sequence[str | tuple[str, Sequence[int]]] = (), options: Mapping[str, str] | None = None,
                    samples: bool = False, token: str | None = None, tls_ca: str | Path | None = None,
                    connect_timeout_s: float | None = None,
                    progress: Callable[[str, int, int | None], None] | None = None,
                    notify: Callable[[str], None] | None = None) -> TimingReport:
    """Time any model file (``.onnx``, ``.tflite``, ``.pt`` TorchScript, ``.pt2`` torch.export) on an agent.

    Args:
        agent: ``[NAME=]HOST:PORT`` (or a spec); the report names the device NAME, else the agent's own name.
        path: The model file.
        runtime: Runtime on the agent (None: from the file's extension).
        threads: Runtime threads.
        shapes: Input shapes, ``"NAME=1x3x224x224"``, ``"1x3x224x224"`` (by position) or ``(name, dims)``.
        options: Runtime options (e.g. ``{"device": "cuda"}``).
        samples: Include every timed sample (``samples_ms``).
        token: Bearer token.
        tls_ca: CA certificate of a TLS agent.
        connect_timeout_s: How long to keep trying an agent that does not answer (None: the client's defaults).
        progress: ``progress(task, done, total)``, called when the timing starts and ends.
        notify: Called with each line for the user as it arises (how the device is named); None logs them.

    Raises:
        ValueError: bad input (spec, extension, shape, unreadable file, unreadable ``tls_ca``); :class:`ModelRejected`
            (a ValueError too) when the agent refuses the model or request.
        AgentError: the agent could not be reached or failed.
    """
    spec = AgentSpec.of(agent)
    model_path = Path(path)
    chosen = runtime or runtime_for_path(model_path)
    fmt = _TORCH_FORMATS.get(model_path.suffix.lower(), "") if chosen == "torch" else ""
    inputs = [(*(parse_shape(s) if isinstance(s, str) else (s[0], list(s[1]))), "") for s in shapes]
    try:
        model = model_path.read_bytes()
    except OSError as err:
        raise ValueError(f"model file must be readable, got {str(model_path)!r} ({err.strerror or err})") from None
    try:
        client = _client(spec.address, token, tls_ca, connect_timeout_s)
    except OSError as err:
        raise ValueError(f"--tls-ca must be a readable PEM file, got {str(tls_ca)!r} ({err.strerror or err})") from None
    with client:
        info = client.device_info()
        name, line = _device_name(spec, info.name, "the result names it {name!r}")
        Notes(notify).add(line)
        _check_fits(client, model, model_path, info.max_message_bytes)
        task = f"time {model_path.name} on {name}"
        if progress is not None:
            progress(task, 0, 1)
        try:
            result = client.time_model(model, chosen, format=fmt, threads=threads, inputs=inputs,
                                       options=dict(options or {}), return_samples=samples)
        except AgentJobError as err:
            if err.code in BAD_JOB_CODES:
                raise ModelRejected(str(err), err.address, err.code, err.attempts) from err
            raise
        if progress is not None:
            progress(task, 1, 1)
    doc = _timing_doc(name, spec.address, str(model_path), result, samples)
    return TimingReport(device=name, address=spec.address, model=str(model_path), doc=doc,
                        notes=(line,) if line else ())


def _check_fits(client: AgentClient, model: bytes, path: Path, limit_bytes: int) -> None:
    """Refuse, before sending it, a model larger than one message the agent accepts (unless the agent has it).

    Raises:
        ModelRejected: the model is too large for this agent.
    """
    why = oversized_message(len(model), limit_bytes, client.address)
    if why is None:
        return
    sha = hashlib.sha256(model).hexdigest()
    if sha not in client.has_models([sha]):  # a cached model goes by its hash, whatever its size
        raise ModelRejected(f"model {path.name} {why}", client.address, "RESOURCE_EXHAUSTED", 0)


def _timing_doc(device: str, address: str, model: str, result: Any, samples: bool) -> dict[str, Any]:
    """``lutnas time --json`` of a ``BenchmarkResult``."""
    doc = {
        "device": device, "address": address, "model": model, "model_sha256": result.model_sha256,
        "runtime": result.runtime, "runtime_version": result.runtime_version, "threads": result.threads,
        "options": dict(result.options), "clock": _clock(result.runtime, dict(result.options)),
        **message_to_dict(result.stats),
        "stop_reason": result.stop_reason, "warmup_runs": result.warmup_runs, "load_ms": result.load_ms,
        "wall_s": result.wall_s, "before": message_to_dict(result.before), "after": message_to_dict(result.after),
        "agent_version": result.agent_version,
    }
    if samples:
        doc["samples_ms"] = list(result.samples_ms)
    return doc
