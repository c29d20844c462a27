"""The fleet scheduler: fill per-device LUTs by driving many agents at once.

Roles:
- one ``DeviceWork`` per device name holds the blocks that device still lacks (resume is
  the default: blocks with a row for that device setting are never timed again);
- one thread per agent (``_AgentWorker``) takes blocks from its device's list and writes each
  result to the store in its own transaction as it arrives;
- a ``_Session`` per connection keeps a few jobs on the agent's stream (the agent runs one at a
  time: timing must own the device) and uploads a model only when the agent lacks it;
- ``_CachedExports`` runs the exporters ahead of the agents in a process pool, into the
  content-addressed artifact cache, so exporting never stalls a device (``_FnExports`` takes a
  caller's export function instead, for synthetic runtimes);
- a ``_Sentinel`` per agent re-times a fixed reference block every N jobs; when it drifts past
  a threshold the agent cools down and the jobs since the last good reading are timed again.

A job-level error is retried with backoff and finally recorded as a failed block. An agent
that disappears gives its in-flight job back to the device's list (another agent of that
device takes it) and is polled until it returns or ``agent_wait_s`` passes.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from lut.repeatability import ROUND_MEDIANS, round_spread, spread_pct
from lut.schema import DeviceSetting
from lut.store import LutStore
from lut.transfer import measured_keys
from profiler.artifacts import ArtifactCache
from profiler.client import AgentClient, AgentError, AgentUnavailable, make_job
from profiler.export import export_pool
from profiler.quantize import unsupported_precision
from profiler.worklist import DeviceWork, Failure, Leases, Task, host_id
from protos import agent_pb2
from space import DEFAULT_SPACE, Block, get_space

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

log = logging.getLogger(__name__)

# Timing plan for one block job: warm up, then repeat until the median's 95% CI is within 1%.
DEFAULT_PLAN: Mapping[str, float | int] = {
    "warmup_count": 10,
    "warmup_s": 0.1,
    "min_reps": 20,
    "min_s": 0.2,
    "max_reps": 500,
    "max_s": 3.0,
    "target_rel_ci": 0.01,
}

# The model format each runtime times by default.
FORMAT_FOR_RUNTIME = {"onnxruntime": "onnx", "tflite": "tflite", "benchmark_model": "tflite", "torch": "torchscript"}

ExportFn = Callable[[Block, str, int], bytes]

# A profile whose rounds differ by more than this (see DeviceReport.round_spread) says the device's timing
# is unsteady. On a shared 2-core cloud VM a fixed Python loop's CPU time swung 1.75x within
# seconds, and the two rounds of a 2-thread onnxruntime profile differed by a median 19% per block (int8:
# 25%): the LUT's blocks carry that noise, which the lowest median of two rounds only partly removes.
UNSTEADY_ROUNDS = 0.10
_PROBE_TIMEOUT_S = 5.0  # a health probe of a possibly stopped agent; a live one answers in milliseconds
# A worker's call retries an unreachable agent this long; a longer outage is waited out with agent_wait_s.
_WORKER_RETRY_S = 2.0


class ProfileError(Exception):
    """A profile could not start or could not finish (one line, names the device)."""


class ExportError(Exception):
    """A block could not be exported at the profile's format and precision; that block fails, the profile goes on."""


@dataclass(frozen=True)
class AgentRef:
    """One agent: the device name its rows are filed under and its address."""

    name: str
    address: str


@dataclass(frozen=True)
class ProfileSettings:
    """What to profile and how."""

    space: str = DEFAULT_SPACE  # search space whose blocks are timed
    resolutions: tuple[int, ...] = (224,)  # input resolutions to cover
    runtime: str = "onnxruntime"  # runtime on the agent
    threads: int = 1  # runtime threads
    fmt: str = ""  # model format ("" picks FORMAT_FOR_RUNTIME[runtime])
    precision: str = "fp32"  # what is built and timed: fp32, fp16 or int8 (profiler.quantize)
    calib_dir: str | None = None  # image folder for int8 calibration (None: seeded inputs)
    options: Mapping[str, str] = field(default_factory=dict)  # runtime options (e.g. device=cuda)
    plan: Mapping[str, float | int] = field(default_factory=lambda: dict(DEFAULT_PLAN))
    seed: int = 0  # weight seed of the exported blocks
    sentinel_every: int = 25  # re-time the sentinel after this many jobs per agent (0: off)
    sentinel_threshold: float = 0.05  # relative drift of the sentinel median that triggers re-timing
    sentinel_cooldown_s: float = 5.0  # idle time after a drift before timing again
    sentinel_retries: int = 3  # sentinel re-readings after a cooldown before re-basing
    max_attempts: int = 3  # attempts per block before it is recorded as failed
    retry_backoff_s: float = 0.5  # first pause after a failed job; doubles per attempt
    job_timeout_s: float = 300.0  # deadline of one job (upload + load + timing)
    agent_wait_s: float = 60.0  # how long a device waits for a vanished agent before giving up
    pipeline_depth: int = 2  # jobs on their way to an agent (the agent still runs one at a time)
    rounds: int = 1  # readings per block, in interleaved rounds; the row keeps the lowest median
    rpc_timeout_s: float = 30.0  # deadline of unary calls; also a job's allowance beyond job_timeout_s (upload, reply)
    connect_timeout_s: float = 10.0  # how long the start keeps trying an unreachable agent (later outages: agent_wait_s)
    export_workers: int = 1  # export processes running ahead of the agents
    claim_batch: int = 16  # blocks claimed from the store at a time (hosts sharing a setting split by these)
    lease_s: float = 30.0  # a claim lapses this long after its host stops renewing it (killed hosts)
    cache_dir: str | None = None  # artifact cache (default: ~/.cache/lutnas/artifacts)
    only_keys: tuple[str, ...] = ()  # time only these blocks of the plan (a few-shot profile); () times all

    @property
    def model_format(self) -> str:
        return self.fmt or FORMAT_FOR_RUNTIME.get(self.runtime, "onnx")

    def validate(self) -> None:
        """Raise ValueError naming the first bad setting."""
        if not self.resolutions or any(int(r) < 1 for r in self.resolutions):
            raise ValueError(f"resolutions should be positive ints, at least one; got {self.resolutions}")
        for name in ("threads", "max_attempts", "pipeline_depth", "rounds", "export_workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} should be >= 1; got {getattr(self, name)}")
        for name in ("sentinel_every", "sentinel_retries"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} should be >= 0; got {getattr(self, name)}")
        if not self.sentinel_threshold > 0:
            raise ValueError(f"sentinel_threshold should be > 0; got {self.sentinel_threshold}")
        for name in ("sentinel_cooldown_s", "retry_backoff_s", "agent_wait_s"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} should be >= 0; got {getattr(self, name)}")
        for name in ("job_timeout_s", "rpc_timeout_s", "connect_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} should be > 0; got {getattr(self, name)}")


