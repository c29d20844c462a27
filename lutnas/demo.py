"""The whole pipeline on this machine, with embedded defaults: ``lutnas demo``.

1. start a local agent (127.0.0.1, a free port, a fresh token) as a subprocess;
2. profile OFA-MobileNetV3 w1.0 at 224 px with ONNX Runtime, 1 thread, into ./lutnas-demo.db
   (resumes: a rerun reuses the LUT);
3. validate the LUT against whole networks and fit a calibration;
4. train the accuracy predictor on the bundled DyNAS-T accuracies (w1.0, r=224);
5. search at three budgets spread over the measured latency range;
6. time each found subnet end to end on the agent and print one table;
7. write the store's report page (``lutnas report``) beside the store, when plotly is installed.

The agent is stopped on exit, on error and on Ctrl-C.

Other families (``--space ofa-proxyless-w1.3``, ``ofa-resnet50``): the bundled DyNAS-T accuracies are
MobileNetV3's, and no accuracies of those ImageNet supernets ship with lutnas. A predictor trained on one
space cannot rank another's subnets, so the demo runs the whole pipeline on the family's digits-scale space
instead (``ofa-proxyless-w0.25``, ``ofa-resnet50-w0.25``: the same stages and choices at a quarter of the
widths, 10 classes, 16 px): it profiles that space, trains the family's digits supernet briefly here
(``lutnas supernet train --family``), collects its subnets' accuracies, trains the predictor on them and
searches and times on that LUT. :func:`demo_plan` names what runs, and the demo's first lines say so.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any, Callable

import numpy as np

__all__ = ["DemoPlan", "DemoSettings", "DemoRow", "DemoResult", "bundled_accuracy_files", "demo_plan", "run_demo"]

log = logging.getLogger(__name__)

DEVICE = "demo-local"  # the device name the demo files its LUTs under


@dataclass(frozen=True)
class DemoSettings:
    """The demo's embedded defaults."""

    db: Path = Path("lutnas-demo.db")
    space: str = "ofa-mbv3-w1.0"  # the width DyNAS-T measured
    resolution: int = 224  # the resolution DyNAS-T measured
    runtime: str = "onnxruntime"
    threads: int = 1
    precision: str = "fp32"  # fp32, fp16 or int8 (profiler.quantize): what is profiled, validated and searched
    # Lighter than the profiler's defaults so the demo fits in minutes on a busy laptop; a real
    # profile keeps DEFAULT_PLAN (CI of the median within 1%).
    block_plan: tuple[tuple[str, float], ...] = (
        ("warmup_count", 5), ("warmup_s", 0.05), ("min_reps", 15), ("min_s", 0.1), ("max_reps", 300),
        ("max_s", 0.8), ("target_rel_ci", 0.02),
    )
    # This machine's speed swings by up to ~30% over seconds (other tenants), which a drift sentinel
    # would chase forever; interleaved rounds with the lower median absorb such swings instead.
    block_rounds: int = 2
    sentinel_every: int = 0
    validate_samples: int = 12
    validate_rounds: int = 4
    validate_plan: tuple[tuple[str, float], ...] = (
        ("warmup_count", 3), ("warmup_s", 0.05), ("min_reps", 10), ("min_s", 0.1), ("max_reps", 100),
        ("max_s", 0.5), ("target_rel_ci", 0.02),
    )
    budget_quantiles: tuple[float, ...] = (0.2, 0.45, 0.7)  # where in the LUT's range the budgets sit
    generations: int = 500  # evolutionary search generations (OFA's default)
    final_rounds: int = 4  # interleaved rounds when timing the found subnets
    seed: int = 0
    cache_dir: Path | None = None  # host artifact cache (default ~/.cache/lutnas/artifacts)
    report: Path | None = None  # the report page (default: the store's path with .html)
    # Other families' digits-scale run (see the module docstring): the supernet's epochs per phase (full network
    # first, then each shrinking phase) and the subnets whose accuracies train and test the predictor.
    supernet_epochs: tuple[int, ...] = (3, 1, 1, 1, 1, 1, 1)
    collect_samples: int = 60
    collect_calib_images: int = 128
    heldout_fraction: float = 0.25  # of the collected subnets, kept out of the predictor's training to score it


