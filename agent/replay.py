"""Results of the jobs this agent finished lately, for a host that sends a job again after its stream broke.

On a flaky link a host may lose a stream while the device keeps working: the job running at that
moment (and the one queued behind it) finish, but their results never arrive. The host sends those
jobs again, marked ``resend``, once the agent answers. Timing them again would run the same job twice
on the device; instead the agent answers with the result it kept, marked ``replayed``.

A job is recognised by everything that defines it (its id, model hash, runtime, format, threads,
inputs, plan and options), never by the stream or the host that sent it. A job sent without
``resend`` (a first send, a deliberate re-timing) is always timed. Only the last :data:`KEEP_RESULTS`
results are kept, each for :data:`KEEP_S` seconds of this agent's monotonic clock, in memory: an agent
that restarts remembers nothing, and the host's resent job is then timed.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict

from protos import agent_pb2

__all__ = ["KEEP_RESULTS", "KEEP_S", "RecentResults", "job_fingerprint"]

KEEP_RESULTS = 64  # results kept: far more than a host keeps in flight (its pipeline depth)
KEEP_S = 3600.0  # a host that comes back later has given the jobs to other agents or stopped


def job_fingerprint(job: agent_pb2.BenchmarkJob, sha: str) -> str:
    """A digest of what defines ``job``, its model named by ``sha`` whether its bytes came along or not."""
    key = agent_pb2.BenchmarkJob()
    key.CopyFrom(job)
    key.ClearField("model")
    key.model_sha256 = sha
    key.resend = False
    return hashlib.sha256(key.SerializeToString(deterministic=True)).hexdigest()


class RecentResults:
    """A bounded, thread-safe memory of finished jobs' results, by :func:`job_fingerprint`."""

    def __init__(self, keep: int = KEEP_RESULTS, keep_s: float = KEEP_S) -> None:
        self.keep = keep
        self.keep_s = keep_s
        self._results: OrderedDict[str, tuple[float, agent_pb2.BenchmarkResult]] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, fingerprint: str, result: agent_pb2.BenchmarkResult) -> None:
        """Keep ``result`` (a copy) as the latest answer to the job ``fingerprint``."""
        kept = agent_pb2.BenchmarkResult()
        kept.CopyFrom(result)
        with self._lock:
            self._results.pop(fingerprint, None)
            self._results[fingerprint] = (time.monotonic(), kept)
            while len(self._results) > self.keep:
                self._results.popitem(last=False)

    def recall(self, fingerprint: str) -> agent_pb2.BenchmarkResult | None:
        """The kept result of job ``fingerprint`` marked ``replayed``, or None (never run here, or too long ago)."""
        with self._lock:
            entry = self._results.get(fingerprint)
            if entry is None or time.monotonic() - entry[0] > self.keep_s:
                return None
            result = agent_pb2.BenchmarkResult()
            result.CopyFrom(entry[1])
        result.replayed = True
        return result
