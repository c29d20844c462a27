"""One connection to an agent: a long-lived ``Benchmark`` stream with a watchdog, the jobs on it, the blobs it holds."""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

import grpc

from profiler.client import AgentClient, AgentUnavailable, make_job
from profiler.worklist import Task
from protos import agent_pb2
from space import Block

from .exports import Exports
from .settings import ProfileSettings

__all__ = ["AgentStats", "Sent", "Session", "Stream"]

@dataclass
class AgentStats:
    busy_s: float = 0.0
    wall_s: float = 0.0
    idle_s: float = 0.0  # no work to do: sentinel cooldowns, a vanished agent, an empty queue
    transients: int = 0  # sentinel readings off once but fine when read again at once
    uploaded_bytes: int = 0
    saved_bytes: int = 0
    drifts: int = 0
    recovered: int = 0  # results of jobs the agent ran while the link was down, sent again and not re-timed
    round_medians: dict[str, list[float]] = field(default_factory=dict)  # block key -> its round medians (last timing)


class Stream:
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
class Sent:
    """A job on its way: the task (None for the sentinel), its blob hash and whether bytes went along."""

    task: Task | None
    sha: str
    with_blob: bool


class Session:
    """One connection's worth of talking to an agent: its stream, the jobs on it, and the blobs it holds.

    A new session starts after the agent comes back, so a restarted agent's fresh cache is never assumed full.
    """

    def __init__(self, client: AgentClient, exports: Exports, settings: ProfileSettings, stats: AgentStats) -> None:
        self.client = client
        self.exports = exports
        self.settings = settings
        self.stats = stats
        # A job may take job_timeout_s on the agent, plus the upload and the reply.
        self.stream = Stream(client, settings.job_timeout_s + max(5.0, 0.25 * settings.job_timeout_s))
        self.outstanding: deque[Sent] = deque()
        self.known: set[str] = set()  # blobs the agent holds

    def send(self, block: Block, task: Task | None, force_blob: bool = False, resend: bool = False) -> Sent:
        """Queue a job for ``block`` (bytes only when the agent lacks them) and track it as outstanding.

        ``resend`` marks a job whose earlier send got no result (its stream broke): an agent that ran it
        meanwhile answers with that run's result instead of timing it again (see ``agent.replay``).
        """
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
        job.resend = resend
        if data is not None:
            self.stats.uploaded_bytes += len(data)
            self.known.add(sha)  # it will be, once this job arrives
        else:
            self.stats.saved_bytes += self.exports.size(sha)
        self.stream.send(job)
        sent = Sent(task, sha, with_blob)
        self.outstanding.append(sent)
        return sent

    def receive(self) -> tuple[Sent, agent_pb2.BenchmarkResult]:
        """The next result and the job it answers; the job stays outstanding if the stream breaks."""
        result = self.stream.receive()
        self.stats.busy_s += result.wall_s  # a replayed result's device time was spent while the link was down
        self.stats.recovered += int(result.replayed)
        return self.outstanding.popleft(), result

    def blob_lost(self, sent: Sent, result: agent_pb2.BenchmarkResult) -> bool:
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
