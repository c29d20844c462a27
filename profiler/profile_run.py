"""``lutnas profile`` as one call: name the agents' devices, plan a few-shot profile when asked, run the fleet
(:func:`profiler.fleet.profile`) into a store, predict the untimed blocks of a few-shot profile, and report.

    from profiler import ProfileSettings, profile_lut
    run = profile_lut("lut.db", ["pi=10.0.0.5:50051"], ProfileSettings(space="ofa-mbv3-w1.0", resolutions=(160,)))
    run.to_dict()  # what ``lutnas profile --json`` prints
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lut.errors import LutError
from lut.store import LutStore
from lut.transfer import TransferResult, UselessFitError, fill_from_sources, load_sources, measured_keys, plan_few_shot
from profiler.agents import AgentSpec, Notes, name_agents
from profiler.fleet import AgentRef, DeviceReport, ProfileReport, ProfileSettings, Progress, plan_blocks, profile

__all__ = ["ProfileRun", "check_calib_dir", "open_store", "profile_lut", "remaining_blocks"]

log = logging.getLogger(__name__)

ProgressFn = Callable[[str, int, "int | None"], None]


def remaining_blocks(device: DeviceReport) -> int:
    """Blocks of a device neither stored before, timed now nor recorded as failed."""
    return device.total - device.skipped - device.timed - len(device.failed)


@dataclass
class ProfileRun:
    """What ``profile_lut`` did: the fleet's report, the few-shot transfers, the rows each setting now holds.

    Attributes:
        report: The fleet's report (per device: timed, skipped, failed, busy fraction, ...).
        transfers: Per setting id, the few-shot transfer that predicted its untimed blocks.
        counts: Per setting id, ``{"measured": n, "predicted": m}`` rows of the profiled space and resolutions.
        interrupted: The caller's ``stop`` ended the profile early; a rerun resumes.
        notes: Lines for the user (how devices were named, case twins).
    """

    report: ProfileReport
    transfers: dict[int, TransferResult] = field(default_factory=dict)
    counts: dict[int, dict[str, int]] = field(default_factory=dict)
    interrupted: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every device finished with no failed block."""
        return self.report.ok

    def describe(self) -> list[str]:
        """Lines for a reader beside the summary table: each few-shot transfer, each failure reason with a few of
        its blocks, each aborted device."""
        lines = []
        for d in self.report.devices:
            if d.setting_id in self.transfers:
                fs = self.transfers[d.setting_id].summary()
                lines.append(f"{d.name}: measured {self.counts[d.setting_id]['measured']} blocks, predicted "
                             f"{fs['predicted']} from {', '.join(fs['sources'])} ({fs['candidate']}, cross-validated "
                             f"error {fs['cv_error_pct']:.1f}% per block); check them with lutnas validate")
        for d in self.report.devices:
            for reason, count in Counter(f.reason for f in d.failed).most_common():
                keys = [f.block_key for f in d.failed if f.reason == reason]
                shown = ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")
                lines.append(f"{d.name}: {count} block(s) failed: {reason} ({shown})")
            if d.aborted:
                lines.append(f"aborted {d.name}: {d.aborted}")
        return lines

    def untimed(self) -> str:
        """What is left to time, device by device (``none`` when nothing)."""
        left = [f"{d.name}: {remaining_blocks(d)} of {d.total} blocks" for d in self.report.devices
                if remaining_blocks(d)]
        return "; ".join(left) or "none"

    def to_dict(self) -> dict[str, Any]:
        """``lutnas profile --json``."""
        doc = self.report.to_dict()
        for d, out in zip(self.report.devices, doc["devices"]):
            out["remaining"] = remaining_blocks(d)
            out.update(self.counts.get(d.setting_id, {"measured": 0, "predicted": 0}))
            out["few_shot"] = self.transfers[d.setting_id].summary() if d.setting_id in self.transfers else None
        return {**doc, "interrupted": self.interrupted}