#: The digits-scale space the demo runs for each family without bundled accuracies.
DIGITS_SPACES = {"ofa-proxyless": "ofa-proxyless-w0.25", "ofa-resnet50": "ofa-resnet50-w0.25"}
_DIGITS_RESOLUTION = 16


@dataclass(frozen=True)
class DemoPlan:
    """What the demo runs for the space it was asked for."""

    requested: str  # the --space given
    space: str  # the space profiled, searched and timed
    resolution: int
    accuracy_source: str  # "dynast" (the bundled files) or "digits-supernet" (trained and collected here)
    notes: tuple[str, ...] = ()  # what the demo says before it starts

    @property
    def family(self) -> str:
        from space import get_space

        return get_space(self.space).family


def demo_plan(space: str, resolution: int = 224) -> DemoPlan:
    """The space, resolution and accuracy source the demo uses for ``space``.

    Raises:
        ValueError: an unknown space.
    """
    from space import get_space

    family = get_space(space).family
    if family == "ofa-mbv3":
        return DemoPlan(space, space, resolution, "dynast")
    digits = DIGITS_SPACES.get(family)
    if digits is None:
        raise ValueError(f"space must be of the families ofa-mbv3, {', '.join(DIGITS_SPACES)}, got {space!r} ({family})")
    note = (f"{space}: the bundled DyNAS-T accuracies are MobileNetV3's and no accuracies of this ImageNet supernet "
            f"ship with lutnas, so the demo runs on its digits-scale space {digits} ({_DIGITS_RESOLUTION} px): it "
            f"profiles that space, trains the {family} digits supernet here, collects its subnets' accuracies, "
            "trains the predictor on them, then searches and times on that LUT")
    return DemoPlan(space, digits, _DIGITS_RESOLUTION, "digits-supernet", (note,))


@dataclass
class DemoRow:
    budget_ms: float
    arch: dict[str, Any]
    predicted_accuracy: float
    lut_ms: float  # calibrated LUT prediction
    raw_lut_ms: float  # plain LUT sum
    measured_ms: float

    def to_dict(self) -> dict[str, Any]:
        return {"budget_ms": round(self.budget_ms, 3), "arch": self.arch,
                "predicted_accuracy": round(self.predicted_accuracy, 3), "lut_ms": round(self.lut_ms, 3),
                "raw_lut_ms": round(self.raw_lut_ms, 3), "measured_ms": round(self.measured_ms, 3),
                "within_budget": self.measured_ms <= self.budget_ms}


@dataclass
class DemoResult:
    rows: list[DemoRow]
    profile: dict[str, Any]
    validation: dict[str, Any]
    predictor: dict[str, Any]
    stage_s: dict[str, float] = field(default_factory=dict)
    report: str | None = None  # the report page written, or None without plotly
    plan: DemoPlan | None = None  # the space it ran and where its accuracies came from

    def describe(self) -> list[str]:
        """What ran instead of the space asked for (if anything), the LUT's fidelity and the predictor's rank
        correlation, one line each."""
        val, pred = self.validation, self.predictor
        source = ("held-out DyNAS-T subnets" if pred.get("source", "dynast") == "dynast"
                  else "held-out subnets of the digits supernet")
        return [*(self.plan.notes if self.plan else ()),
                f"LUT fidelity on {val['samples']} subnets: raw within ±10% {val['raw']['within_10pct']:.0f}%, "
                f"calibrated (held-out) {val['calibrated']['within_10pct']:.0f}% (repeat noise median "
                f"{val['noise']['repeat_median']:.1f}%)",
                f"predictor: Kendall tau {pred['kendall']:.3f} on {pred['n']} {source} "
                f"(trained in {pred['train_s']:.1f} s)"]

    def to_dict(self) -> dict[str, Any]:
        plan = None if self.plan is None else {"requested": self.plan.requested, "space": self.plan.space,
                                               "resolution": self.plan.resolution,
                                               "accuracy_source": self.plan.accuracy_source,
                                               "notes": list(self.plan.notes)}
        return {"rows": [r.to_dict() for r in self.rows], "profile": self.profile, "validation": self.validation,
                "predictor": self.predictor, "stage_s": {k: round(v, 2) for k, v in self.stage_s.items()},
                "report": self.report, "plan": plan}


