"""Accuracy predictors, arch encodings, the constrained evolutionary search and budget sweeps."""

from search.cost import (
    AdditiveTable,
    block_macs,
    block_params,
    macs_table,
    params_table,
)
from search.data import AccuracyData, DataFormatError, infer_space, load_accuracy_data
from search.encoding import (
    ENCODINGS,
    Encoding,
    LutnasEncoding,
    OFAEncoding,
    encode,
    get_encoding,
)
from search.errors import (
    BudgetOutOfRangeError,
    InfeasibleSearchError,
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
from search.loading import AnyPredictor, load_predictor
from search.metrics import kendall_tau, prediction_metrics, rmse, spearman_rho
from search.ofa_predictor import (
    OFAAccuracyPredictor,
    build_ofa_mlp,
    is_ofa_state_dict,
    load_ofa_predictor,
)
from search.pareto import independent_sweep, pareto_front, pareto_sweep
from search.prediction_cache import PredictionCache
from search.predictor import FORMAT_VERSION, LutnasPredictor
from search.regret import (
    DEFAULT_QUANTILES,
    CrossPrice,
    DevicePick,
    QuantileRegret,
    RegretReport,
    cross_device_regret,
)

__all__ = [
    "DEFAULT_QUANTILES",
    "ENCODINGS",
    "FORMAT_VERSION",
    "AccuracyData",
    "AccuracyModel",
    "AdditiveTable",
    "AnyPredictor",
    "BudgetOutOfRangeError",
    "Constraint",
    "CostModel",
    "CrossPrice",
    "DataFormatError",
    "DevicePick",
    "Encoding",
    "EvolutionSettings",
    "InfeasibleSearchError",
    "LutnasEncoding",
    "LutnasPredictor",
    "PredictionCache",
    "NotFittedError",
    "OFAAccuracyPredictor",
    "OFAEncoding",
    "PredictorFormatError",
    "QuantileRegret",
    "RegretReport",
    "SearchError",
    "SearchResult",
    "SpaceMismatchError",
    "block_macs",
    "block_params",
    "build_ofa_mlp",
    "check_constraints",
    "cross_device_regret",
    "encode",
    "evolutionary_search",
    "get_encoding",
    "infer_space",
    "is_ofa_state_dict",
    "kendall_tau",
    "latency_constraint",
    "load_accuracy_data",
    "load_ofa_predictor",
    "load_predictor",
    "macs_constraint",
    "macs_table",
    "params_constraint",
    "params_table",
    "pareto_front",
    "independent_sweep",
    "pareto_sweep",
    "prediction_metrics",
    "rmse",
    "search_resolutions",
    "spearman_rho",
    "with_limit",
]