def profile_lut(db: str | Path, agents: Sequence[str | AgentSpec | AgentRef], settings: ProfileSettings, *,
                few_shot: int | None = None, sources: Sequence[str | int] = (), token: str | None = None,
                tls_ca: str | Path | None = None, progress: ProgressFn | None = None,
                stop: threading.Event | None = None, notify: Callable[[str], None] | None = None) -> ProfileRun:
    """Time every block of ``settings.space`` at its resolutions on every device and store the rows in ``db``.

    Resumes: blocks the store holds for a device setting are not timed again. With ``few_shot`` K and ``sources``,
    only K informative blocks are timed and the rest are predicted from the source settings' LUTs (marked as
    predicted, with the model's cross-validated error).

    Args:
        db: The LUT store (a SQLite path or ``postgresql://...``), created if missing; a SQLite file this call
            creates is removed again when no row could be stored.
        agents: ``[NAME=]HOST:PORT`` texts, specs or :class:`AgentRef`; agents sharing a NAME split that device's
            work; a bare address names the device by the agent's own name.
        settings: What to profile and how (``settings.validate()`` is called).
        few_shot: K, the blocks to time for a few-shot profile (with ``sources``).
        sources: The settings (names, selectors or ids) a few-shot profile predicts from.
        token: Bearer token of the agents.
        tls_ca: CA certificate of TLS agents.
        progress: ``progress(task, done, total)`` after every block, one task per device.
        stop: Set it to stop early (Ctrl-C); the store stays consistent and a rerun resumes. The profile
            only reads it: one event can serve several calls.
        notify: Called with each line for the user as it arises (how a device is named, a case twin);
            the run's ``notes`` keep them too. None logs them.

    Raises:
        ValueError: bad input: a setting, an agent spec, the store, the few-shot sources, or a few-shot fit too poor
            to store (the timed blocks are kept).
        AgentError: an agent did not answer when asked its name.
        ProfileError, LutError: the profile could not start or finish.
    """
    settings.validate()
    check_calib_dir(settings.calib_dir)
    if (few_shot is None) != (not sources):
        raise ValueError("--few-shot K and --from SETTING,... go together (few_shot and sources), got --few-shot "
                         f"{few_shot} and --from {','.join(map(str, sources)) or 'nothing'}")
    if few_shot is not None and few_shot < 1:
        raise ValueError(f"--few-shot must be >= 1, got {few_shot}")
    source_tables = None
    if few_shot is not None:  # the sources are input: read before the agents are asked anything
        source_tables = _read_sources(db, sources)
        keys = plan_few_shot(source_tables, settings.space, settings.resolutions, few_shot)
        settings = replace(settings, only_keys=tuple(keys))
    notes = Notes(notify)
    refs = _agent_refs(agents, token, tls_ca, settings.connect_timeout_s, notes)
    with _removed_unless_filled(db) as keep:
        run = _run(db, refs, settings, source_tables, few_shot, token, tls_ca, progress, stop, notes)
        keep(run.ok and not run.interrupted)
    return run


def _run(db: str | Path, refs: list[AgentRef], settings: ProfileSettings, sources: dict | None, k: int | None,
         token: str | None, tls_ca: str | Path | None, progress: ProgressFn | None,
         stop: threading.Event | None, notes: Notes) -> ProfileRun:
    """The profile itself, in an open store: the fleet, then the few-shot fill and the row counts."""
    with open_store(db, create=True) as store:
        notes.extend(_case_twin(store, name) for name in dict.fromkeys(r.name for r in refs))
        report = profile(store, refs, settings, token=token, tls_ca=str(tls_ca) if tls_ca else None,
                         on_progress=_fleet_progress(progress), stop=stop)
        transfers = {}
        if sources is not None and k is not None and not report.stopped:
            transfers = _few_shot_fill(store, report, sources, settings, k)
        counts = {d.setting_id: _row_counts(store, d.setting_id, settings) for d in report.devices}
    return ProfileRun(report=report, transfers=transfers, counts=counts, interrupted=report.stopped,
                      notes=list(notes.lines))


def check_calib_dir(calib_dir: str | None) -> None:
    """An int8 calibration folder must hold images (else every image-input export would fail)."""
    from profiler.quantize import list_images

    if calib_dir is not None and not list_images(Path(calib_dir)):
        raise ValueError(f"--calib-dir must be a folder of images (jpg, png, bmp, webp), got {calib_dir}, "
                         "which holds no images")


@contextmanager
def open_store(db: str | Path, create: bool) -> Iterator[LutStore]:
    """The store, its open failure as bad input (ValueError)."""
    try:
        store = LutStore(db, create=create)
    except LutError as err:
        raise ValueError(str(err)) from err
    with store:
        yield store