@dataclass
class DeviceReport:
    """What a profile did for one device name."""

    name: str
    setting_id: int
    total: int  # blocks the space needs at these resolutions
    skipped: int  # already in the store (resume)
    timed: int = 0  # rows written in this run
    failed: list[Failure] = field(default_factory=list)
    retimed: int = 0  # rows timed again after a sentinel drift
    wall_s: float = 0.0
    busy_s: float = 0.0  # sum over agents of time spent timing (agent-reported job wall time)
    agent_wall_s: float = 0.0  # sum over agents of their time in this profile
    idle_s: float = 0.0  # sum over agents of time with no work to do (cooldowns, a lost agent, an empty queue)
    uploaded_bytes: int = 0
    saved_bytes: int = 0  # bytes not uploaded because the agent had the blob
    sentinel_drifts: int = 0
    sentinel_transients: int = 0  # one-off sentinel outliers that a second reading cleared
    agent_busy: dict[str, float] = field(default_factory=dict)  # per agent address: its busy fraction
    aborted: str = ""
    agent_faults: list[str] = field(default_factory=list)  # one line per incident: stopped answering, back, given up
    # With several rounds: over the blocks timed in this run, the median of (slowest round median / fastest - 1).
    # How far two readings of one block on this device disagree; None with one round.
    round_spread: float | None = None

    @property
    def unsteady(self) -> bool:
        """Whether the rounds disagreed by more than UNSTEADY_ROUNDS: the device's timing wandered."""
        return self.round_spread is not None and self.round_spread > UNSTEADY_ROUNDS

    @property
    def busy_fraction(self) -> float:
        """Share of the agents' working time (their time in the profile less time with no work to do) spent timing."""
        return _busy_fraction(self.busy_s, self.agent_wall_s, self.idle_s)

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": self.name, "setting_id": self.setting_id, "total": self.total, "skipped": self.skipped,
            "timed": self.timed, "failed": len(self.failed), "retimed": self.retimed, "wall_s": round(self.wall_s, 3),
            "busy_fraction": round(self.busy_fraction, 4), "idle_s": round(self.idle_s, 2), "uploaded_bytes": self.uploaded_bytes,
            "saved_bytes": self.saved_bytes, "sentinel_drifts": self.sentinel_drifts,
            "sentinel_transients": self.sentinel_transients,
            "agent_busy": {a: round(f, 4) for a, f in self.agent_busy.items()}, "aborted": self.aborted,
            "failures": [{"block_key": f.block_key, "reason": f.reason, "attempts": f.attempts} for f in self.failed],
            "agent_faults": list(self.agent_faults),
            "round_spread_pct": spread_pct(self.round_spread),
        }


@dataclass
class ProfileReport:
    """One entry per device name, in the order the agents were given."""

    devices: list[DeviceReport]
    wall_s: float = 0.0
    export_s: float = 0.0  # total export time spent by the pool (all blocks exported this run)
    exported: int = 0

    @property
    def ok(self) -> bool:
        return all(not d.aborted and not d.failed for d in self.devices)

    def to_dict(self) -> dict[str, Any]:
        return {"wall_s": round(self.wall_s, 3), "export_s": round(self.export_s, 3), "exported": self.exported,
                "devices": [d.to_dict() for d in self.devices]}


@dataclass(frozen=True)
class Progress:
    """A progress event for one device."""

    device: str
    done: int
    failed: int
    total: int


def default_cache_dir() -> str:
    """The host artifact cache when none is given: ``~/.cache/lutnas/artifacts``."""
    return str(Path.home() / ".cache" / "lutnas" / "artifacts")


# -- planning -------------------------------------------------------------------------------


def plan_blocks(space: str, resolutions: Sequence[int]) -> list[Block]:
    """Every distinct block a subnet of ``space`` can run at ``resolutions``, in run order."""
    return get_space(space).unique_blocks(list(resolutions))


def sentinel_block(space: str, resolution: int) -> Block:
    """The drift sentinel: a mid-network MBConv (stage 3, first slot, k5, e4) at ``resolution``."""
    sp = get_space(space)
    side = sp.stage_input_sides(resolution)[2]
    return sp.slot_block(2, 0, side, 5, 4)


# -- exports --------------------------------------------------------------------------------


