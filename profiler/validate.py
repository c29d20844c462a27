"""End-to-end validation: do a LUT's sums predict what whole networks take on the device?

Protocol (measured on a noisy 2-core host, see DESIGN.md): subnets are drawn stratified over the
LUT-predicted latency range, exported the same way the blocks were (same runtime, threads,
format, precision and quantization recipe, weight seed) and timed on the agent in interleaved rounds — every round times every
network once, in a fresh random order, so slow bursts of host noise spread over all networks
instead of landing on a few. A network's latency is the minimum of its round medians (host noise
is positive). Even and odd rounds give two independent measurements of each network; their
relative difference is the measurement's own repeat noise, reported beside every fidelity figure.

``round_stat`` picks how round medians combine: ``min`` (default) or ``median``. Host noise is
positive with either clock (preemption under wall-clock timing; cache and memory-bandwidth
contention from other tenants under thread CPU time), so the minimum estimates the quiet-host cost
the LUT's blocks mostly see. Two 100-subnet runs at r=224 here (thread CPU clock): with the load
falling during the run, min gave a held-out calibrated RMSPE of 3.0% and median 7.6%; under heavy
load throughout (profile included), median gave 3.9% and min 7.1%. Keep the minimum unless
the profile itself ran under the same sustained load.

Whole networks are timed with the runtime options the blocks were timed with (``options``); the
clock the agent used (onnxruntime and LiteRT: ``thread_cpu`` for one thread by default, see
``agent.runtimes._clock``) is stored with the run, and a run whose clock differs from the
LUT rows' gets a note, because wall-clock and CPU-time latencies are not comparable on a shared host.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lut.calibration import (
    Calibration,
    fidelity_metrics,
    fit_calibration,
    subnet_features,
)
from lut.predict import CompiledLut
from lut.schema import DeviceSetting
from lut.store import LutStore, StoredSetting
from profiler.artifacts import sha256_hex
from profiler.client import AgentClient, AgentError, connect_kw, make_job, oversized_message
from profiler.export import export_pool, export_subnet
from profiler.vocabulary import check_combination
from space import AnySpace, ResNetSpace, SubnetBatch, get_space, list_spaces

__all__ = [
    "VALIDATION_PLAN",
    "ValidationError",
    "ValidationInputError",
    "ValidationReport",
    "ValidationSettings",
    "draw_stratified",
    "infer_space",
    "repeat_noise",
    "report_from_store",
    "time_subnets",
    "validate",
]

log = logging.getLogger(__name__)

# One timing job per network per round: short, because rounds repeat it.
VALIDATION_PLAN: Mapping[str, float | int] = {
    "warmup_count": 3,
    "warmup_s": 0.05,
    "min_reps": 10,
    "min_s": 0.1,
    "max_reps": 100,
    "max_s": 1.5,
    "target_rel_ci": 0.01,
}
_ROUND_STATS = ("min", "median")


class ValidationError(Exception):
    """Validation could not run (one line: what and where)."""


class ValidationInputError(ValidationError, ValueError):
    """Validation was asked for something the settings or the LUT rule out (bad input)."""


@dataclass(frozen=True)
class ValidationSettings:
    """How to validate a device's LUT."""

    samples: int = 100  # networks to time end to end
    rounds: int = 4  # interleaved rounds (>= 2: even and odd rounds give the repeat noise)
    plan: Mapping[str, float | int] = field(default_factory=lambda: dict(VALIDATION_PLAN))
    seed: int = 0  # subnet draw and round order
    weight_seed: int = 0  # must equal the profile's export seed: same weights as the timed blocks
    space: str | None = None  # None: the registered space the LUT covers
    resolutions: tuple[int, ...] = ()  # () : every resolution the LUT covers
    calibrate: bool = False  # fit and store a calibration from this run
    pool: int = 20_000  # random subnets the stratified draw picks from
    export_workers: int = 1  # export processes (0: export in this process, e.g. where torch is already loaded)
    job_timeout_s: float = 300.0
    options: Mapping[str, str] = field(default_factory=dict)  # runtime options; use the profile's
    round_stat: str = "min"  # how a network's round medians combine: min | median
    calib_dir: str | None = None  # int8 calibration images; use the profile's (None: seeded inputs)
    connect_timeout_s: float | None = None  # how long to keep trying an unreachable agent (see ProfileSettings)


