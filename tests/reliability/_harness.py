"""Shared pieces of the reliability suite: sleep-runtime agents, a trap that freezes one job, counting.

The counting tests use the synthetic sleep runtime with ``exact`` timings, so every figure they
assert is a count (rows, job-log lines), never a latency.

A :class:`Trap` is a FIFO used as one block's drift file: the agent's timing worker blocks inside
that block's job until the test releases it. That gives the tests a proven moment at which exactly
one job is in flight, so "no block timed twice" can be asserted exactly instead of "at most once more".
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.testing import (
    SLEEP_RUNTIME_SPEC,
    AgentProcess,
    sleep_model,
    start_agent_process,
    wait_until,
)
from profiler.client import AgentClient, make_job
from profiler.fleet import ProfileReport, ProfileSettings, plan_blocks
from space import Block

__all__ = [
    "FAST_PLAN",
    "RES",
    "SETTLE_JOB_ID",
    "SPACE",
    "TOKEN",
    "SleepExporter",
    "StoreFigures",
    "Trap",
    "block_keys",
    "block_latency_ms",
    "in_thread",
    "job_log_entries",
    "joined",
    "kill_pid",
    "open_streams",
    "profile_settings",
    "requeued_jobs",
    "rss_kb",
    "settle",
    "start_profile_host",
    "start_sleep_agent",
    "store_figures",
    "timed_keys",
    "wait_for",
    "worker_pid",
]

TOKEN = "reliability-suite-token"
SPACE = "ofa-mbv3-w1.0"
RES = 128
_REPO_ROOT = Path(__file__).resolve().parents[2]
SETTLE_JOB_ID = "reliability-settle"  # job id of :func:`settle`'s own job (not a block)
_STREAM_LINE = re.compile(r"stream from \S+ (?:opened|closed) \((\d+) open\)")  # the agent's stream log lines
# One warm-up run and three timed runs per block: enough for a row, cheap for 96 blocks.
FAST_PLAN = {"warmup_count": 1, "warmup_s": 0.0, "min_reps": 3, "min_s": 0.0, "max_reps": 3, "max_s": 2.0,
             "target_rel_ci": 0.5}


def block_keys() -> list[str]:
    """The block keys of the suite's profile, in the order a single agent times them."""
    return [b.key for b in plan_blocks(SPACE, [RES])]


def block_latency_ms(block: Block, scale: float = 1.0) -> float:
    """A plausible, distinct latency per block (1..6 ms times ``scale``)."""
    return scale * (1.0 + min(5.0, block.mid_chs * block.out_hw * block.out_hw / 4e5 + block.out_chs / 500))


@dataclass
class SleepExporter:
    """``export_fn`` for :func:`profiler.fleet.profile`: sleep-runtime models instead of ONNX files.

    Attributes:
        scale: Multiplies every block's latency.
        trap_key: The block whose model reads ``trap_path`` as its drift file (see :class:`Trap`).
        trap_path: The trap's path.
        hold_key: The block whose export never returns on the host (the host "hangs" there).
        hold_marker: File created when the host reaches ``hold_key``.
    """

    scale: float = 1.0
    trap_key: str = ""
    trap_path: str = ""
    hold_key: str = ""
    hold_marker: str = ""
    hold_s: float = 600.0
    pad_bytes: int = 0  # padding in every model (a large block's upload)

    def __call__(self, block: Block, fmt: str, seed: int) -> bytes:
        if block.key == self.hold_key:
            Path(self.hold_marker).touch()
            time.sleep(self.hold_s)  # the test kills this process long before
        drift = self.trap_path if block.key == self.trap_key else None
        return sleep_model(block_latency_ms(block, self.scale), drift_file=drift, tag=block.key + "." * self.pad_bytes,
                           exact=True)


def requeued_jobs(faults: Iterable[str]) -> int:
    """How many jobs a report's agent faults say were requeued (their "...: N job(s) requeued" lines)."""
    return sum(int(f.split(": ")[-1].split()[0]) for f in faults if "requeued" in f)