def bundled_accuracy_files() -> tuple[list[Path], list[Path]]:
    """(train, test) DyNAS-T CSVs shipped with lutnas: train on ``evo*``, evaluate on ``linas*``."""
    folder = Path(str(resources.files("lutnas") / "data"))
    files = sorted(folder.glob("mbnv3w10_*.csv"))
    return [f for f in files if "_evo" in f.name], [f for f in files if "_linas" in f.name]


Stage = Callable[[str], Any]
ProgressFn = Callable[[str, int, "int | None"], None]


def run_demo(settings: DemoSettings, *, stage: Stage | None = None, progress: ProgressFn | None = None) -> DemoResult:
    """Run every step with the public API (:func:`lutnas.profile`, :func:`lutnas.validate`, the search).

    Args:
        settings: The demo's settings.
        stage: ``stage(name)``, a context manager around each step (the CLI shows its title and time).
        progress: ``progress(task, done, total)`` of the profile and the validation.
    """
    from agent.testing import start_agent_process
    from lut import CompiledLut, LutStore

    plan = demo_plan(settings.space, settings.resolution)
    settings = replace(settings, space=plan.space, resolution=plan.resolution)
    timings: dict[str, float] = {}
    step = _stepper(timings, stage)
    device = f"{DEVICE}:{settings.precision}"  # the store may hold the demo device at several precisions
    with start_agent_process(token="") as agent:
        with step("profile"):
            report = _profile(settings, agent, progress)
        with step("validate"):
            val = _validate(settings, device, agent, report.devices[0].timed, progress)
        with step("predictor"):
            if plan.accuracy_source == "dynast":
                predictor, pred_info = _train_predictor(settings)
            else:
                predictor, pred_info = _train_digits_predictor(settings, plan.family)
        with LutStore(settings.db) as store:
            compiled = CompiledLut.from_store(store, device, settings.space)
            with step("search"):
                found = _search(compiled, predictor, settings)
            with step("measure"):
                measured = _time_found(agent.address, agent.token, store.setting(device).setting,
                                       [f["arch"] for f in found], settings)
            with step("report"):
                page = _write_report(store, settings, [f["budget_ms"] for f in found])
    rows = [DemoRow(budget_ms=f["budget_ms"], arch=f["arch"], predicted_accuracy=f["predicted_accuracy"],
                    lut_ms=f["lut_ms"], raw_lut_ms=f["raw_lut_ms"], measured_ms=m) for f, m in zip(found, measured)]
    validation = {k: val[k] for k in ("raw", "calibrated", "noise", "samples")}
    return DemoResult(rows=rows, profile=report.to_dict(), validation=validation, predictor=pred_info,
                      stage_s=timings, report=page, plan=plan)


def _stepper(timings: dict[str, float], stage: Stage | None) -> Callable[[str], Any]:
    """``step(name)``: a context manager that enters ``stage(name)`` and records the seconds as ``timings[name]``."""

    @contextlib.contextmanager
    def step(name: str) -> Iterator[None]:
        start = time.monotonic()
        try:
            with stage(name) if stage is not None else contextlib.nullcontext():
                yield
        finally:
            timings[name] = time.monotonic() - start

    return step


def _profile(settings: DemoSettings, agent: Any, progress: ProgressFn | None) -> Any:
    """Profile every block into the demo's store (a rerun resumes); the fleet's report."""
    from lutnas import ProfileSettings, profile

    # The agent shares this machine: export every block first, so no export competes with timing.
    _warm_artifacts(settings)
    prof = ProfileSettings(space=settings.space, resolutions=(settings.resolution,), runtime=settings.runtime,
                           threads=settings.threads, precision=settings.precision, plan=dict(settings.block_plan),
                           rounds=settings.block_rounds, sentinel_every=settings.sentinel_every,
                           cache_dir=str(settings.cache_dir) if settings.cache_dir else None)
    run = profile(settings.db, [f"{DEVICE}={agent.address}"], prof, token=agent.token, progress=progress)
    dev = run.report.devices[0]
    if dev.aborted or dev.failed:
        raise RuntimeError(f"profile incomplete: {dev.aborted or f'{len(dev.failed)} blocks failed'}")
    return run.report


