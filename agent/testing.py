"""Helpers for tests and benchmarks that need real agents: start/stop one, a synthetic runtime.

Usable outside pytest::

    with start_agent_process(extra_args=["--extra-runtime", "agent.testing:SleepRuntime"]) as agent:
        client = AgentClient(agent.address, token=agent.token)

``SleepRuntime`` is not registered by default; an agent offers it only when started with
``--extra-runtime agent.testing:SleepRuntime``. Its model blob is JSON::

    {"latency_ms": 2.0, "drift_file": "/tmp/factor", "jitter": 0.0, "crash": false}

Each timed run waits ``latency_ms`` times the float in ``drift_file`` (1.0 when the file is
absent or unreadable), so a test can inject drift by rewriting that file mid-profile.

With ``"runs_file"`` each timing (one job) appends a line to that file as it starts: the
model's own report that a job is running, to wait on instead of sleeping. With ``"factors"``
as well, the k-th timing of the model (k counted in that file) waits ``latency_ms`` times
``factors[k]`` (the last one repeats): drift at an exact reading, whatever the host's load.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.errors import JobError
from agent.runtimes import LoadOptions, RuntimeProbe
from agent.timing import Measurement, TimingPlan, measure

__all__ = [
    "AgentProcess",
    "start_agent_process",
    "SleepRuntime",
    "SLEEP_RUNTIME_SPEC",
    "sleep_model",
    "wait_until",
    "free_port",
    "onnx_matmul_relu",
    "onnx_conv",
]

SLEEP_RUNTIME_SPEC = "agent.testing:SleepRuntime"
_READY = re.compile(r"lutnas agent ready address=(\S+)")
_REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class AgentProcess:
    """A running agent subprocess."""

    address: str  # host:port it listens on
    token: str | None  # bearer token (None with --insecure-no-auth)
    proc: subprocess.Popen
    cache_dir: Path
    ready_line: str
    _tmp: tempfile.TemporaryDirectory | None = field(default=None, repr=False)
    _stderr_thread: threading.Thread | None = field(default=None, repr=False)
    stderr_lines: list[str] = field(default_factory=list, repr=False)

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self.address.rsplit(":", 1)[1])

    def alive(self) -> bool:
        """Whether the agent process still runs."""
        return self.proc.poll() is None

    def stop(self, timeout_s: float = 10.0) -> int:
        """SIGTERM the agent, wait (kill after ``timeout_s``) and remove its temp dir; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        return self.proc.returncode

    def __enter__(self) -> AgentProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_agent_process(
    port: int | None = None,
    token: str | None = "",
    extra_args: Sequence[str] = (),
    host: str = "127.0.0.1",
    cache_dir: Path | None = None,
    env: dict[str, str] | None = None,
    timeout_s: float = 60.0,
    python: str = sys.executable,
    command: Sequence[str] | None = None,
    cwd: Path | None = None,
) -> AgentProcess:
    """Start ``python -m agent`` as a subprocess and wait until it prints its ready line.

    Args:
        port: Port to bind; None picks a free one (the agent reports which).
        token: Bearer token; "" makes a fresh random one; None starts with --insecure-no-auth.
        extra_args: More agent flags, e.g. ``["--extra-runtime", SLEEP_RUNTIME_SPEC]``.
        host: Interface to bind.
        cache_dir: Model cache; None uses a fresh temp dir removed by ``stop()``.
        env: Extra environment variables.
        timeout_s: How long to wait for the ready line.
        python: Interpreter to run the agent with.
        command: The argv that starts the agent, e.g. ``["venv/bin/lutnas", "agent", "serve"]``
            (default ``[python, "-m", "agent"]``); the flags above are appended.
        cwd: The agent's working directory (relative paths in ``extra_args`` and ``cache_dir`` start there);
            None: the temp dir ``stop()`` removes.

    Returns:
        The running agent; call ``stop()`` (or use it as a context manager).

    Raises:
        RuntimeError: the agent exited or did not get ready in time; the message has its stderr tail.
    """
    tmp = tempfile.TemporaryDirectory(prefix="lutnas-agent-")
    tmp_path = Path(tmp.name)
    if token == "":
        token = secrets.token_urlsafe(24)
    args = [*(command or (python, "-m", "agent")), "--host", host, "--port", str(port or 0)]
    if token is None:
        args.append("--insecure-no-auth")
    else:
        token_file = tmp_path / "token"
        token_file.write_text(token)
        token_file.chmod(0o600)  # the agent warns about a token file others may read
        args += ["--token-file", str(token_file)]
    cache = cache_dir or tmp_path / "cache"
    args += ["--cache-dir", str(cache), *extra_args]
    child_env = dict(os.environ)
    child_env.pop("LUTNAS_TOKEN", None)
    child_env["PYTHONPATH"] = str(_REPO_ROOT) + (os.pathsep + child_env["PYTHONPATH"] if child_env.get("PYTHONPATH") else "")
    child_env["PYTHONUNBUFFERED"] = "1"
    child_env.update(env or {})
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env, cwd=cwd or tmp_path)
    stderr_lines: list[str] = []

    def _drain_stderr() -> None:
        # An undrained pipe would block the agent once its log fills the buffer.
        assert proc.stderr is not None
        for line in proc.stderr:
            stderr_lines.append(line.rstrip("\n"))
            del stderr_lines[:-200]

    thread = threading.Thread(target=_drain_stderr, daemon=True)
    thread.start()
    ready_box: list[str] = []

    def _read_ready() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if _READY.search(line):
                ready_box.append(line.strip())
                return

    reader = threading.Thread(target=_read_ready, daemon=True)
    reader.start()
    reader.join(timeout_s)
    if not ready_box:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        thread.join(2.0)
        tmp.cleanup()
        tail = " | ".join(stderr_lines[-5:])
        raise RuntimeError(f"agent did not get ready within {timeout_s:.0f} s (exit {proc.returncode}): {tail}")
    # Keep draining stdout so a chatty agent never blocks on a full pipe.
    threading.Thread(target=lambda: proc.stdout and proc.stdout.read(), daemon=True).start()
    match = _READY.search(ready_box[0])
    assert match is not None
    return AgentProcess(
        address=match.group(1),
        token=token,
        proc=proc,
        cache_dir=Path(cache),
        ready_line=ready_box[0],
        _tmp=tmp,
        _stderr_thread=thread,
        stderr_lines=stderr_lines,
    )