def profile_settings(**overrides: object) -> ProfileSettings:
    """Profile settings of the suite: sleep runtime, fast plan, no sentinel (so job counts are exact)."""
    base: dict[str, object] = {"space": SPACE, "resolutions": (RES,), "runtime": "sleep", "fmt": "json", "plan": FAST_PLAN,
                                   "sentinel_every": 0, "retry_backoff_s": 0.05, "agent_wait_s": 5.0}
    base.update(overrides)
    return ProfileSettings(**base)  # type: ignore[arg-type]


def start_sleep_agent(job_log: Path, port: int | None = None, cache_dir: Path | None = None,
                      extra_args: Iterable[str] = ()) -> AgentProcess:
    """An agent subprocess with the sleep runtime, the suite's token and a ``--job-log``."""
    args = ["--extra-runtime", SLEEP_RUNTIME_SPEC, "--job-log", str(job_log), "--cpus", "all", *extra_args]
    return start_agent_process(port=port, token=TOKEN, extra_args=args, cache_dir=cache_dir)


def start_profile_host(tmp_path: Path, db: str | Path, address: str, run: str | int,
                       python: Sequence[str] = (sys.executable,), **flags: object) -> tuple[subprocess.Popen, Path]:
    """Start a profiling host process (``python -m tests.reliability._profile_host``) on ``db`` with the agent
    ``board=address`` and the suite's token.

    Its output goes to ``host-RUN.log`` in ``tmp_path``; each of ``flags`` is one more option (``lease_s=3.0``
    gives ``--lease-s 3.0``); ``python`` is the interpreter's command line (one inside a network namespace, say).

    Returns:
        The process and the path its report (``report-RUN.json``) will be written to.
    """
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    report = tmp_path / f"report-{run}.json"
    args = [*python, "-m", "tests.reliability._profile_host", "--db", str(db), "--agent", f"board={address}",
            "--token-file", str(token_file), "--report", str(report)]
    for name, value in flags.items():
        args += [f"--{name.replace('_', '-')}", str(value)]
    env = {**os.environ, "PYTHONPATH": str(_REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    with open(tmp_path / f"host-{run}.log", "w") as log:
        proc = subprocess.Popen(args, cwd=_REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    return proc, report


def worker_pid(agent: AgentProcess) -> int:
    """The pid of the agent's timing worker."""
    with AgentClient(agent.address, token=agent.token, timeout_s=30.0) as client:
        return int(client.device_info().worker_pid)


def timed_keys(*logs: Path) -> Counter[str]:
    """How often each job id appears across agents' ``--job-log`` files (one line per completed job)."""
    counts: Counter[str] = Counter()
    for log in logs:
        for entry in job_log_entries(log):
            counts[entry["job_id"]] += 1
    return counts


def job_log_entries(log: Path) -> list[dict]:
    """The complete JSON lines of a job log (a line still being written is skipped)."""
    if not log.exists():
        return []
    out = []
    for line in log.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


@dataclass(frozen=True)
class StoreFigures:
    """What a LUT file holds, read with a connection of its own."""

    keys: frozenset[str]  # block keys with a row (any setting)
    rows: int  # lut_rows
    distinct: int  # distinct (setting, block key) pairs
    integrity: str  # PRAGMA integrity_check

    @property
    def duplicated(self) -> int:
        return self.rows - self.distinct

    def lost(self, expected: Iterable[str]) -> int:
        return len(set(expected) - self.keys)


def store_figures(db: Path) -> StoreFigures:
    """Read ``db`` as a second process would (WAL: readers never block the writer)."""
    if not db.exists():
        return StoreFigures(frozenset(), 0, 0, "ok")
    conn = sqlite3.connect(db, timeout=30.0)
    try:
        rows, distinct = conn.execute(
            "SELECT COUNT(*), COUNT(DISTINCT CAST(setting_id AS TEXT) || '|' || block_key) FROM lut_rows").fetchone()
        keys = frozenset(k for (k,) in conn.execute("SELECT block_key FROM lut_rows"))
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()
    return StoreFigures(keys, rows, distinct, integrity)


class Trap:
    """A FIFO that freezes the job whose sleep model uses it as drift file.

    The test holds a write end open and never writes, so the worker's read of the drift file blocks
    in the middle of the job; :meth:`entered` sees that through ``/proc``. :meth:`release` swaps the
    FIFO for a regular file holding ``1.0`` (so later reads don't block) and unblocks the reader.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        os.mkfifo(self.path)
        st = os.stat(self.path)
        self._ident = (st.st_dev, st.st_ino)
        # O_RDWR never blocks on a FIFO (Linux); holding it lets the reader's open succeed and its read wait.
        self._fd: int | None = os.open(self.path, os.O_RDWR)

    def entered(self, pid: int) -> bool:
        """Whether process ``pid`` has the FIFO open (it is blocked inside the trapped job)."""
        fd_dir = Path(f"/proc/{pid}/fd")
        try:
            fds = list(fd_dir.iterdir())
        except OSError:
            return False
        for fd in fds:
            try:
                st = os.stat(fd)
            except OSError:
                continue
            if (st.st_dev, st.st_ino) == self._ident:
                return True
        return False

    def release(self) -> None:
        """Let the trapped job (if any is still running) go on with a drift factor of 1.0."""
        if self._fd is None:
            return
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("1.0")
        os.replace(tmp, self.path)
        os.write(self._fd, b"1.0")
        os.close(self._fd)
        self._fd = None


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str, poll_s: float = 0.02) -> None:
    """Poll ``predicate`` until true.

    Raises:
        TimeoutError: it stayed false for ``timeout_s``; the message says what was awaited.
    """
    if not wait_until(predicate, timeout_s, poll_s):
        raise TimeoutError(f"waited {timeout_s:.0f} s for {what}")


def in_thread(fn: Callable[[], ProfileReport]) -> tuple[threading.Thread, list]:
    """Run ``fn`` (a profile) on a daemon thread while the test injects its fault; see :func:`joined`.

    Returns:
        The thread and a list that receives ``fn``'s report, or the error it raised.
    """
    box: list[ProfileReport | BaseException] = []

    def run() -> None:
        try:
            box.append(fn())
        except Exception as err:  # noqa: BLE001 - handed to the test thread, which re-raises it
            box.append(err)

    thread = threading.Thread(target=run, name="reliability-profile", daemon=True)
    thread.start()
    return thread, box


def joined(thread: threading.Thread, box: list, timeout_s: float = 120.0) -> ProfileReport:
    """The report of :func:`in_thread`'s profile once its thread ends; re-raises the profile's error."""
    thread.join(timeout_s)
    assert not thread.is_alive(), f"the profile did not finish within {timeout_s:.0f} s"
    (outcome,) = box
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def kill_pid(pid: int, sig: int) -> bool:
    """Send ``sig`` to ``pid``; False when it is already gone."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def rss_kb(pid: int) -> int:
    """Resident set size of ``pid`` in KiB (``VmRSS`` in ``/proc/PID/status``); 0 when it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def open_streams(agent: AgentProcess) -> int:
    """Benchmark streams open on the agent now: the count its latest "stream from ..." log line gives (0 before any)."""
    for line in reversed(list(agent.stderr_lines)):
        m = _STREAM_LINE.search(line)
        if m:
            return int(m.group(1))
    return 0


def settle(agent: AgentProcess, timeout_s: float = 60.0) -> None:
    """Return once every job the agent had started has finished (and is in its job log).

    First every stream has closed (a dead host's stream starts no job after that); then a job of our
    own queues behind whatever job is still running (the agent runs one at a time), so its result
    means the worker is free.
    """
    wait_for(lambda: open_streams(agent) == 0, timeout_s, "the agent to close the streams of dead hosts")
    job = make_job(sleep_model(0.1, tag="settle"), runtime="sleep", plan=FAST_PLAN, job_id=SETTLE_JOB_ID)
    with AgentClient(agent.address, token=agent.token, timeout_s=30.0) as client:
        (result,) = list(client.benchmark([job], timeout_s=120.0))
    if result.WhichOneof("outcome") == "error":
        raise RuntimeError(f"settle job failed: {result.error.code}: {result.error.message}")