def _validate(settings: DemoSettings, device: str, agent: Any, timed: int, progress: ProgressFn | None) -> dict:
    """Validate and calibrate the LUT on the agent, or (nothing re-measured and a calibration stored) re-read
    the stored validation; the report as JSON."""
    from lut import LutStore
    from lutnas import ValidationSettings, validate

    with LutStore(settings.db) as store:
        calibrated = not store.calibrations(device).empty
    if timed == 0 and calibrated:  # the stored validation and calibration still hold
        return validate(settings.db, device=device, settings=ValidationSettings(space=settings.space)).to_dict()
    wanted = ValidationSettings(samples=settings.validate_samples, rounds=settings.validate_rounds, space=settings.space,
                                plan=dict(settings.validate_plan), calibrate=True, seed=settings.seed)
    return validate(settings.db, agent=f"{DEVICE}={agent.address}", device=device, settings=wanted,
                    token=agent.token, progress=progress).to_dict()


def _write_report(store: Any, settings: DemoSettings, budgets: list[float]) -> str | None:
    """The store's report page with the demo's predictor and budgets; None when plotly is not installed."""
    from report import ReportSettings, build_report

    path = settings.report or settings.db.with_suffix(".html")
    wanted = ReportSettings(predictor=_predictor_path(settings), budgets_ms=tuple(budgets),
                            generations=settings.generations, seed=settings.seed)
    try:
        return str(build_report(store, path, wanted))
    except ModuleNotFoundError as err:  # the report extra is optional
        log.warning("no report page: %s", err)
        return None


def _warm_artifacts(settings: DemoSettings) -> None:
    from profiler.artifacts import ArtifactCache
    from profiler.fleet import FORMAT_FOR_RUNTIME, default_cache_dir, plan_blocks, sentinel_block

    cache = ArtifactCache(str(settings.cache_dir) if settings.cache_dir else default_cache_dir(),
                          precision=settings.precision)
    fmt = FORMAT_FOR_RUNTIME[settings.runtime]
    for block in [sentinel_block(settings.space, settings.resolution), *plan_blocks(settings.space, [settings.resolution])]:
        cache.get_or_build(block, fmt)


def _predictor_path(settings: DemoSettings) -> Path:
    return settings.db.with_name(settings.db.stem + "-predictor.pt")


def _train_predictor(settings: DemoSettings) -> tuple[Any, dict[str, Any]]:
    """Train lutnas's predictor on the bundled evo* files (reused on a rerun) and score it on linas*."""
    from search import LutnasPredictor, load_accuracy_data, prediction_metrics

    train_files, test_files = bundled_accuracy_files()
    train = load_accuracy_data(train_files)
    path = _predictor_path(settings)
    start = time.monotonic()
    predictor = None
    if path.exists():
        try:
            predictor = LutnasPredictor.load(path, space=settings.space)
        except (ValueError, OSError) as err:  # an old or foreign file: train a new one
            log.info("not reusing %s: %s", path, err)
        else:
            if predictor.data_fingerprint_ != train.fingerprint:
                predictor = None
    reused = predictor is not None
    if predictor is None:
        predictor = LutnasPredictor(space=settings.space, random_state=settings.seed).fit_data(train)
        predictor.save(path)
    train_s = time.monotonic() - start
    test = load_accuracy_data(test_files)
    metrics = prediction_metrics(predictor.predict_batch(test.to_batch()), test.accuracy_pct)
    return predictor, {"train_s": round(train_s, 2), "reused": reused, "path": str(path), "n_train": len(train),
                       **{k: metrics[k] for k in ("kendall", "spearman", "rmse", "n")}}


