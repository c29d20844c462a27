"""What a profile did: one report per device name, the whole run's report, and progress events."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lut.repeatability import spread_pct
from profiler.worklist import Failure

__all__ = ["UNSTEADY_ROUNDS", "DeviceReport", "ProfileReport", "Progress", "busy_fraction"]

# A profile whose rounds differ by more than this (see DeviceReport.round_spread) says the device's timing
# is unsteady. On a shared 2-core cloud VM a fixed Python loop's CPU time swung 1.75x within
# seconds, and the two rounds of a 2-thread onnxruntime profile differed by a median 19% per block (int8:
# 25%): the LUT's blocks carry that noise, which the lowest median of two rounds only partly removes.
UNSTEADY_ROUNDS = 0.10


def busy_fraction(busy_s: float, wall_s: float, idle_s: float) -> float:
    """Share of an agent's working time (its time in the profile less time with no work to do) spent timing."""
    working = wall_s - idle_s
    return busy_s / working if working > 0 else 0.0


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
    recovered: int = 0  # results an agent kept for jobs it ran while its link was down (sent again, not re-timed)
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
        return busy_fraction(self.busy_s, self.agent_wall_s, self.idle_s)

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
            "recovered": self.recovered,
            "round_spread_pct": spread_pct(self.round_spread),
        }


@dataclass
class ProfileReport:
    """One entry per device name, in the order the agents were given."""

    devices: list[DeviceReport]
    wall_s: float = 0.0
    export_s: float = 0.0  # total export time spent by the pool (all blocks exported this run)
    exported: int = 0
    stopped: bool = False  # the caller's stop event ended the profile early (Ctrl-C); a rerun resumes

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