@dataclass
class ValidationReport:
    """What a validation run found."""

    device: str
    space: str
    run_id: int
    samples: pd.DataFrame  # arch, predicted_ms, measured_ms, repeat_ms, calibrated_ms
    raw: dict[str, float]
    calibrated: dict[str, float] | None  # cross-validated (held-out) metrics of the fitted calibration
    noise: dict[str, float]
    calibration: Calibration | None = None
    wall_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    def worst(self, k: int = 5) -> pd.DataFrame:
        """The ``k`` subnets the raw LUT sum predicts worst."""
        frame = self.samples.copy()
        frame["raw_err_pct"] = 100 * (frame["predicted_ms"] / frame["measured_ms"] - 1)
        return frame.reindex(frame["raw_err_pct"].abs().sort_values(ascending=False).index).head(k)

    def to_dict(self) -> dict[str, Any]:
        worst = [{"arch": r.arch, "predicted_ms": round(r.predicted_ms, 4), "measured_ms": round(r.measured_ms, 4),
                  "raw_err_pct": round(r.raw_err_pct, 2)} for r in self.worst().itertuples()]
        return {
            "device": self.device, "space": self.space, "run_id": self.run_id, "samples": len(self.samples),
            "raw": self.raw, "calibrated": self.calibrated, "noise": self.noise,
            "calibration": None if self.calibration is None else {
                "kind": self.calibration.kind, "describe": self.calibration.describe()},
            "worst": worst, "wall_s": round(self.wall_s, 2), "notes": self.notes,
        }


# -- drawing subnets ----------------------------------------------------------------------------


def infer_space(store: LutStore, setting: StoredSetting, space: str | None) -> tuple[AnySpace, CompiledLut]:
    """The space (given, else a user's space recorded with the setting, else the first registered one the LUT
    fully covers) and its compiled LUT."""
    from lut.manage import resolve_space
    from lut.spaces import recorded_spaces

    if space:
        candidates = [resolve_space(space, [setting])]
    else:
        candidates = [*recorded_spaces([setting]), *(get_space(name) for name in list_spaces())]
    for candidate in candidates:
        compiled = CompiledLut.from_store(store, setting, candidate)
        if compiled.resolutions:
            return candidate, compiled
    raise ValidationError(f"device {setting.name!r}: the LUT covers no resolution of "
                          f"{', '.join(c.name for c in candidates)} completely; profile it first")


def draw_stratified(compiled: CompiledLut, n: int, rng: np.random.Generator, resolutions: Sequence[int],
                    pool: int = 20_000) -> SubnetBatch | list[Any]:
    """``n`` distinct subnets spread evenly over the LUT-predicted latency range.

    A random pool is cut into ``n`` equal-width latency bins and one subnet is taken from each;
    empty bins (the range's thin tails) are filled from the rest of the pool. ResNet50's subnets come as a list
    (its LUT prices them one by one), the other families' as a :class:`SubnetBatch`.
    """
    if n < 1:
        raise ValueError(f"samples must be >= 1, got {n}")
    if isinstance(compiled.space, ResNetSpace):
        archs = compiled.space.sample_archs(max(pool, 4 * n), rng, resolutions=list(resolutions))
        return [archs[i] for i in _stratified(compiled.predict_batch(archs, calibrated=False), n, rng)]
    candidates = compiled.space.sample(max(pool, 4 * n), rng, resolutions=list(resolutions))
    return candidates.take(_stratified(compiled.predict_batch(candidates, calibrated=False), n, rng))


