"""``lutnas validate`` as one call: find the device setting, time whole subnets on its agent (or re-read the stored
runs), and say when the LUT is of no use for the device or the chosen calibration ignores it.

    from profiler import ValidationSettings, validate_lut
    run = validate_lut("lut.db", agent="pi=10.0.0.5:50051", settings=ValidationSettings(samples=40, calibrate=True))
    run.to_dict()  # what ``lutnas validate --json`` prints
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lut.calibration import Calibration
from lut.selectors import with_precision
from lut.store import LutStore, StoredSetting
from lut.transfer import predicted_rows
from profiler.agents import AgentSpec, Notes, name_agents
from profiler.profile_run import check_calib_dir, open_store
from profiler.validate import ValidationReport, ValidationSettings, report_from_store, validate

__all__ = ["FAR_OFF_PCT", "ValidationRun", "lut_warnings", "validate_lut"]

ProgressFn = Callable[[str, int, "int | None"], None]

# Raw LUT sums whose mean absolute error exceeds this (percent) do not describe the device's whole networks:
# a LUT of another device or setting (e.g. +222% with no subnet within ±10%).
FAR_OFF_PCT = 50.0

_STAGE_TASKS = {"export": "export subnets", "time": "time subnets (interleaved rounds)"}


@dataclass
class ValidationRun:
    """What ``validate_lut`` found.

    Attributes:
        report: The fidelity report (raw and calibrated metrics, repeat noise, worst subnets, the calibration).
        few_shot: The setting's few-shot status (``{"device", "predicted_rows", ...}``), None when every row is
            measured.
        warnings: Lines that say the LUT or its calibration is of no use for the device (also in ``to_dict``).
        notes: Lines for the user (how the device was named, predicted rows).
    """

    report: ValidationReport
    few_shot: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """``lutnas validate --json``."""
        return {**self.report.to_dict(), "few_shot": self.few_shot, "warnings": list(self.warnings)}


def lut_warnings(raw: dict[str, float], calibration: Calibration | None) -> list[str]:
    """Lines for a LUT whose raw sums are far off the whole networks, and for a calibration that ignores the LUT
    (every latency coefficient 0: it predicts from the block count alone)."""
    out = []
    if raw.get("mape", 0.0) > FAR_OFF_PCT:
        out.append(f"the LUT's sums are far off this device's whole networks (bias {raw['bias']:+.0f}%, "
                   f"{raw['within_10pct']:.0f}% of subnets within ±10%): the LUT does not describe this device as "
                   "measured now (another device, runtime, threads or options?); profile it again before relying on it")
    if calibration is not None:
        weights = [c for f, c in zip(calibration.features, calibration.coef) if f.endswith("_ms")]
        if weights and all(abs(c) < 1e-12 for c in weights):
            out.append(f"the chosen calibration ignores the LUT ({calibration.describe()}): its predictions do not "
                       "depend on the blocks' latencies, so a search ranks subnets by block count only; profile the "
                       "device again")
    return out


def validate_lut(db: str | Path, *, agent: str | AgentSpec | None = None, device: str | int | None = None,
                 precision: str | None = None, settings: ValidationSettings | None = None, token: str | None = None,
                 tls_ca: str | Path | None = None, progress: ProgressFn | None = None,
                 notify: Callable[[str], None] | None = None) -> ValidationRun:
    """Check a device's LUT against whole subnets timed on its agent (or re-read its stored runs, without ``agent``).

    Args:
        db: The LUT store (SQLite path or ``postgresql://...``).
        agent: ``[NAME=]HOST:PORT`` of the device's agent; None re-renders the stored runs of ``device``.
        device: The setting to validate (a name, a selector like ``cpu:int8``, or an id); default: the agent's NAME
            (a bare address: the agent's own name).
        precision: Narrow ``device`` to this precision.
        settings: How to validate (samples, rounds, calibrate, ...).
        token: Bearer token.
        tls_ca: CA certificate of a TLS agent.
        progress: ``progress(task, done, total)`` after every export and timing job.
        notify: Called with each line for the user as it arises (how the device is named, predicted rows);
            the run's ``notes`` keep them too. None logs them.

    Raises:
        ValueError: bad input (settings, the agent spec, the store, an unknown device).
        ValidationError, AgentError, LutError: the validation could not run.
    """
    settings = settings or ValidationSettings()
    spec = AgentSpec.of(agent) if agent is not None else None
    _check(settings)
    notes = Notes(notify)
    name = device if device is not None else _agent_device(spec, settings, token, tls_ca, notes)
    name = with_precision(name, precision)
    with open_store(db, create=False) as store:
        stored = store.setting(name)  # an unknown name's error already says "did you mean" (lut.selectors)
        few_shot = _few_shot(store, stored, notes)
        if spec is not None and spec.name is not None and device is None:  # say so if the agent calls itself otherwise
            name_agents([spec], token=token, tls_ca=tls_ca, connect_timeout_s=settings.connect_timeout_s,
                        consequence="the LUT of {name!r} is validated", notes=notes)
        if spec is None:
            report = report_from_store(store, stored.id, calibrate=settings.calibrate, space=settings.space,
                                       seed=settings.seed)
        else:
            report = validate(store, stored.id, spec.address, settings, token=token,
                              tls_ca=str(tls_ca) if tls_ca else None, on_progress=_stage_progress(progress))
    return ValidationRun(report=report, few_shot=few_shot, warnings=lut_warnings(report.raw, report.calibration),
                         notes=list(notes.lines))


def _check(settings: ValidationSettings) -> None:
    """The settings' bounds, as one ``X must be ..., got ...`` line each."""
    if settings.samples < 3:
        raise ValueError(f"--samples must be >= 3, got {settings.samples}")
    if settings.rounds < 2:
        raise ValueError(f"--rounds must be >= 2 (even and odd rounds measure the repeat noise), got {settings.rounds}")
    if settings.round_stat not in ("min", "median"):
        raise ValueError(f"--round-stat must be min or median, got {settings.round_stat!r}")
    timeout = settings.connect_timeout_s
    if timeout is not None and not (0 < timeout < float("inf")):
        raise ValueError(f"--connect-timeout-s must be a finite number > 0, got {timeout!r}")
    check_calib_dir(settings.calib_dir)


def _agent_device(spec: AgentSpec | None, settings: ValidationSettings, token: str | None,
                  tls_ca: str | Path | None, notes: Notes) -> str:
    """The device an agent names: its NAME, or (a bare address) the name the agent reports."""
    if spec is None:
        raise ValueError("validate needs an agent or a device: give --agent NAME=HOST:PORT to measure, or --device "
                         "NAME to re-render stored runs, got neither")
    if spec.name is not None:
        return spec.name
    named = name_agents([spec], token=token, tls_ca=tls_ca, connect_timeout_s=settings.connect_timeout_s, notes=notes)
    return named[0][0]


def _few_shot(store: LutStore, stored: StoredSetting, notes: Notes) -> dict[str, Any] | None:
    """The setting's few-shot status for the report (None when no row is predicted), said in ``notes``."""
    status = predicted_rows(store, stored)
    if status is None:
        return None
    notes.add(status.describe())
    return {"device": stored.name, **status.to_dict()}


def _stage_progress(progress: ProgressFn | None) -> Callable[[str, int, int], None] | None:
    """The validation's ``(stage, done, total)`` events as ``progress(task, done, total)``."""
    if progress is None:
        return None
    return lambda stage, done, total: progress(_STAGE_TASKS.get(stage, stage), done, total)

