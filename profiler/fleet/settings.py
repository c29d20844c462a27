"""What a profile is asked to do: its settings, the agents it drives, and the blocks it plans."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from profiler.vocabulary import FORMAT_FOR_RUNTIME, check_combination
from space import DEFAULT_SPACE, Block, get_space

__all__ = [
    "DEFAULT_PLAN",
    "FORMAT_FOR_RUNTIME",
    "AgentRef",
    "ProfileError",
    "ProfileSettings",
    "default_cache_dir",
    "plan_blocks",
]

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

# Settings by the bound they must keep: (bound as the message says it, the test).
_BOUNDS = {
    ">= 1": (lambda v: v >= 1, ("threads", "max_attempts", "pipeline_depth", "rounds", "export_workers")),
    ">= 0": (lambda v: v >= 0, ("sentinel_every", "sentinel_retries", "sentinel_cooldown_s", "retry_backoff_s",
                                "agent_wait_s")),
    "> 0": (lambda v: v > 0, ("sentinel_threshold", "job_timeout_s", "rpc_timeout_s", "connect_timeout_s",
                              "store_wait_s")),
}


class ProfileError(Exception):
    """A profile could not start or could not finish (one line, names the device)."""


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
    fmt: str = ""  # model format ("" picks FORMAT_FOR_RUNTIME[runtime]); see profiler.vocabulary
    precision: str = "fp32"  # what is built and timed: fp32, fp16 or int8 (space.precision, profiler.quantize)
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
    # How long the start keeps trying an unreachable agent (later outages: agent_wait_s); None: 10 s, and 1 s for
    # one that refuses connections (not running); a number waits that long for either (an agent still starting).
    connect_timeout_s: float | None = None
    export_workers: int = 1  # export processes running ahead of the agents
    claim_batch: int = 16  # blocks claimed from the store at a time (hosts sharing a setting split by these)
    lease_s: float = 30.0  # a claim lapses this long after its host stops renewing it (killed hosts)
    store_wait_s: float = 120.0  # how long store writes are retried while the store cannot be reached
    cache_dir: str | None = None  # artifact cache (default: ~/.cache/lutnas/artifacts)
    only_keys: tuple[str, ...] = ()  # time only these blocks of the plan (a few-shot profile); () times all

    @property
    def model_format(self) -> str:
        """The format the blocks are exported in: ``fmt``, else the runtime's default."""
        return self.fmt or FORMAT_FOR_RUNTIME.get(self.runtime, "onnx")

    def validate(self, *, own_exports: bool = False) -> None:
        """Raise ValueError naming the first bad setting (``"X must be ..., got ..."``).

        Args:
            own_exports: The caller brings its own export function (a synthetic runtime): the runtime x format x
                precision table of :mod:`profiler.vocabulary`, which describes the profiler's exporters, does not apply.
        """
        if not self.resolutions or any(int(r) < 1 for r in self.resolutions):
            raise ValueError(f"resolutions must be positive ints, at least one, got {self.resolutions}")
        for bound, (ok, names) in _BOUNDS.items():
            for name in names:
                if getattr(self, name) is not None and not ok(getattr(self, name)):
                    raise ValueError(f"{name} must be {bound}, got {getattr(self, name)}")
        if not own_exports:
            check_combination(self.runtime, self.fmt, self.precision, self.options)


def default_cache_dir() -> str:
    """The host artifact cache when none is given: ``~/.cache/lutnas/artifacts``."""
    return str(Path.home() / ".cache" / "lutnas" / "artifacts")


def plan_blocks(space: str, resolutions: Sequence[int]) -> list[Block]:
    """Every distinct block a subnet of ``space`` can run at ``resolutions``, in run order."""
    return get_space(space).unique_blocks(list(resolutions))