def _stratified(lat: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``n`` of the latencies ``lat``, one per equal-width bin, the rest drawn from the remainder."""
    edges = np.linspace(lat.min(), lat.max(), n + 1)
    bins = np.clip(np.searchsorted(edges, lat, side="right") - 1, 0, n - 1)
    chosen: list[int] = []
    for b in range(n):
        members = np.flatnonzero(bins == b)
        if members.size:
            chosen.append(int(rng.choice(members)))
    rest = np.setdiff1d(np.arange(len(lat)), chosen)
    chosen += [int(i) for i in rng.choice(rest, size=n - len(chosen), replace=False)]
    return np.asarray(chosen)


def _subnets(batch: SubnetBatch | list[Any]) -> list[Any]:
    return batch.to_subnets() if isinstance(batch, SubnetBatch) else list(batch)


# -- exporting whole networks ---------------------------------------------------------------------


def _export_net(space: str | AnySpace, arch: dict[str, Any], fmt: str, seed: int, folder: str, precision: str = "fp32",
                calib_dir: str | None = None) -> tuple[str, str, float]:
    """Pool task: export one subnet to a file in ``folder``; (sha256, path, seconds)."""
    start = time.perf_counter()
    data = export_subnet(get_space(space), arch, fmt, seed=seed, precision=precision, calib_dir=calib_dir)
    sha = sha256_hex(data)
    path = os.path.join(folder, sha)
    if not os.path.exists(path):
        tmp = path + f".{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    return sha, path, time.perf_counter() - start


# -- the run ------------------------------------------------------------------------------------


def validate(
    store: LutStore,
    device: str | int | StoredSetting,
    address: str,
    settings: ValidationSettings,
    *,
    token: str | None = None,
    tls_ca: str | None = None,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> ValidationReport:
    """Time ``settings.samples`` whole subnets on the agent at ``address`` and compare with the LUT.

    Args:
        store: LUT store holding the device's rows; the run (and calibration) is saved there.
        device: The device setting (name or id) whose LUT is validated.
        address: The agent (``host:port``) of that device.
        settings: What to run.
        token: Bearer token.
        tls_ca: CA certificate for a TLS agent.
        on_progress: ``(stage, done, total)`` after every export and timing job.

    Raises:
        ValidationError: the LUT, the agent or the runtime cannot support the run.
    """
    start = time.monotonic()
    if settings.rounds < 2:
        raise ValidationInputError(f"rounds must be >= 2 (even and odd rounds measure the repeat noise), got {settings.rounds}")
    if settings.round_stat not in _ROUND_STATS:
        raise ValidationInputError(f"round_stat must be one of {', '.join(_ROUND_STATS)}, got {settings.round_stat!r}")
    if settings.connect_timeout_s is not None and not settings.connect_timeout_s > 0:
        raise ValidationInputError(f"connect_timeout_s must be > 0, got {settings.connect_timeout_s!r}")
    setting = store.setting(device)
    _export_format(setting.setting, settings.options)  # fail before any timing
    space, compiled = infer_space(store, setting, settings.space)
    resolutions = [r for r in compiled.resolutions if not settings.resolutions or r in settings.resolutions]
    if not resolutions:
        raise ValidationInputError(f"device {setting.name!r}: none of {list(settings.resolutions)} is covered by the LUT "
                              f"(covered: {list(compiled.resolutions)})")
    rng = np.random.default_rng(settings.seed)
    batch = draw_stratified(compiled, settings.samples, rng, resolutions, pool=settings.pool)
    predicted = compiled.predict_batch(batch, calibrated=False)
    archs = [s.to_arch() for s in _subnets(batch)]
    notes: list[str] = []
    progress = on_progress or (lambda stage, done, total: None)

    with AgentClient(address, token=token, tls_ca=tls_ca, **connect_kw(settings.connect_timeout_s)) as client:
        notes += _check_runtime(client, setting)
        medians, clocks = time_subnets(client, setting.setting, space, archs, settings, rng, progress)
    notes += _check_clock(store, setting, clocks)

    round_stat = settings.round_stat
    combine = np.min if round_stat == "min" else np.median
    measured = combine(medians, axis=1)
    even, odd = combine(medians[:, 0::2], axis=1), combine(medians[:, 1::2], axis=1)
    # measured_ms uses every round; first_ms (even rounds) and repeat_ms (odd rounds) are the two
    # independent measurements whose disagreement is the noise floor.
    samples = pd.DataFrame({"arch": archs, "predicted_ms": predicted, "measured_ms": measured,
                            "repeat_ms": odd, "first_ms": even,
                            "round_medians_ms": [list(map(float, m)) for m in medians]})
    noise = repeat_noise(even, odd)
    raw = fidelity_metrics(predicted, measured)

    calibration = None
    calibrated = None
    if settings.calibrate:
        features = subnet_features(compiled, batch)
        calibration = fit_calibration(features, measured, space=space.name, random_state=settings.seed)
        calibrated = dict(calibration.cv_metrics)
        samples["calibrated_ms"] = calibration.predict(features)
    meta = {"space": space.name, "rounds": settings.rounds, "plan": dict(settings.plan), "seed": settings.seed,
            "resolutions": resolutions, "agent": address, "protocol": f"interleaved rounds, {round_stat} of round medians",
            "round_stat": round_stat, "noise": noise, "options": dict(settings.options), "clock": ",".join(sorted(clocks)) or "unreported"}
    run_id = store.save_validation_run(setting.id, samples.drop(columns=["calibrated_ms"], errors="ignore"), meta)
    if calibration is not None:
        store.save_calibration(setting.id, calibration)
    return ValidationReport(device=setting.name, space=space.name, run_id=run_id, samples=samples, raw=raw,
                            calibrated=calibrated, noise=noise, calibration=calibration,
                            wall_s=time.monotonic() - start, notes=notes)


def _check_runtime(client: AgentClient, setting: StoredSetting) -> list[str]:
    s = setting.setting
    try:
        info = client.device_info()
    except AgentError as err:
        raise ValidationError(str(err)) from err
    runtime = next((r for r in info.runtimes if r.name == s.runtime and r.available), None)
    if runtime is None:
        raise ValidationError(f"agent {client.address} has no runtime {s.runtime!r}; the LUT of {setting.name!r} "
                              f"was measured with it")
    if s.runtime_version and runtime.version != s.runtime_version:
        return [f"LUT measured with {s.runtime} {s.runtime_version}, agent has {runtime.version}"]
    return []


def _export_all(space: str | AnySpace, archs: list[dict[str, Any]], fmt: str, precision: str, settings: ValidationSettings,
                folder: str, progress: Callable[[str, int, int], None]) -> list[tuple[str, str]]:
    """Export every network (a process pool keeps the host's torch work off the agent's thread).

    Raises:
        ValidationError: a network cannot be exported at this format and precision.
    """
    out: list[tuple[str, str]] = []
    args = (fmt, settings.weight_seed, folder, precision, settings.calib_dir)
    pool = export_pool(max(1, settings.export_workers)) if settings.export_workers else None
    try:
        if pool is None:
            results = (_export_net(space, arch, *args) for arch in archs)
        else:
            results = (f.result() for f in [pool.submit(_export_net, space, arch, *args) for arch in archs])
        for i in range(len(archs)):
            try:
                sha, path, _ = next(results)
            except Exception as err:  # the exporter's own error, re-raised by the pool
                raise ValidationError(f"exporting network {i} as {fmt} {precision} failed: "
                                      f"{type(err).__name__}: {err}") from err
            out.append((sha, path))
            progress("export", i + 1, len(archs))
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return out


def time_subnets(client: AgentClient, setting: DeviceSetting, space: str | AnySpace, archs: list[dict[str, Any]],
                 settings: ValidationSettings, rng: np.random.Generator,
                 progress: Callable[[str, int, int], None] | None = None) -> tuple[np.ndarray, set[str]]:
    """Export whole subnets the way ``setting``'s blocks were exported (format and precision) and time them in
    interleaved rounds.

    Returns:
        The (n_subnets, rounds) matrix of round medians (ms), and the clocks the agent reported.

    Raises:
        ValidationError: the setting's model format cannot be exported, or a timing job failed.
    """
    fmt = _export_format(setting, settings.options)
    progress = progress or (lambda stage, done, total: None)
    with tempfile.TemporaryDirectory(prefix="lutnas-validate-") as folder:
        nets = _export_all(space, archs, fmt, setting.precision, settings, folder, progress)
        _check_message_size(client, nets)
        return _time_rounds(client, setting, nets, settings, rng, progress)


def _check_message_size(client: AgentClient, nets: list[tuple[str, str]]) -> None:
    """Refuse, before timing anything, a network larger than one message the agent accepts (a whole ResNet50 at
    fp32 is up to 184 MB; the agent's default is 64 MB)."""
    why = oversized_message(max(os.path.getsize(path) for _, path in nets), client.device_info().max_message_bytes,
                            client.address)
    if why is not None:
        raise ValidationError(f"the largest network {why}")


def _export_format(setting: DeviceSetting, options: Mapping[str, str]) -> str:
    """The export format matching how ``setting``'s blocks were timed (its runtime, format and precision must be
    a combination the exporters write and the runtime times, see :mod:`profiler.vocabulary`)."""
    try:
        return check_combination(setting.runtime, setting.model_format, setting.precision, options)
    except ValueError as err:
        raise ValidationError(f"device {setting.name!r}: cannot export whole networks: {err}") from err


def _time_net(client: AgentClient, s: DeviceSetting, sha: str, path: str, by_hash: bool,
              settings: ValidationSettings, what: str, job_id: str) -> Any:
    """One timing job of a network, sent by its hash (the agent has it) or with its bytes."""
    data = None if by_hash else Path(path).read_bytes()
    job = make_job(data, sha256=sha if by_hash else None, runtime=s.runtime, format=s.model_format,
                   threads=s.threads or 1, plan=settings.plan, options=settings.options,
                   job_timeout_s=settings.job_timeout_s, job_id=job_id)
    try:
        (result,) = list(client.benchmark([job], timeout_s=settings.job_timeout_s + 30))
    except AgentError as err:
        raise ValidationError(f"timing {what} failed: {err}") from err
    return result


def _evicted(result: Any) -> bool:
    """Whether a job sent by hash failed because the agent no longer caches the model (an LRU cache of whole
    ResNet50s, ~100 MB each, turns over within one round)."""
    return result.WhichOneof("outcome") == "error" and result.error.code == "NOT_FOUND"


def _time_rounds(client: AgentClient, s: DeviceSetting, nets: list[tuple[str, str]],
                 settings: ValidationSettings, rng: np.random.Generator,
                 progress: Callable[[str, int, int], None]) -> tuple[np.ndarray, set[str]]:
    """(n_nets, rounds) matrix of round medians (ms), and the clocks the agent reported."""
    medians = np.full((len(nets), settings.rounds), np.nan)
    known: set[str] = set()
    clocks: set[str] = set()
    total = len(nets) * settings.rounds
    done = 0
    for rnd in range(settings.rounds):
        for i in rng.permutation(len(nets)):
            sha, path = nets[i]
            if sha not in known:
                known |= client.has_models([sha])
            what = f"network {i} (round {rnd + 1})"
            result = _time_net(client, s, sha, path, sha in known, settings, what, f"net{i}-round{rnd}")
            if sha in known and _evicted(result):  # the agent's cache dropped it since: send it again
                result = _time_net(client, s, sha, path, False, settings, what, f"net{i}-round{rnd}")
            if result.WhichOneof("outcome") == "error":
                raise ValidationError(f"timing network {i} (round {rnd + 1}) failed on the agent: "
                                      f"{result.error.code}: {result.error.message}")
            known.add(sha)
            medians[i, rnd] = result.stats.median_ms
            if "clock" in result.options:
                clocks.add(result.options["clock"])
            done += 1
            progress("time", done, total)
    return medians, clocks


def _check_clock(store: LutStore, setting: StoredSetting, clocks: set[str]) -> list[str]:
    """A note when the LUT rows were timed with another clock than the whole networks (or record none)."""
    row_clocks: set[str] = set()
    unrecorded = 0
    for extra in store.rows(setting)["extra"]:
        try:
            clock = (json.loads(extra or "{}").get("options") or {}).get("clock")
        except (ValueError, AttributeError):
            clock = None
        if clock is None:
            unrecorded += 1
        else:
            row_clocks.add(clock)
    if not clocks:
        return []
    used = ", ".join(sorted(clocks))
    if row_clocks and row_clocks != clocks:
        return [(f"LUT rows timed with clock {', '.join(sorted(row_clocks))}, whole networks with {used}: "
                "not comparable on a shared host; re-profile or pass the same options")]
    if unrecorded and not row_clocks:
        return [(f"the LUT rows record no timing clock (an older agent or profiler: likely wall); whole networks "
                f"used {used}")]
    return []


def repeat_noise(first_ms: np.ndarray, second_ms: np.ndarray) -> dict[str, float]:
    """Median and p90 (percent) of the relative disagreement between two measurements of each network."""
    ok = np.isfinite(first_ms) & np.isfinite(second_ms)
    if not ok.any():
        return {"repeat_median": float("nan"), "repeat_p90": float("nan")}
    rel = np.abs(first_ms[ok] - second_ms[ok]) / np.minimum(first_ms[ok], second_ms[ok])
    return {"repeat_median": float(100 * np.median(rel)), "repeat_p90": float(100 * np.percentile(rel, 90))}


# -- re-rendering ---------------------------------------------------------------------------------


def report_from_store(store: LutStore, device: str | int | StoredSetting, *, calibrate: bool = False,
                      space: str | None = None, seed: int = 0) -> ValidationReport:
    """Rebuild the report of the device's stored validation runs (all of them) without an agent.

    With ``calibrate``, refit the calibration on every stored sample and save it.

    Raises:
        ValidationError: the device has no stored validation run.
    """
    setting = store.setting(device)
    runs = store.validation_runs(setting)
    if runs.empty:
        raise ValidationError(f"device {setting.name!r} has no stored validation run; run lutnas validate with --agent")
    frame = store.validation_samples([int(i) for i in runs["id"]])
    meta = runs.iloc[-1]["meta"]
    space_obj, compiled = infer_space(store, setting, space or meta.get("space"))
    subnets = [space_obj.validate(a) for a in frame["arch"]]
    batch = subnets if isinstance(space_obj, ResNetSpace) else SubnetBatch.from_subnets(subnets)
    predicted = compiled.predict_batch(batch, calibrated=False)
    measured = frame["measured_ms"].to_numpy()
    first = np.array([e.get("first_ms", np.nan) for e in frame["extra"]], dtype=float)
    samples = pd.DataFrame({"arch": list(frame["arch"]), "predicted_ms": predicted, "measured_ms": measured,
                            "repeat_ms": frame["repeat_ms"].to_numpy()})
    calibration = Calibration.from_store(store, setting, space_obj.name)
    calibrated = None
    if calibrate:
        features = subnet_features(compiled, batch)
        calibration = fit_calibration(features, measured, space=space_obj.name, random_state=seed)
        store.save_calibration(setting.id, calibration)
    if calibration is not None:
        calibrated = dict(calibration.cv_metrics)
        samples["calibrated_ms"] = calibration.predict(subnet_features(compiled, batch))
    noise = repeat_noise(first, frame["repeat_ms"].to_numpy())
    return ValidationReport(device=setting.name, space=space_obj.name, run_id=int(runs["id"].iloc[-1]),
                            samples=samples, raw=fidelity_metrics(predicted, measured), calibrated=calibrated,
                            noise=noise, calibration=calibration)