def _train_digits_predictor(settings: DemoSettings, family: str) -> tuple[Any, dict[str, Any]]:
    """Train the family's digits supernet (reused when its folder holds a finished run), collect its subnets'
    accuracies at the demo's resolution (reused when the CSV exists), fit the predictor on most of them and
    score it on the rest."""
    from search import LutnasPredictor, load_accuracy_data, prediction_metrics
    from supernet.runs import collect, phase_names, train

    run = settings.db.with_name(settings.db.stem + f"-{family}-supernet")
    csv_path = settings.db.with_name(settings.db.stem + f"-{family}-accuracies.csv")
    start = time.monotonic()
    reused = (run / "supernet.pt").is_file() and csv_path.is_file()
    if not (run / "supernet.pt").is_file():
        epochs = dict(zip(phase_names(family), settings.supernet_epochs))
        train(run, family=family, epochs=epochs, resolutions=(settings.resolution,), seed=settings.seed,
              validate=False, resume=(run / "last.pt").is_file())
    if not csv_path.is_file():
        collect(run, csv_path, samples=settings.collect_samples, resolutions=(settings.resolution,),
                calib_images=settings.collect_calib_images, seed=settings.seed)
    data = load_accuracy_data(csv_path)
    order = np.random.default_rng(settings.seed).permutation(len(data))
    n_test = max(2, int(round(settings.heldout_fraction * len(data))))
    train_set, test = data.subset(np.sort(order[n_test:])), data.subset(np.sort(order[:n_test]))
    predictor = LutnasPredictor(space=settings.space, random_state=settings.seed).fit_data(train_set)
    path = _predictor_path(settings)
    predictor.save(path)
    metrics = prediction_metrics(predictor.predict_batch(test.to_batch()), test.accuracy_pct)
    return predictor, {"train_s": round(time.monotonic() - start, 2), "reused": reused, "path": str(path),
                       "n_train": len(train_set), "source": "digits-supernet", "accuracies": str(csv_path),
                       **{k: metrics[k] for k in ("kendall", "spearman", "rmse", "n")}}


def _search(compiled: Any, predictor: Any, settings: DemoSettings) -> list[dict[str, Any]]:
    """Evolutionary searches (OFA's defaults) at budgets spread over the calibrated LUT's range."""
    from search import EvolutionSettings, PredictionCache, evolutionary_search, latency_constraint
    from search.genomes import as_batch, genome_for

    lo, hi = compiled.value_range([settings.resolution])
    budgets = [lo + q * (hi - lo) for q in settings.budget_quantiles]
    # The searches share the networks they score.
    cache = PredictionCache(predictor, genome_for(compiled.space))
    out = []
    for budget in budgets:
        result = evolutionary_search(
            compiled.space, [latency_constraint(DEVICE, compiled, budget)], predictor,
            settings=EvolutionSettings(generations=settings.generations, resolutions=(settings.resolution,)),
            random_state=settings.seed, prediction_cache=cache,
        )
        sub = compiled.space.validate(result.arch)
        batch = as_batch([sub.to_arch()], compiled.space)
        out.append({"budget_ms": budget, "arch": sub.to_arch(), "predicted_accuracy": result.predicted_accuracy,
                    "lut_ms": float(compiled.predict_batch(batch)[0]),
                    "raw_lut_ms": float(compiled.predict_batch(batch, calibrated=False)[0]),
                    "search_seconds": result.search_seconds})
    return out


def _time_found(address: str, token: str | None, setting: Any, archs: list[dict[str, Any]],
                settings: DemoSettings) -> list[float]:
    """Time each found subnet end to end like validation does: interleaved rounds, the lowest round median."""
    from profiler.client import AgentClient
    from profiler.validate import ValidationSettings, time_subnets

    timing = ValidationSettings(rounds=settings.final_rounds, plan=dict(settings.validate_plan), export_workers=0)
    with AgentClient(address, token=token) as client:
        medians, _ = time_subnets(client, setting, settings.space, archs, timing, np.random.default_rng(settings.seed))
    return [float(m) for m in medians.min(axis=1)]
