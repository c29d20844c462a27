"""Accuracy predictors, arch encodings, the constrained evolutionary search and budget sweeps.

Every family's gene layout and encodings are here: :class:`Genome` and :class:`SubnetBatch` (the
kernel/expand-slot spaces, defined in ``space``), :class:`ResNetGenome` and :class:`ResNetBatch`
(ResNet50's), picked for a space by :func:`genome_for` and :func:`as_batch`.

Names load on first use (``from search import sweep`` imports only what a sweep needs), so a
command that never predicts accuracy does not pay for torch or scipy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# public name -> the module that defines it
_NAMES: dict[str, str] = {
    "AccuracyData": "search.data",
    "AccuracyModel": "search.evolution",
    "AdditiveTable": "search.cost",
    "AnyPredictor": "search.loading",
    "as_batch": "search.genomes",
    "block_macs": "search.cost",
    "block_params": "search.cost",
    "BudgetOutOfRangeError": "search.errors",
    "build_ofa_mlp": "search.ofa_predictor",
    "check_constraints": "search.evolution",
    "compare": "search.regret",
    "Constraint": "search.evolution",
    "CostModel": "search.evolution",
    "cross_device_regret": "search.regret",
    "CrossPrice": "search.regret",
    "DataFormatError": "search.data",
    "DEFAULT_QUANTILES": "search.regret",
    "DevicePick": "search.regret",
    "encode": "search.encoding",
    "Encoding": "search.encoding",
    "ENCODINGS": "search.encoding",
    "EvalReport": "search.fitting",
    "evaluate_predictor": "search.fitting",
    "evolutionary_search": "search.evolution",
    "EvolutionSettings": "search.evolution",
    "extrapolation": "search.fitting",
    "expand_indices": "search.genomes",
    "FORMAT_VERSION": "search.predictor",
    "Genome": "space.batch",
    "genome_for": "search.genomes",
    "get_encoding": "search.encoding",
    "independent_sweep": "search.pareto",
    "InfeasibleSearchError": "search.errors",
    "infer_space": "search.data",
    "is_ofa_state_dict": "search.ofa_predictor",
    "kendall_tau": "search.metrics",
    "latency_constraint": "search.evolution",
    "load_accuracy_data": "search.data",
    "load_ofa_predictor": "search.ofa_predictor",
    "load_predictor": "search.loading",
    "LutnasEncoding": "search.encoding",
    "LutnasPredictor": "search.predictor",
    "macs_constraint": "search.evolution",
    "macs_table": "search.cost",
    "NotFittedError": "search.errors",
    "OFA_R_BINS": "search.encoding",
    "OFA_R_MIN": "search.encoding",
    "OFAAccuracyPredictor": "search.ofa_predictor",
    "OFAEncoding": "search.encoding",
    "params_constraint": "search.evolution",
    "params_table": "search.cost",
    "pareto_front": "search.pareto",
    "pareto_sweep": "search.pareto",
    "plot_front": "search.budgets",
    "prediction_metrics": "search.metrics",
    "PredictionCache": "search.prediction_cache",
    "predictor_and_label": "search.loading",
    "PredictorFormatError": "search.errors",
    "QuantileRegret": "search.regret",
    "RegretReport": "search.regret",
    "ResNetBatch": "search.genomes",
    "ResNetGenome": "search.genomes",
    "ResNetLutnasEncoding": "search.encoding",
    "ResNetOFAEncoding": "search.encoding",
    "rmse": "search.metrics",
    "search": "search.budgets",
    "search_resolutions": "search.evolution",
    "SearchError": "search.errors",
    "SearchFailedError": "search.errors",
    "SearchReport": "search.budgets",
    "SearchResult": "search.evolution",
    "SpaceMismatchError": "search.errors",
    "spearman_rho": "search.metrics",
    "SubnetBatch": "space.batch",
    "sweep": "search.budgets",
    "train_predictor": "search.fitting",
    "TrainReport": "search.fitting",
    "with_limit": "search.evolution",
}

__all__ = sorted(_NAMES)

if TYPE_CHECKING:
    from search.budgets import SearchReport, plot_front, search, sweep
    from search.cost import AdditiveTable, block_macs, block_params, macs_table, params_table
    from search.data import AccuracyData, DataFormatError, infer_space, load_accuracy_data
    from search.encoding import (
        ENCODINGS,
        OFA_R_BINS,
        OFA_R_MIN,
        Encoding,
        LutnasEncoding,
        OFAEncoding,
        ResNetLutnasEncoding,
        ResNetOFAEncoding,
        encode,
        get_encoding,
    )
    from search.errors import (
        BudgetOutOfRangeError,
        InfeasibleSearchError,
        SearchFailedError,
        NotFittedError,
        PredictorFormatError,
        SearchError,
        SpaceMismatchError,
    )
    from search.evolution import (
        AccuracyModel,
        Constraint,
        CostModel,
        EvolutionSettings,
        SearchResult,
        check_constraints,
        evolutionary_search,
        latency_constraint,
        macs_constraint,
        params_constraint,
        search_resolutions,
        with_limit,
    )
    from search.genomes import ResNetBatch, ResNetGenome, as_batch, expand_indices, genome_for
    from search.fitting import EvalReport, TrainReport, evaluate_predictor, extrapolation, train_predictor
    from search.loading import AnyPredictor, load_predictor, predictor_and_label
    from search.metrics import kendall_tau, prediction_metrics, rmse, spearman_rho
    from search.ofa_predictor import OFAAccuracyPredictor, build_ofa_mlp, is_ofa_state_dict, load_ofa_predictor
    from search.pareto import independent_sweep, pareto_front, pareto_sweep
    from search.prediction_cache import PredictionCache
    from search.predictor import FORMAT_VERSION, LutnasPredictor
    from space.batch import Genome, SubnetBatch
    from search.regret import (
        CrossPrice,
        DEFAULT_QUANTILES,
        DevicePick,
        QuantileRegret,
        RegretReport,
        compare,
        cross_device_regret,
    )


def __getattr__(name: str) -> Any:
    module = _NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'search' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_NAMES))