def sleep_model(latency_ms: float, drift_file: str | Path | None = None, jitter: float = 0.0, crash: bool = False,
                tag: str = "", exact: bool = False, runs_file: str | Path | None = None,
                factors: Sequence[float] = ()) -> bytes:
    """A model blob for :class:`SleepRuntime` (``tag`` only makes distinct blobs with equal latency).

    With ``exact`` each run still waits, but reports the latency it was asked to wait instead of the
    wall time, so tests on a loaded host see no scheduler jitter. ``runs_file`` gets a line as each
    timing starts; ``factors`` (which needs ``runs_file``) scales the k-th timing by ``factors[k]``.
    """
    if factors and runs_file is None:
        raise ValueError("factors count timings in runs_file: give both")
    doc: dict[str, Any] = {"latency_ms": float(latency_ms)}
    if runs_file is not None:
        doc["runs_file"] = str(runs_file)
    if factors:
        doc["factors"] = [float(f) for f in factors]
    if exact:
        doc["exact"] = True
    if drift_file is not None:
        doc["drift_file"] = str(drift_file)
    if jitter:
        doc["jitter"] = float(jitter)
    if crash:
        doc["crash"] = True
    if tag:
        doc["tag"] = tag
    return json.dumps(doc, sort_keys=True).encode()


def wait_until(ready: Callable[[], bool], timeout_s: float = 120.0, poll_s: float = 0.005) -> bool:
    """Poll ``ready()`` until it holds (True) or ``timeout_s`` passes (False)."""
    deadline = time.monotonic() + timeout_s
    while not ready():
        if time.monotonic() > deadline:
            return False
        time.sleep(poll_s)
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (for a test that must name the port up front)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class _SleepModel:
    latency_ms: float
    drift_file: Path | None
    jitter: float
    crash: bool
    exact: bool = False
    runs_file: Path | None = None
    factors: tuple[float, ...] = ()


def _read_factor(path: Path | None) -> float:
    if path is None:
        return 1.0
    try:
        return float(path.read_text().strip())
    except (OSError, ValueError):
        return 1.0


def _record_run(model: _SleepModel) -> float | None:
    """Append this timing's line to the model's runs file; its ``factors`` entry (None without factors)."""
    if model.runs_file is None:
        return None
    try:
        before = len(model.runs_file.read_text().splitlines())
    except FileNotFoundError:
        before = 0
    with open(model.runs_file, "a", encoding="utf-8") as fh:
        fh.write(f"{before}\n")
    return model.factors[min(before, len(model.factors) - 1)] if model.factors else None