def _export_to_cache(cache: ArtifactCache, block: Block, fmt: str) -> tuple[str, float]:
    """Pool task: export ``block`` into the cache; (sha256, seconds spent)."""
    start = time.perf_counter()
    sha, _ = cache.get_or_build(block, fmt)
    return sha, time.perf_counter() - start


class _CachedExports:
    """The profiler's exporters, run ahead in a process pool into the content-addressed artifact cache;
    agents ask for a block's hash, and its bytes only when they upload them."""

    def __init__(self, settings: ProfileSettings, blocks: Sequence[Block]) -> None:
        self.fmt = settings.model_format
        cache_dir = settings.cache_dir or default_cache_dir()
        self.cache = ArtifactCache(cache_dir, seed=settings.seed, precision=settings.precision,
                                   calib_dir=settings.calib_dir)
        self.export_s = 0.0
        self.exported = 0
        self._lock = threading.Lock()
        self._futures: dict[Block, cf.Future[tuple[str, float]]] = {}
        self._pool: cf.ProcessPoolExecutor | None = None
        if blocks:
            self._pool = export_pool(settings.export_workers)
            for block in blocks:
                if self.cache.lookup(block, self.fmt) is None:
                    self._futures[block] = self._pool.submit(_export_to_cache, self.cache, block, self.fmt)

    def sha(self, block: Block) -> str:
        """sha256 of ``block``'s model, waiting for its export if it is still running."""
        future = self._futures.get(block)
        if future is not None:
            try:
                _, seconds = future.result()
            except Exception as err:  # the pool re-raises the export's own error here
                with self._lock:
                    self._futures.pop(block, None)
                raise ExportError(self._export_failure(err)) from err
            with self._lock:
                if self._futures.pop(block, None) is not None:
                    self.export_s += seconds
                    self.exported += 1
        sha = self.cache.lookup(block, self.fmt)
        if sha is not None:
            return sha
        try:
            return self.cache.get_or_build(block, self.fmt)[0]
        except Exception as err:  # a block this format and precision cannot be exported as
            raise ExportError(self._export_failure(err)) from err

    def _export_failure(self, err: Exception) -> str:
        return f"export as {self.fmt} {self.cache.precision} failed: {type(err).__name__}: {err}"

    def data(self, block: Block, sha: str) -> bytes:
        """The model bytes of ``block`` (whose hash :meth:`sha` gave)."""
        try:
            return self.cache.read_blob(sha)
        except KeyError:  # removed or corrupted since: build it again
            return self.cache.get_or_build(block, self.fmt)[1]

    def size(self, sha: str) -> int:
        """Bytes of blob ``sha`` (for the upload-saved tally), without reading it."""
        return self.cache.blob_path(sha).stat().st_size

    def ready_hashes(self) -> dict[str, Block]:
        """sha256 → block for exports that are finished (used to batch HasModels)."""
        out = {}
        with self._lock:
            pending = list(self._futures.items())
        for block, future in pending:
            if future.done() and future.exception() is None:
                out[future.result()[0]] = block
        return out

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)


class _FnExports:
    """A caller's export function (block, format, seed) -> bytes, e.g. for synthetic runtimes; each block's
    bytes are built once and kept in memory."""

    def __init__(self, settings: ProfileSettings, export_fn: ExportFn) -> None:
        self.fmt = settings.model_format
        self.seed = settings.seed
        self.export_fn = export_fn
        self.export_s = 0.0
        self.exported = 0
        self._lock = threading.Lock()
        self._built: dict[Block, tuple[str, bytes]] = {}
        self._sizes: dict[str, int] = {}

    def _build(self, block: Block) -> tuple[str, bytes]:
        with self._lock:
            hit = self._built.get(block)
        if hit is None:
            data = self.export_fn(block, self.fmt, self.seed)
            hit = (hashlib.sha256(data).hexdigest(), data)
            with self._lock:
                self._built[block] = hit
                self._sizes[hit[0]] = len(data)
        return hit

    def sha(self, block: Block) -> str:
        return self._build(block)[0]

    def data(self, block: Block, sha: str) -> bytes:
        return self._build(block)[1]

    def size(self, sha: str) -> int:
        return self._sizes[sha]

    def ready_hashes(self) -> dict[str, Block]:
        return {}  # built on demand: nothing is ready ahead of its job

    def close(self) -> None:
        pass


_Exports = _CachedExports | _FnExports


# -- one agent ------------------------------------------------------------------------------


def _busy_fraction(busy_s: float, wall_s: float, idle_s: float) -> float:
    """Share of an agent's working time (its time in the profile less time with no work to do) spent timing."""
    working = wall_s - idle_s
    return busy_s / working if working > 0 else 0.0


@dataclass
class _AgentStats:
    busy_s: float = 0.0
    wall_s: float = 0.0
    idle_s: float = 0.0  # no work to do: sentinel cooldowns, a vanished agent, an empty queue
    transients: int = 0  # sentinel readings off once but fine when read again at once
    uploaded_bytes: int = 0
    saved_bytes: int = 0
    drifts: int = 0
    round_medians: dict[str, list[float]] = field(default_factory=dict)  # block key -> its round medians (last timing)


