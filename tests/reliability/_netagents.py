"""Sleep-runtime agents and PostgreSQL servers living in the nodes of a :class:`~._netlab.NetLab`.

A :class:`NetAgent` is one device: an agent bound to its node's address (port 50051) with a job log
and a model cache that survive its "reboots", and, when the link has latency, the delaying relay
(:mod:`._relay`, port 50052) in front of it. Hosts dial :attr:`NetAgent.address`, so every byte crosses
the node's shaped, lossy, partitionable link.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from agent.testing import SLEEP_RUNTIME_SPEC, AgentProcess, start_agent_process

from ._harness import TOKEN, kill_pid, wait_for
from ._netlab import Node

__all__ = ["AGENT_PORT", "RELAY_PORT", "NetAgent"]

AGENT_PORT = 50051
RELAY_PORT = 50052
_REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class NetAgent:
    """An agent on ``node`` with the sleep runtime, a ``--job-log`` and a cache kept across restarts.

    Args:
        node: The device's namespace.
        workdir: Where its job log and cache live.
        rtt_ms: Round trip the relay adds (0: hosts dial the agent directly).
        tls: (cert, key) to serve TLS with.
        env: Extra environment for the agent.
    """

    node: Node
    workdir: Path
    rtt_ms: float = 0.0
    tls: tuple[Path, Path] | None = None
    env: dict[str, str] = field(default_factory=dict)
    agent: AgentProcess | None = None
    relay: subprocess.Popen | None = None
    restarts: int = 0

    @property
    def job_log(self) -> Path:
        return self.workdir / f"jobs-{self.node.name}.jsonl"

    @property
    def address(self) -> str:
        """What hosts dial: the relay when the link has latency, else the agent."""
        return f"{self.node.ip}:{RELAY_PORT if self.rtt_ms else AGENT_PORT}"

    def start(self, extra_args: Sequence[str] = ()) -> NetAgent:
        """Start the agent (and the relay, once); returns self."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = ["--extra-runtime", SLEEP_RUNTIME_SPEC, "--job-log", str(self.job_log), "--cpus", "all", *extra_args]
        if self.tls is not None:
            args += ["--tls-cert", str(self.tls[0]), "--tls-key", str(self.tls[1])]
        self.agent = start_agent_process(port=AGENT_PORT, token=TOKEN, host=self.node.ip, extra_args=args,
                                         cache_dir=self.workdir / f"cache-{self.node.name}", env=self.env,
                                         command=self.node.python("-m", "agent"))
        if self.rtt_ms and self.relay is None:
            self.relay = subprocess.Popen(
                self.node.python("-m", "tests.reliability._relay", "--listen", f"{self.node.ip}:{RELAY_PORT}",
                                 "--to", f"{self.node.ip}:{AGENT_PORT}", "--rtt-ms", f"{self.rtt_ms:g}"),
                cwd=_REPO_ROOT, stdout=subprocess.PIPE, text=True)
            assert self.relay.stdout is not None
            line = self.relay.stdout.readline()
            if "relay ready" not in line:
                raise RuntimeError(f"the relay on {self.node.name} did not start: {line!r}")
        return self

    def worker_pid(self) -> int:
        """The agent's timing worker (a child of the agent process, found through /proc)."""
        assert self.agent is not None
        pid = self.agent.proc.pid
        children = Path(f"/proc/{pid}/task/{pid}/children")
        found: list[int] = []
        wait_for(lambda: bool(found.extend(int(c) for c in children.read_text().split()) or found), 30.0,
                 f"the timing worker of the agent on {self.node.name}")
        return found[0]

    def power_cut(self) -> None:
        """SIGKILL the agent and its worker, as a power cut would (the cache on disk stays)."""
        assert self.agent is not None
        worker = self.worker_pid()
        kill_pid(self.agent.proc.pid, signal.SIGKILL)
        self.agent.proc.wait(10.0)
        kill_pid(worker, signal.SIGKILL)
        self.agent.stop()  # drops its temp dir
        self.agent = None

    def restart(self) -> None:
        """Start the agent again on the same address (after :meth:`power_cut`)."""
        self.restarts += 1
        self.start()

    def stop(self) -> None:
        if self.agent is not None:
            self.agent.stop()
            self.agent = None
        if self.relay is not None:
            self.relay.kill()
            self.relay.wait(10.0)
            self.relay = None