class SleepRuntime:
    """A synthetic runtime whose "model" declares its latency; for fleet and drift tests."""

    name = "sleep"

    def probe(self) -> RuntimeProbe:
        return RuntimeProbe(True, version="1", detail="synthetic: waits the latency its model declares")

    def load(self, model_bytes: bytes, options: LoadOptions) -> _SleepModel:
        try:
            doc = json.loads(model_bytes)
            latency_ms = float(doc["latency_ms"])
        except (ValueError, KeyError, TypeError) as err:
            raise JobError("INVALID_ARGUMENT", f"sleep model must be JSON with a numeric latency_ms: {err}") from err
        if not 0 <= latency_ms <= 60_000:
            raise JobError("INVALID_ARGUMENT", f"latency_ms must be in 0..60000, got {latency_ms}")
        drift, runs = doc.get("drift_file"), doc.get("runs_file")
        return _SleepModel(latency_ms, Path(drift) if drift else None, float(doc.get("jitter", 0.0)),
                           bool(doc.get("crash", False)), bool(doc.get("exact", False)),
                           Path(runs) if runs else None, tuple(float(f) for f in doc.get("factors", ())))

    def time(self, loaded: _SleepModel, plan: TimingPlan) -> Measurement:
        import random

        rng = random.Random(0)
        clock = time.perf_counter
        scheduled = _record_run(loaded)

        def run_once() -> float:
            if loaded.crash:
                os.kill(os.getpid(), signal.SIGKILL)  # stands in for a runtime segfault
            factor = _read_factor(loaded.drift_file) if scheduled is None else scheduled
            target_s = loaded.latency_ms * factor * (1.0 + loaded.jitter * rng.random()) / 1e3
            t0 = clock()
            if loaded.exact:
                # Reported as declared: a plain sleep is enough and leaves the CPU to everyone else.
                time.sleep(target_s)
                return target_s * 1e3
            # Sleep most of the wait, spin the rest: sleep alone overshoots by scheduler slack.
            if target_s > 0.002:
                time.sleep(target_s - 0.001)
            while clock() - t0 < target_s:
                pass
            return target_s * 1e3 if loaded.exact else (clock() - t0) * 1e3

        m = measure(run_once, plan)
        m.settings = {"synthetic": "sleep"}
        return m


def onnx_matmul_relu(n: int = 64, k: int = 64, m: int = 64, seed: int = 0) -> bytes:
    """A MatMul+Relu ONNX model with input ``x`` of shape [n, k] (needs the ``onnx`` package)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(seed).standard_normal((k, m)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y0"]), helper.make_node("Relu", ["y0"], ["y"])],
        "matmul_relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, m])],
        [numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by older onnxruntime builds on boards
    onnx.checker.check_model(model)
    return model.SerializeToString()


def onnx_conv(channels: int = 16, size: int = 28, kernel: int = 3, seed: int = 0) -> bytes:
    """A Conv+Relu ONNX model with input ``x`` of shape [1, channels, size, size] (needs ``onnx``)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(seed).standard_normal((channels, channels, kernel, kernel)).astype(np.float32) * 0.1
    pad = kernel // 2
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w"], ["y0"], pads=[pad] * 4, kernel_shape=[kernel, kernel]),
            helper.make_node("Relu", ["y0"], ["y"]),
        ],
        "conv_relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, channels, size, size])],
        [numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def tflite_add(size: int = 64) -> bytes:
    """A TFLite model computing ``y = x + c`` for input ``x`` of shape [1, size] (needs ``ai_edge_litert``, ``flatbuffers``)."""
    import flatbuffers
    import numpy as np
    from ai_edge_litert import schema_py_generated as schema

    def tensor(name: str, buffer: int) -> Any:
        t = schema.TensorT()
        t.name = name
        t.shape = np.array([1, size], dtype=np.int32)
        t.type = schema.TensorType.FLOAT32
        t.buffer = buffer
        return t

    const = schema.BufferT()
    # The object API packs numpy uint8 arrays fast; Python bytes would be packed element by element.
    const.data = np.frombuffer(np.linspace(-1.0, 1.0, size, dtype=np.float32).tobytes(), dtype=np.uint8)
    empty = schema.BufferT()
    code = schema.OperatorCodeT()
    code.builtinCode = schema.BuiltinOperator.ADD
    code.deprecatedBuiltinCode = schema.BuiltinOperator.ADD
    code.version = 1
    op = schema.OperatorT()
    op.opcodeIndex = 0
    op.inputs = np.array([0, 1], dtype=np.int32)
    op.outputs = np.array([2], dtype=np.int32)
    op.builtinOptionsType = schema.BuiltinOptions.AddOptions
    op.builtinOptions = schema.AddOptionsT()
    sub = schema.SubGraphT()
    sub.tensors = [tensor("x", 0), tensor("c", 1), tensor("y", 0)]
    sub.inputs = np.array([0], dtype=np.int32)
    sub.outputs = np.array([2], dtype=np.int32)
    sub.operators = [op]
    sub.name = "main"
    model = schema.ModelT()
    model.version = 3
    model.operatorCodes = [code]
    model.subgraphs = [sub]
    model.buffers = [empty, const]
    model.description = "add"
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
