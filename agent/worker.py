"""Supervision of the timing worker process.

Jobs run one at a time in a child process (:mod:`agent._worker_main`), so a runtime that crashes
on a hostile model, hangs, or leaks costs that job an error and a worker restart, never the
server. A job that outlives its deadline is killed and reported as DEADLINE_EXCEEDED; one that
outgrows the worker's memory cap is reported as RESOURCE_EXHAUSTED and the worker is replaced.
The worker's working directory is an empty private one, so a model that names a relative path
finds nothing of the agent's.

The worker leads a session of its own, and external tools run in process groups of their own; a
killed worker takes them all along (:func:`agent._procs.kill_tree`). A job also ends early when its
caller gives up on it (a cancelled stream) or the agent stops: nothing the agent started outlives it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from multiprocessing.connection import Connection
from typing import Any

from agent._procs import kill_tree

__all__ = ["WorkerSupervisor", "WORKER_START_TIMEOUT_S"]

log = logging.getLogger(__name__)

# numpy import plus interpreter start; slow SD cards on a Pi need the margin.
WORKER_START_TIMEOUT_S = 60.0
# How often a waiting job checks whether its caller gave up or the agent is stopping; a wake-up costs
# microseconds on the server's CPUs, never the worker's.
_POLL_S = 0.25


class WorkerSupervisor:
    """Starts, feeds, watches and restarts the timing worker.

    Args:
        cpus: CPUs to pin the worker to; None for no pinning.
        spare_cpus: CPUs a job with more threads than ``cpus`` adds, in order (``--cpus auto``).
        extra_runtimes: Operator-supplied runtimes, name -> "module:attr".
        max_worker_mb: Memory cap of the worker in MB; 0 for none.
        delegates: The operator's delegate allowlist, name -> path of the shared object.
    """

    def __init__(
        self,
        cpus: Sequence[int] | None,
        extra_runtimes: Mapping[str, str],
        max_worker_mb: int = 0,
        delegates: Mapping[str, str] | None = None,
        spare_cpus: Sequence[int] = (),
    ) -> None:
        self.cpus = tuple(cpus) if cpus is not None else None
        self.spare_cpus = tuple(spare_cpus)
        self.extra_runtimes = dict(extra_runtimes)
        self.max_worker_mb = max_worker_mb
        self.delegates = dict(delegates or {})
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._reader: Connection | None = None
        self._writer: Connection | None = None
        self._jobs_dir: str | None = None
        self._cwd: str | None = None
        self._stopping = threading.Event()
        self.restarts = 0
        self.worker_cpus: list[int] = []

    @property
    def pid(self) -> int:
        """The worker's pid, 0 when none is running."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else 0

    def start(self) -> None:
        """Start the worker if it is not running (blocks until it is ready).

        Raises:
            RuntimeError: the worker did not come up.
        """
        with self._lock:
            self._ensure_started()

    def _ensure_started(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            return
        self._cleanup()
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        self._jobs_dir = tempfile.mkdtemp(prefix="lutnas-worker-")
        self._cwd = tempfile.mkdtemp(prefix="lutnas-worker-cwd-")  # stays empty: mode 0700, nothing in it
        cmd = [
            sys.executable,
            "-m",
            "agent._worker_main",
            "--rfd",
            str(to_child_r),
            "--wfd",
            str(from_child_w),
            "--jobs-dir",
            self._jobs_dir,
        ]
        if self.cpus is not None:
            cmd += ["--cpus", ",".join(map(str, self.cpus))]
        if self.spare_cpus:
            cmd += ["--spare-cpus", ",".join(map(str, self.spare_cpus))]
        for name, spec in self.extra_runtimes.items():
            cmd += ["--extra-runtime", f"{name}={spec}"]
        for name, path in self.delegates.items():
            cmd += ["--delegate", f"{name}={path}"]
        if self.max_worker_mb:
            cmd += ["--max-worker-mb", str(self.max_worker_mb)]
        env = dict(os.environ)
        # The worker must import this very copy of the agent, wherever the server was started from.
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        try:
            self._proc = subprocess.Popen(
                cmd, pass_fds=(to_child_r, from_child_w), env=env, stdin=subprocess.DEVNULL, cwd=self._cwd,
                start_new_session=True,  # its own process group: killed as one with whatever it started
            )
        finally:
            os.close(to_child_r)
            os.close(from_child_w)
        self._writer = Connection(to_child_w, readable=False)
        self._reader = Connection(from_child_r, writable=False)
        if not self._reader.poll(WORKER_START_TIMEOUT_S):
            self._kill()
            raise RuntimeError(f"timing worker did not start within {WORKER_START_TIMEOUT_S:.0f} s")
        try:
            hello = json.loads(self._reader.recv_bytes())
        except EOFError:
            code = self._proc.wait()
            self._cleanup()
            raise RuntimeError(f"timing worker exited during start with status {code}") from None
        self.worker_cpus = list(hello.get("cpus", []))
        log.info("timing worker %d ready on CPUs %s", self._proc.pid, self.worker_cpus)

    def run(self, job: dict[str, Any], timeout_s: float, cancelled: Callable[[], bool] | None = None) -> dict[str, Any]:
        """Run one job in the worker and return its reply document.

        Never raises for a job's failure: a crash, a deadline or a broken worker come back as
        ``{"ok": False, "code": ..., "message": ...}`` and the worker is restarted for the next job.

        Args:
            job: The job document.
            timeout_s: The job's deadline; past it the worker and its tools are killed.
            cancelled: Polled while the job runs; once it returns True (the caller gave up) the job is
                killed the same way. :meth:`stop` kills a running job too.
        """
        with self._lock:
            if self._stopping.is_set():
                return {"ok": False, "code": "ABORTED", "message": "the agent is stopping"}
            try:
                self._ensure_started()
            except (RuntimeError, OSError) as err:
                return {"ok": False, "code": "INTERNAL", "message": f"cannot start the timing worker: {err}"}
            if self._reader is None or self._writer is None or self._proc is None:
                return {"ok": False, "code": "INTERNAL", "message": "timing worker is not running"}
            try:
                self._writer.send_bytes(json.dumps({"job": job}).encode())
                ready = self._wait_reply(timeout_s, cancelled)
            except (OSError, EOFError):
                ready = True  # the pipe broke: the worker died; recv below reports how
            if ready is None:
                log.info("job %r ended early (its stream closed or the agent is stopping); killing worker %d", job.get("job_id"), self._proc.pid)
                self._kill()
                return {"ok": False, "code": "ABORTED", "message": "job cancelled: its stream closed or the agent is stopping"}
            if not ready:
                log.warning("job %s ran past its %.1f s deadline; killing worker %d", job.get("job_id"), timeout_s, self._proc.pid)
                self._kill()
                return {
                    "ok": False,
                    "code": "DEADLINE_EXCEEDED",
                    "message": f"job ran past its deadline of {timeout_s:.1f} s; worker killed, a new one takes the next job",
                }
            try:
                reply = json.loads(self._reader.recv_bytes())
            except (EOFError, OSError):
                code = self._reap()
                self.restarts += 1
                how = f"signal {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit status {code}"
                log.warning("timing worker died (%s) during job %s; starting a new one for the next job", how, job.get("job_id"))
                return {
                    "ok": False,
                    "code": "ABORTED",
                    "message": f"timing worker died ({how}) while running the job; a new one takes the next job",
                }
            if reply.get("restart"):
                # A job that hit the memory cap may leave the heap fragmented or a runtime half-torn:
                # the next job gets a fresh worker.
                log.warning("job %s: %s; replacing worker %d", job.get("job_id"), reply.get("message"), self._proc.pid)
                self._kill()
            return reply

    def _wait_reply(self, timeout_s: float, cancelled: Callable[[], bool] | None) -> bool | None:
        """Wait for the worker's reply: True when it is there, False past the deadline, None when cancelled."""
        assert self._reader is not None
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if self._reader.poll(max(0.0, min(left, _POLL_S))):
                return True
            if self._stopping.is_set() or (cancelled is not None and cancelled()):
                return None
            if left <= _POLL_S:
                return False

    def _reap(self) -> int | None:
        proc = self._proc
        code = None
        if proc is not None:
            try:
                code = proc.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
        self._cleanup()
        return code

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            kill_tree(self._proc.pid)
        self.restarts += 1
        self._reap()

    def _cleanup(self) -> None:
        for conn in (self._reader, self._writer):
            if conn is not None:
                conn.close()
        self._reader = self._writer = None
        self._proc = None
        for folder in (self._jobs_dir, self._cwd):
            if folder is not None:
                # A killed worker cannot clean up after itself.
                shutil.rmtree(folder, ignore_errors=True)
        self._jobs_dir = self._cwd = None

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop the worker: a running job is killed, an idle worker exits on its closed pipe (killed if it lingers).

        Starts no worker afterwards: later jobs fail with ABORTED.
        """
        self._stopping.set()  # a running job sees this within _POLL_S and releases the lock
        with self._lock:
            proc = self._proc
            if self._writer is not None:
                self._writer.close()
                self._writer = None
            if proc is not None:
                try:
                    proc.wait(timeout=timeout_s)
                except subprocess.TimeoutExpired:
                    kill_tree(proc.pid)  # the worker's group and any tool it started
                    proc.wait()
            self._cleanup()
