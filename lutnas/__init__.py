"""lutnas: block-latency lookup tables measured on real devices, and hardware-aware search of Once-for-All subnets.

The commands' work as a Python API: each name is one call returning a report whose ``to_dict()`` is the
command's ``--json`` (see docs/api.md). Names load on first use, so ``import lutnas`` (and the command line)
loads none of their dependencies.
"""

import importlib
from typing import Any

# Public name -> (module, name there).
_EXPORTS = {
    "report": ("report", "build_report"),
    "build_report": ("report", "build_report"),
    "train_supernet": ("supernet.runs", "train"),
    "collect_accuracies": ("supernet.runs", "collect"),
    "extract_subnet": ("lutnas._supernet", "extract_subnet"),
    "evaluate_subnet": ("supernet.runs", "evaluate"),
    # Measuring on agents: profile -> ProfileRun, validate -> ValidationRun, time_model -> TimingReport,
    # devices -> DevicesReport (lutnas profile, validate, time, devices).
    "profile": ("profiler.profile_run", "profile_lut"),
    "ProfileSettings": ("profiler.fleet", "ProfileSettings"),
    "validate": ("profiler.validate_run", "validate_lut"),
    "ValidationSettings": ("profiler.validate", "ValidationSettings"),
    "time_model": ("profiler.agents", "time_model_file"),
    "devices": ("profiler.agents", "device_facts"),
    # Searching and the stores: search/sweep -> SearchReport, compare -> CompareReport, train_predictor ->
    # TrainReport, evaluate_predictor -> EvalReport, predict_latency -> LatencyReport, the lut ... commands.
    "search": ("search.budgets", "search"),
    "sweep": ("search.budgets", "sweep"),
    "plot_front": ("search.budgets", "plot_front"),
    "compare": ("search.regret", "compare"),
    "train_predictor": ("search.fitting", "train_predictor"),
    "evaluate_predictor": ("search.fitting", "evaluate_predictor"),
    "EvolutionSettings": ("search.evolution", "EvolutionSettings"),
    "LutStore": ("lut.store", "LutStore"),
    "predict_latency": ("lut.latency", "predict_latency"),
    "list_luts": ("lut.manage", "list_luts"),
    "import_luts": ("lut.manage", "import_luts"),
    "export_lut": ("lut.manage", "export_lut"),
    "remove_lut": ("lut.manage", "remove_lut"),
    "copy_luts": ("lut.manage", "copy_luts"),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'lutnas' has no attribute {name!r}")
    module, attr = _EXPORTS[name]
    return getattr(importlib.import_module(module), attr)


def __dir__() -> list[str]:
    return sorted(__all__)