class _Stream:
    """One long-lived ``Benchmark`` stream to an agent; jobs are queued ahead of the results.

    A watchdog cancels the stream when the agent stops answering (no result for longer than a
    job may take), which turns a hung agent into an ordinary stream error.
    """

    def __init__(self, client: AgentClient, limit_s: float) -> None:
        self._jobs: queue.Queue[agent_pb2.BenchmarkJob | None] = queue.Queue()
        self.client = client
        self.limit_s = limit_s
        self.call = client.open_stream(self._requests())
        # The watchdog's clock runs only while the host waits for a result: a host busy elsewhere (a slow
        # export, a store write) leaves results queued on the stream, which is no sign of a hung agent.
        self.waiting_since: float | None = None
        self.timed_out = False
        self._closed = threading.Event()
        self._watchdog = threading.Thread(target=self._watch, name=f"watchdog-{client.address}", daemon=True)
        self._watchdog.start()

    def _requests(self) -> Iterator[agent_pb2.BenchmarkJob]:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            yield job

    def _watch(self) -> None:
        while not self._closed.wait(0.25):
            since = self.waiting_since
            if since is not None and time.monotonic() - since > self.limit_s:
                self.timed_out = True
                self.call.cancel()
                return

    def send(self, job: agent_pb2.BenchmarkJob) -> None:
        self._jobs.put(job)

    def receive(self) -> agent_pb2.BenchmarkResult:
        """The next result, in send order.

        Raises:
            AgentError: the stream broke (AgentUnavailable when the agent went away or hung).
        """
        self.waiting_since = time.monotonic()
        try:
            result = next(self.call)
        except StopIteration:
            raise AgentUnavailable(f"agent at {self.client.address} ended the stream", self.client.address,
                                   "UNAVAILABLE") from None
        except grpc.RpcError as err:
            if self.timed_out:
                raise AgentUnavailable(f"agent at {self.client.address} sent nothing for {self.limit_s:.0f} s",
                                       self.client.address, "DEADLINE_EXCEEDED") from err
            error = self.client.error("Benchmark", err)
            if error.code in ("CANCELLED", "DEADLINE_EXCEEDED", "INTERNAL", "UNKNOWN"):
                raise AgentUnavailable(str(error), self.client.address, error.code) from err
            raise error from err
        finally:
            self.waiting_since = None
        return result

    def close(self) -> None:
        self._closed.set()
        self._jobs.put(None)
        self.call.cancel()


@dataclass
class _Sent:
    """A job on its way: the task (None for the sentinel), its blob hash and whether bytes went along."""

    task: Task | None
    sha: str
    with_blob: bool


class _Session:
    """One connection's worth of talking to an agent: its stream, the jobs on it, and the blobs it holds.

    A new session starts after the agent comes back, so a restarted agent's fresh cache is never assumed full.
    """

    def __init__(self, client: AgentClient, exports: _Exports, settings: ProfileSettings, stats: _AgentStats) -> None:
        self.client = client
        self.exports = exports
        self.settings = settings
        self.stats = stats
        # A job may take job_timeout_s on the agent, plus the upload and the reply.
        self.stream = _Stream(client, settings.job_timeout_s + max(5.0, 0.25 * settings.job_timeout_s))
        self.outstanding: deque[_Sent] = deque()
        self.known: set[str] = set()  # blobs the agent holds

    def send(self, block: Block, task: Task | None, force_blob: bool = False) -> _Sent:
        """Queue a job for ``block`` (bytes only when the agent lacks them) and track it as outstanding."""
        sha = self.exports.sha(block)
        if sha not in self.known and not force_blob:
            candidates = {sha, *self.exports.ready_hashes()} - self.known
            self.known |= self.client.has_models(sorted(candidates))
        with_blob = force_blob or sha not in self.known
        data = self.exports.data(block, sha) if with_blob else None
        s = self.settings
        job = make_job(
            data, sha256=None if with_blob else sha, runtime=s.runtime,
            format=s.model_format, threads=s.threads, plan=s.plan, options=s.options, job_timeout_s=s.job_timeout_s,
            job_id=block.key,
        )
        if data is not None:
            self.stats.uploaded_bytes += len(data)
            self.known.add(sha)  # it will be, once this job arrives
        else:
            self.stats.saved_bytes += self.exports.size(sha)
        self.stream.send(job)
        sent = _Sent(task, sha, with_blob)
        self.outstanding.append(sent)
        return sent

    def receive(self) -> tuple[_Sent, agent_pb2.BenchmarkResult]:
        """The next result and the job it answers; the job stays outstanding if the stream breaks."""
        result = self.stream.receive()
        self.stats.busy_s += result.wall_s
        return self.outstanding.popleft(), result

    def blob_lost(self, sent: _Sent, result: agent_pb2.BenchmarkResult) -> bool:
        """Whether the job failed only because the agent dropped a blob it was assumed to hold."""
        if result.WhichOneof("outcome") == "error" and result.error.code == "NOT_FOUND" and not sent.with_blob:
            self.known.discard(sent.sha)  # evicted, or a restart with a fresh cache: send the bytes next time
            return True
        return False

    def time_alone(self, block: Block) -> agent_pb2.BenchmarkResult:
        """Time ``block`` on an empty pipeline (resending its bytes once if the agent lost them)."""
        self.send(block, None)
        sent, result = self.receive()
        if self.blob_lost(sent, result):
            self.send(block, None, force_blob=True)
            sent, result = self.receive()
        return result

    def close(self) -> None:
        self.stream.close()