def _read_sources(db: str | Path, sources: Sequence[str | int]) -> dict[str, dict[str, float]]:
    """The few-shot source LUTs, bad references as ValueError."""
    refs = [s.strip() if isinstance(s, str) else s for s in sources]
    with open_store(db, create=False) as store:
        try:
            return load_sources(store, [r for r in refs if r != ""])
        except LutError as err:
            raise ValueError(str(err)) from err


def _agent_refs(agents: Sequence[str | AgentSpec | AgentRef], token: str | None, tls_ca: str | Path | None,
                connect_timeout_s: float | None, notes: Notes) -> list[AgentRef]:
    """Every agent named (asked before the store opens: an unreachable one leaves no store behind)."""
    specs = [AgentSpec(a.address, a.name) if isinstance(a, AgentRef) else AgentSpec.of(a) for a in agents]
    named = name_agents(specs, token=token, tls_ca=tls_ca, connect_timeout_s=connect_timeout_s,
                        consequence="rows are stored under {name!r}", notes=notes)
    return [AgentRef(name, address) for name, address in named]


def _case_twin(store: LutStore, name: str) -> str:
    """A line when ``name`` is new to the store but differs only in case from a stored device."""
    names = {s.name for s in store.settings()}
    twins = sorted(n for n in names if n != name and n.casefold() == name.casefold())
    if name in names or not twins:
        return ""
    return f"{name!r} is a new device; did you mean {twins[0]!r}? (device names are case-sensitive)"


def _fleet_progress(progress: ProgressFn | None) -> Callable[[Progress], None] | None:
    """The fleet's progress events as ``progress(task, done, total)``, one task per device."""
    if progress is None:
        return None
    return lambda p: progress(f"profile {p.device}", p.done + p.failed, p.total)


def _few_shot_fill(store: LutStore, report: ProfileReport, sources: dict, settings: ProfileSettings,
                   k: int) -> dict[int, TransferResult]:
    """Predict the unmeasured blocks of every profiled device from ``sources``: ``{setting_id: TransferResult}``.

    A device whose profile aborted gets no predicted rows; a useless fit raises (ValueError) with the measured rows
    kept and nothing predicted stored. The picks for a larger K begin with those for a smaller one, so the message
    says how to go on without timing anything twice."""
    out = {}
    for d in report.devices:
        if d.aborted:
            continue
        try:
            out[d.setting_id] = fill_from_sources(store, d.setting_id, sources, settings.space, settings.resolutions)
        except UselessFitError as err:
            more = min(2 * k, len(plan_blocks(settings.space, settings.resolutions)))
            hint = (f"; the blocks timed are kept: --few-shot {more} times only the {more - k} next picks"
                    if more > k else "")
            raise UselessFitError(f"{d.name}: {err}{hint}") from err
        except LutError as err:
            raise ValueError(f"{d.name}: {err}") from err
    return out


def _row_counts(store: LutStore, setting_id: int, settings: ProfileSettings) -> dict[str, int]:
    """How many of the plan's blocks the setting has measured, and how many are predicted."""
    if not setting_id:  # refused before anything was stored
        return {"measured": 0, "predicted": 0}
    plan = {b.key for b in plan_blocks(settings.space, settings.resolutions)}
    measured = measured_keys(store, setting_id) & plan
    return {"measured": len(measured), "predicted": len((store.keys(setting_id) & plan) - measured)}


@contextmanager
def _removed_unless_filled(db: str | Path) -> Iterator[Callable[[bool], None]]:
    """Around a profile into ``db``: a SQLite file the profile creates is removed again when the profile fails
    or stops before storing its first row, so a failed first run leaves no empty store behind. A file that
    existed before, and a PostgreSQL store, are never removed. The body calls ``keep(ok)`` with its outcome."""
    path = None if "://" in str(db) else Path(db)
    new = path is not None and not path.exists()
    outcome = {"ok": False}
    try:
        yield lambda ok: outcome.update(ok=ok)
    finally:
        if new and not outcome["ok"] and path is not None and path.exists() and _holds_no_rows(path):
            for leftover in (path, *(path.with_name(path.name + s) for s in ("-wal", "-shm", "-journal"))):
                leftover.unlink(missing_ok=True)


def _holds_no_rows(path: Path) -> bool:
    """Whether the store at ``path`` has no LUT row (an empty file counts; an unreadable one does not)."""
    try:
        with LutStore(path, create=False) as store:
            return not any(store.count_rows().values())
    except LutError:
        return path.stat().st_size == 0
