"""Per-device latency lookup tables: the store (SQLite or PostgreSQL), import/export, fast subnet prediction,
calibration against end-to-end runs, device comparison, and few-shot transfer from other settings' LUTs.

Names load on first use: ``from lut import LutStore`` does not load pandas' comparison or scikit-learn's
calibration code.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# public name -> the module that defines it
_NAMES: dict[str, str] = {
    "AmbiguousDeviceError": "lut.errors",
    "ASSUMED_ZERO_NOTE": "lut.importers",
    "block_features": "lut.calibration",
    "Calibration": "lut.calibration",
    "CalibrationError": "lut.errors",
    "compare_luts": "lut.compare",
    "CompareReport": "lut.compare",
    "Comparison": "lut.compare",
    "CompiledLut": "lut.predict",
    "copy_luts": "lut.manage",
    "copy_settings": "lut.store",
    "CopyConflictError": "lut.errors",
    "CopyReport": "lut.manage",
    "detect_format": "lut.importers",
    "DeviceSetting": "lut.schema",
    "export_csv": "lut.exporters",
    "EXPORT_FORMATS": "lut.exporters",
    "export_lut": "lut.manage",
    "export_ofa_yaml": "lut.exporters",
    "export_parquet": "lut.exporters",
    "export_table": "lut.exporters",
    "ExportReport": "lut.manage",
    "FEATURES": "lut.calibration",
    "features_for": "lut.calibration",
    "fidelity_metrics": "lut.calibration",
    "fit_calibration": "lut.calibration",
    "FIXED_KINDS": "lut.predict",
    "FORMATS": "lut.importers",
    "import_files": "lut.importers",
    "import_luts": "lut.manage",
    "ImportFormatError": "lut.errors",
    "ImportReport": "lut.manage",
    "ImportResult": "lut.importers",
    "LatencyReport": "lut.latency",
    "list_luts": "lut.manage",
    "ListReport": "lut.manage",
    "LutError": "lut.errors",
    "LutStore": "lut.store",
    "MAX_YAML_BYTES": "lut._yaml",
    "MissingBlocksError": "lut.errors",
    "MODELS": "lut.calibration",
    "models_for": "lut.calibration",
    "open_store": "lut.manage",
    "PairComparison": "lut.compare",
    "plan_few_shot": "lut.transfer",
    "plot_comparison": "lut.compare",
    "predict_latency": "lut.latency",
    "PREDICTED_SOURCE": "lut.transfer",
    "PROVENANCE_COLUMNS": "lut.schema",
    "qualified_key": "lut.keys",
    "read_csv": "lut.importers",
    "read_metadata": "lut._metadata",
    "read_nsganetv2_yaml": "lut.importers",
    "read_ofa_yaml": "lut.importers",
    "read_parquet": "lut.importers",
    "read_rows": "lut.importers",
    "remove_lut": "lut.manage",
    "RemoveReport": "lut.manage",
    "RESOLUTION_QUALIFIER": "lut.keys",
    "ROW_COLUMNS": "lut.schema",
    "SCHEMA_VERSION": "lut.schema",
    "SchemaVersionError": "lut.errors",
    "SETTING_FILE": "lut._metadata",
    "split_row_key": "lut.keys",
    "STAT_COLUMNS": "lut.schema",
    "StoredSetting": "lut.store",
    "StoreError": "lut.errors",
    "StoreUnavailable": "lut.errors",
    "subnet_features": "lut.calibration",
    "transfer_table": "lut.transfer",
    "TransferError": "lut.transfer",
    "TransferModel": "lut.transfer",
    "TransferResult": "lut.transfer",
    "UnknownDeviceError": "lut.errors",
    "WorkFailedError": "lut.errors",
}

# ``predict`` is also the name of its module: bound here, since importing the submodule would otherwise shadow
# the function with the module object.
from lut.predict import predict  # noqa: E402

__all__ = sorted([*_NAMES, "predict"])

if TYPE_CHECKING:
    from lut._metadata import SETTING_FILE, read_metadata
    from lut._yaml import MAX_YAML_BYTES
    from lut.calibration import (
        Calibration,
        FEATURES,
        MODELS,
        block_features,
        features_for,
        fidelity_metrics,
        fit_calibration,
        models_for,
        subnet_features,
    )
    from lut.compare import CompareReport, Comparison, PairComparison, compare_luts, plot_comparison
    from lut.errors import (
        AmbiguousDeviceError,
        CalibrationError,
        CopyConflictError,
        ImportFormatError,
        LutError,
        MissingBlocksError,
        SchemaVersionError,
        StoreError,
        StoreUnavailable,
        UnknownDeviceError,
        WorkFailedError,
    )
    from lut.exporters import EXPORT_FORMATS, export_csv, export_ofa_yaml, export_parquet, export_table
    from lut.importers import (
        ASSUMED_ZERO_NOTE,
        FORMATS,
        ImportResult,
        detect_format,
        import_files,
        read_csv,
        read_nsganetv2_yaml,
        read_ofa_yaml,
        read_parquet,
        read_rows,
    )
    from lut.keys import RESOLUTION_QUALIFIER, qualified_key, split_row_key
    from lut.latency import LatencyReport, predict_latency
    from lut.manage import (
        CopyReport,
        ExportReport,
        ImportReport,
        ListReport,
        RemoveReport,
        copy_luts,
        export_lut,
        import_luts,
        list_luts,
        open_store,
        remove_lut,
    )
    from lut.predict import CompiledLut, FIXED_KINDS
    from lut.schema import DeviceSetting, PROVENANCE_COLUMNS, ROW_COLUMNS, SCHEMA_VERSION, STAT_COLUMNS
    from lut.store import LutStore, StoredSetting, copy_settings
    from lut.transfer import (
        PREDICTED_SOURCE,
        TransferError,
        TransferModel,
        TransferResult,
        plan_few_shot,
        transfer_table,
    )


def __getattr__(name: str) -> Any:
    module = _NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'lut' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_NAMES))