class _Sentinel:
    """The drift sentinel of one agent: a fixed block re-timed every ``sentinel_every`` jobs.

    A reading off the baseline by more than ``sentinel_threshold`` is read again at once; a confirmed drift
    cools the agent down and hands back the tasks timed since the last good reading.
    """

    def __init__(self, ref: AgentRef, settings: ProfileSettings, stats: _AgentStats, stop: threading.Event) -> None:
        self.ref = ref
        self.settings = settings
        self.stats = stats
        self.stop = stop
        self.block = sentinel_block(settings.space, settings.resolutions[0])
        self.baseline_ms: float | None = None  # None: not read yet; 0.0: the sentinel cannot run on this agent
        self.last_drift: float | None = None
        self.since_good: list[Task] = []  # tasks read since the last good reading
        self.jobs_since = 0  # jobs sent since the last reading

    @property
    def enabled(self) -> bool:
        return self.settings.sentinel_every > 0

    def forget_baseline(self) -> None:
        """A restarted agent may be in a different thermal state: take a new baseline."""
        self.baseline_ms = None

    def ensure_baseline(self, session: _Session) -> None:
        """The faster of two first readings (0.0: sentinel off on this agent).

        A first job can run slow (a cold worker, a clock still ramping, an unlucky memory layout of
        a fresh session); a baseline taken from it would make every later reading look like a drift.
        """
        if self.enabled and self.baseline_ms is None:
            readings = [self._reading(session) for _ in range(2)]
            valid = [r for r in readings if r]
            self.baseline_ms = min(valid) if valid else 0.0

    def due(self) -> bool:
        return bool(self.baseline_ms) and self.jobs_since >= self.settings.sentinel_every

    def send(self, session: _Session) -> None:
        session.send(self.block, None)
        self.jobs_since = 0

    def _reading(self, session: _Session) -> float | None:
        """Time the sentinel alone; None when it cannot run."""
        result = session.time_alone(self.block)
        if result.WhichOneof("outcome") == "error":
            log.warning("%s: sentinel cannot run on %s (%s: %s); drift checks are off", self.ref.name,
                        self.ref.address, result.error.code, result.error.message)
            return None
        return result.stats.median_ms

    def _within(self, reading_ms: float) -> bool:
        return abs(reading_ms / self.baseline_ms - 1.0) <= self.settings.sentinel_threshold

    def check(self, session: _Session, result: agent_pb2.BenchmarkResult) -> list[Task]:
        """Judge a sentinel reading; returns the tasks to time again (empty unless a drift is confirmed)."""
        if result.WhichOneof("outcome") == "error" or not self.baseline_ms:
            return []
        baseline, threshold = self.baseline_ms, self.settings.sentinel_threshold
        reading = result.stats.median_ms
        self.last_drift = reading / baseline - 1.0
        if self._within(reading):
            self.since_good = []
            return []
        # A burst of contention from another tenant moves one reading; thermal or clock drift
        # persists. Read again at once and act only when the drift is confirmed.
        confirm = self._reading(session)
        if confirm is not None and self._within(confirm):
            self.stats.transients += 1
            self.last_drift = confirm / baseline - 1.0
            self.since_good = []
            log.info("%s: sentinel off by %+.1f%% once on %s, back within %.0f%% at once; no re-timing",
                     self.ref.name, 100 * (reading / baseline - 1.0), self.ref.address, 100 * threshold)
            return []
        self.stats.drifts += 1
        suspect, self.since_good = self.since_good, []
        log.warning("%s: sentinel drifted %+.1f%% on %s; cooling down and re-timing %d blocks", self.ref.name,
                    100 * self.last_drift, self.ref.address, len(suspect))
        latest = confirm or reading
        for _ in range(self.settings.sentinel_retries):
            self.stats.idle_s += self.settings.sentinel_cooldown_s
            if self.stop.wait(self.settings.sentinel_cooldown_s):
                return []  # stopping: the rows stay as they are and a rerun resumes
            again = self._reading(session)
            if again is None:
                continue
            latest = again
            self.last_drift = again / baseline - 1.0
            if self._within(again):
                return suspect
        # The device settled somewhere new: measure against that from now on.
        log.warning("%s: sentinel stays %+.1f%% off on %s; re-basing", self.ref.name, 100 * self.last_drift,
                    self.ref.address)
        self.baseline_ms = latest
        self.last_drift = 0.0
        return suspect


class _AgentWorker:
    """Runs one agent's share of a device's blocks (one thread).

    Jobs are pipelined: while the agent times one job, the next is already on its way, so
    host-side work (export lookup, upload, storing the row) never leaves the device idle. The
    agent runs jobs strictly one after another, so timing still owns the device.
    """

    def __init__(self, ref: AgentRef, work: DeviceWork, setting_id: int, store: LutStore, exports: _Exports,
                 settings: ProfileSettings, client_kw: Mapping[str, Any], stop: threading.Event,
                 on_row: Callable[[], None], agent_version: str) -> None:
        self.ref = ref
        self.work = work
        self.setting_id = setting_id
        self.store = store
        self.exports = exports
        self.settings = settings
        self.client_kw = client_kw
        self.stop = stop
        self.on_row = on_row
        self.agent_version = agent_version
        self.stats = _AgentStats()
        self.sentinel = _Sentinel(ref, settings, self.stats, stop)
        self.faults: list[str] = []  # one line per incident, for the final report

    # -- loop ----------------------------------------------------------------------------
    def run(self) -> None:
        start = time.monotonic()
        client = AgentClient(self.ref.address, **self.client_kw)
        try:
            while not self.stop.is_set():
                session = _Session(client, self.exports, self.settings, self.stats)
                try:
                    if self._drive(session):
                        return
                except AgentError as err:
                    requeued = [sent.task for sent in session.outstanding if sent.task is not None]
                    for task in requeued:
                        self.work.give_back(self.ref.address, task)
                    self.faults.append(f"{self.ref.address}: {err.code}: {len(requeued)} job(s) requeued")
                    log.warning("%s: agent %s: %s; its jobs are requeued", self.ref.name, self.ref.address, err)
                    if not self._wait_for_agent(client):
                        return
                finally:
                    session.close()
        finally:
            client.close()
            self.stats.wall_s = time.monotonic() - start

    def _drive(self, session: _Session) -> bool:
        """Keep up to ``pipeline_depth`` jobs on the stream until the device is done (True) or stopped."""
        self.sentinel.ensure_baseline(session)
        while not self.stop.is_set():
            self._fill(session)
            if not session.outstanding:
                return True  # nothing pending for this agent: the device is finished, aborted or stopped
            sent, result = session.receive()  # may raise: the job stays outstanding so run() requeues it
            if sent.task is None:
                self.work.retime(self.sentinel.check(session, result))
            else:
                self._on_result(session, sent, result)
        return False

    def _fill(self, session: _Session) -> None:
        """Send jobs until the pipeline is full; a due sentinel is sent last and blocks further sends."""
        while len(session.outstanding) < self.settings.pipeline_depth and not self.stop.is_set():
            if any(s.task is None for s in session.outstanding):
                return  # a sentinel is in flight: its reading must not be followed by unchecked jobs
            if self.sentinel.due():
                self.sentinel.send(session)
                return
            waited_from = time.monotonic()
            task = self.work.take(self.ref.address, self.stop, wait=not session.outstanding)
            if not session.outstanding:
                # Nothing was queued for this agent: time spent waiting here is the device running
                # out of work (or others' jobs that may come back), not scheduling overhead.
                self.stats.idle_s += time.monotonic() - waited_from
            if task is None:
                return
            try:
                session.send(task.block, task)
            except ExportError as err:  # deterministic: no retry, the block fails with the reason
                self._job_failed(task, str(err), max_attempts=1)
                continue
            except BaseException:
                self.work.give_back(self.ref.address, task)  # taken but never sent: not lost
                raise
            self.sentinel.jobs_since += 1

    # -- results -------------------------------------------------------------------------
    def _on_result(self, session: _Session, sent: _Sent, result: agent_pb2.BenchmarkResult) -> None:
        task = sent.task
        if session.blob_lost(sent, result):
            session.send(task.block, task, force_blob=True)
            return
        if result.WhichOneof("outcome") == "error":
            self._job_failed(task, f"{result.error.code}: {result.error.message}")
            return
        readings = self.work.complete(self.ref.address, task, self._reading(result))
        self.sentinel.since_good.append(task)
        if readings is not None:
            self._store(task.block, readings)
        self.on_row()

    def _reading(self, result: agent_pb2.BenchmarkResult) -> tuple[dict[str, Any], dict[str, Any]]:
        """(statistics, provenance) of one timing job, in the store's row format."""
        st = result.stats
        stats = {"median_ms": st.median_ms, "mean_ms": st.mean_ms, "std_ms": st.std_ms, "p10_ms": st.p10_ms,
                 "p90_ms": st.p90_ms, "n": int(st.n)}
        provenance = {
            "agent_version": result.agent_version or self.agent_version,
            "temp_before_c": _max_temp(result.before),
            "temp_after_c": _max_temp(result.after),
            "sentinel_drift": self.sentinel.last_drift,
            "source": "measured",
            "extra": {"agent": self.ref.address, "rel_ci_median": st.rel_ci_median, "stop_reason": result.stop_reason,
                      "load_ms": result.load_ms, "model_sha256": result.model_sha256,
                      "options": dict(result.options)},  # runtime options in effect, e.g. the clock
        }
        return stats, provenance

    def _store(self, block: Block, readings: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
        """Write the block's row: the round with the lowest median (host noise only adds), all medians kept."""
        stats, provenance = min(readings, key=lambda r: r[0]["median_ms"])
        if len(readings) > 1:
            medians = [r[0]["median_ms"] for r in readings]
            self.stats.round_medians[block.key] = medians
            provenance = {**provenance, "extra": {**provenance["extra"], ROUND_MEDIANS: medians}}
        self.store.put_row(self.setting_id, block.key, stats, provenance)

    def _job_failed(self, task: Task, reason: str, max_attempts: int | None = None) -> None:
        failure = self.work.job_failed(self.ref.address, task, reason, max_attempts or self.settings.max_attempts)
        if failure is not None:
            self.store.record_failure(self.setting_id, task.block.key, reason, attempts=failure.attempts)
            log.warning("%s: %s failed %d times: %s", self.ref.name, task.block.key, failure.attempts, reason)

    # -- availability ----------------------------------------------------------------------
    def _wait_for_agent(self, client: AgentClient) -> bool:
        """Poll until the agent answers again (True) or the device no longer needs it (False)."""
        started = time.monotonic()
        try:
            return self._poll_agent(client)
        finally:
            self.stats.idle_s += time.monotonic() - started

    def _poll_agent(self, client: AgentClient) -> bool:
        deadline = time.monotonic() + self.settings.agent_wait_s
        pause = 0.5
        while not self.stop.is_set() and not self.work.finished():
            try:
                client.health(timeout_s=min(5.0, self.settings.agent_wait_s))
                self.sentinel.forget_baseline()  # a restarted agent may be in a different thermal state
                log.info("%s: agent %s is back", self.ref.name, self.ref.address)
                self.faults.append(f"{self.ref.address}: back after {time.monotonic() - deadline + self.settings.agent_wait_s:.1f} s")
                return True
            except AgentError:
                pass
            if time.monotonic() > deadline:
                log.warning("%s: agent %s gone for %.0f s; giving up on it", self.ref.name, self.ref.address,
                            self.settings.agent_wait_s)
                self.faults.append(f"{self.ref.address}: gone for {self.settings.agent_wait_s:.0f} s; given up")
                return False
            self.stop.wait(pause)
            pause = min(pause * 2, 5.0)
        return False


def _max_temp(state: agent_pb2.DeviceState) -> float | None:
    temps = [z.temp_c for z in state.thermal]
    return max(temps) if temps else None


# -- the profile ----------------------------------------------------------------------------


def _device_setting(name: str, clients: Sequence[AgentClient], settings: ProfileSettings) -> tuple[DeviceSetting, str, dict[str, Any]]:
    """The device setting the agents of ``name`` measure under (they must agree on the runtime version)."""
    versions = {}
    agent_version = ""
    info: dict[str, Any] = {}
    for client in clients:
        try:
            dev = client.device_info()
        except AgentError as err:
            raise ProfileError(f"device {name!r}: {err}") from err
        runtime = next((r for r in dev.runtimes if r.name == settings.runtime), None)
        if runtime is None or not runtime.available:
            detail = f" ({runtime.detail})" if runtime is not None and runtime.detail else ""
            known = ", ".join(r.name for r in dev.runtimes if r.available) or "none"
            raise ProfileError(f"device {name!r}: agent {client.address} has no runtime {settings.runtime!r}{detail}; "
                               f"available: {known}")
        timing_cpus = [c for c in dev.properties.get("timing_cpus", "").split(",") if c]
        if timing_cpus and settings.threads > len(timing_cpus):
            raise ProfileError(f"device {name!r}: agent {client.address} times on {len(timing_cpus)} CPU(s) "
                               f"({','.join(timing_cpus)}), fewer than --threads {settings.threads}: threads sharing "
                               "a core time nothing that deploys; restart it with --cpus auto or more CPUs")
        versions[client.address] = runtime.version
        agent_version = dev.agent_version
        info = {"hostname": dev.hostname, "cpu_model": dev.cpu_model, "board": dev.board, "os": dev.os,
                "machine": dev.machine, "cpu_cores": dev.cpu_cores, "agents": sorted(versions),
                "int8_dot_product": dev.properties.get("int8_dot_product", "")}
        if timing_cpus:  # the CPUs the jobs run on: the pinned ones, then one more per thread beyond them,
            # written like each result's "cpus" option (ascending)
            used = timing_cpus[:max(settings.threads, len(dev.pinned_cpus))]
            info["timing_cpus"] = ",".join(sorted(used, key=int))
    if len(set(versions.values())) > 1:
        raise ProfileError(f"device {name!r}: agents disagree on {settings.runtime} version {versions}; "
                           "give them different names")
    delegate = settings.options.get("provider", "") or settings.options.get("delegate", "") \
        or settings.options.get("device", "")
    if settings.precision == "int8" and not delegate and info["int8_dot_product"] == "none":  # a CPU LUT
        log.warning("device %r: its CPU lists no int8 dot-product instructions (VNNI, Arm dotprod); its int8 kernels "
                    "go through 16-bit steps, so this LUT speaks for CPUs like it only", name)
    setting = DeviceSetting(name=name, runtime=settings.runtime, runtime_version=next(iter(versions.values())),
                            threads=settings.threads, precision=settings.precision,
                            model_format=settings.model_format, delegate=delegate)
    return setting, agent_version, info


# Agents before this version ran every thread of a job on the one pinned core.
_ONE_CORE_PER_THREAD = (0, 2)


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for part in version.split("+")[0].split(".")[:2]:
        digits = "".join(ch for ch in part if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def _warn_shared_core_rows(store: LutStore, setting_id: int, name: str, threads: int) -> None:
    """Say so when a multi-thread setting holds rows an older agent timed with all its threads on one core.

    They are kept (a resume never re-times a measured row), but they price blocks slower than they run.
    """
    rows = store.rows(setting_id)
    versions = rows["agent_version"].dropna().astype(str)
    old = versions[[bool(v) and _version_tuple(v) < _ONE_CORE_PER_THREAD for v in versions]]
    if len(old):
        log.warning("device %r: %d row(s) of this %d-thread setting were timed by agent %s, which ran every thread "
                    "on one core; `lutnas lut rm --device %s` and profile again for a LUT of what deploys",
                    name, len(old), threads, ", ".join(sorted(set(old))), setting_id)


def profile(
    store: LutStore,
    agents: Sequence[AgentRef],
    settings: ProfileSettings,
    *,
    token: str | None = None,
    tls_ca: str | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    stop: threading.Event | None = None,
    export_fn: ExportFn | None = None,
) -> ProfileReport:
    """Time every block the space needs on every device and write the rows to ``store``.

    Args:
        store: The LUT store (rows are written one transaction each, as they arrive).
        agents: The agents; several may share a name (identical boards split that device's work).
        settings: What to profile and how.
        token: Bearer token for the agents.
        tls_ca: CA certificate to trust when the agents use TLS.
        on_progress: Called after every row or failure.
        stop: Set it to stop early (Ctrl-C); the store stays consistent and a rerun resumes.
        export_fn: Replace the exporters (block, format, seed) -> bytes; for synthetic runtimes.

    Raises:
        ValueError: a setting is out of range (see :meth:`ProfileSettings.validate`).
        ProfileError: an agent is unreachable at the start or lacks the runtime.
    """
    settings.validate()
    if not agents:
        raise ProfileError("no agents given; use --agent NAME=HOST:PORT")
    stop = stop or threading.Event()
    start = time.monotonic()
    client_kw = {"token": token, "tls_ca": tls_ca, "retry_s": _WORKER_RETRY_S, "timeout_s": settings.rpc_timeout_s}
    by_name: dict[str, list[AgentRef]] = {}
    for ref in agents:
        by_name.setdefault(ref.name, []).append(ref)
    if len({ref.address for ref in agents}) != len(agents):
        raise ProfileError("the same agent address is given twice")

    blocks = plan_blocks(settings.space, settings.resolutions)
    if settings.only_keys:
        wanted = set(settings.only_keys)
        blocks = [b for b in blocks if b.key in wanted]
    holder = host_id()  # this run's name on the blocks it claims in the store
    works: dict[str, DeviceWork] = {}
    reports: dict[str, DeviceReport] = {}
    versions: dict[str, str] = {}
    refused: dict[str, list[Failure]] = {}  # devices whose runtime cannot run the precision (setting_id 0: not stored)
    for name, refs in by_name.items():
        clients = [AgentClient(r.address, **{**client_kw, "retry_s": settings.connect_timeout_s}) for r in refs]
        try:
            setting, versions[name], info = _device_setting(name, clients, settings)
        finally:
            for c in clients:
                c.close()
        refusal = unsupported_precision(settings.runtime, settings.precision, info.get("machine", ""), settings.options)
        if refusal is not None:  # every block would fail the same way: fail them here and store nothing
            log.warning("device %r: %s", name, refusal)
            works[name] = DeviceWork([], rounds=settings.rounds)
            reports[name] = DeviceReport(name=name, setting_id=0, total=len(blocks), skipped=0)
            refused[name] = [Failure(b.key, refusal, 0) for b in blocks]
            continue
        setting_id = store.ensure_setting(setting, info=info)
        have = measured_keys(store, setting_id)  # predicted (few-shot) rows are timed again
        if settings.threads > 1:
            _warn_shared_core_rows(store, setting_id, name, settings.threads)
        todo = [b for b in blocks if b.key not in have]
        leases = Leases(store, setting_id, holder, [b.key for b in todo], batch=settings.claim_batch,
                        lease_s=settings.lease_s) if todo else None
        works[name] = DeviceWork(todo, rounds=settings.rounds, leases=leases)
        reports[name] = DeviceReport(name=name, setting_id=setting_id, total=len(blocks), skipped=len(blocks) - len(todo))

    all_todo = list(dict.fromkeys(b for w in works.values() for b in w.blocks))
    sentinels = [sentinel_block(settings.space, settings.resolutions[0])] if settings.sentinel_every else []
    exports: _Exports = (
        _FnExports(settings, export_fn)
        if export_fn is not None
        else _CachedExports(settings, sentinels + all_todo if all_todo else [])
    )
    workers: list[tuple[str, _AgentWorker, threading.Thread]] = []
    lock = threading.Lock()

    def progress(name: str) -> Callable[[], None]:
        def emit() -> None:
            if on_progress is not None:
                done, failed = works[name].counts()
                with lock:
                    on_progress(Progress(name, reports[name].skipped + done, failed, reports[name].total))
        return emit

    try:
        for name, refs in by_name.items():
            progress(name)()
            if not works[name].blocks:
                continue
            for ref in refs:
                worker = _AgentWorker(ref, works[name], reports[name].setting_id, store, exports, settings,
                                      client_kw, stop, progress(name), versions[name])
                thread = threading.Thread(target=worker.run, name=f"agent-{ref.address}", daemon=True)
                workers.append((name, worker, thread))
                thread.start()
        _join(workers, works, stop)
    finally:
        stop.set()
        for _, _, thread in workers:
            thread.join(timeout=settings.job_timeout_s + 60)
        exports.close()
        for work in works.values():
            if work.leases is not None:
                work.leases.close()

    for name, work in works.items():
        rep = reports[name]
        mine = [w for n, w, _ in workers if n == name]
        rep.timed = len(work.done)
        rep.failed = list(work.failures) + refused.get(name, [])
        rep.retimed = work.retimed
        rep.aborted = work.aborted
        rep.wall_s = time.monotonic() - start
        rep.busy_s = sum(w.stats.busy_s for w in mine)
        rep.agent_wall_s = sum(w.stats.wall_s for w in mine)
        rep.idle_s = sum(w.stats.idle_s for w in mine)
        rep.uploaded_bytes = sum(w.stats.uploaded_bytes for w in mine)
        rep.saved_bytes = sum(w.stats.saved_bytes for w in mine)
        rep.sentinel_drifts = sum(w.stats.drifts for w in mine)
        rep.sentinel_transients = sum(w.stats.transients for w in mine)
        rep.agent_busy = {w.ref.address: _busy_fraction(w.stats.busy_s, w.stats.wall_s, w.stats.idle_s) for w in mine}
        rep.agent_faults = [line for w in mine for line in w.faults]
        rep.round_spread = round_spread(m for w in mine for m in w.stats.round_medians.values())
        if rep.unsteady:
            log.warning("%s: a block's rounds differ by a median %.0f%% (slowest round median over the fastest): "
                        "timing on this device is unsteady and the LUT's rows carry that noise, although each keeps "
                        "its fastest round. Profile it again into a new store with more --rounds or on a quieter "
                        "device, and check the LUT with lutnas validate", name, 100 * rep.round_spread)
    return ProfileReport(devices=[reports[n] for n in by_name], wall_s=time.monotonic() - start,
                         export_s=exports.export_s, exported=exports.exported)


def _join(workers: list[tuple[str, _AgentWorker, threading.Thread]], works: Mapping[str, DeviceWork],
          stop: threading.Event) -> None:
    """Wait for every device; a device whose agents all gave up is aborted with the reason."""
    while not stop.is_set():
        alive_any = False
        for name, work in works.items():
            threads = [t for n, _, t in workers if n == name]
            if work.finished() or not threads:
                continue
            if any(t.is_alive() for t in threads):
                alive_any = True
                continue
            left = work.left()
            work.abort(f"every agent of {name!r} is gone with {left} blocks left; rerun to resume")
        if not alive_any:
            return
        time.sleep(0.1)
