"""The store's SQL schema, its version, and the device setting a LUT is keyed by.

Tables:

* ``schema_version``: one row, the version this file was written with.
* ``device_settings``: what makes two measurements comparable (name, runtime and its
  version, threads, precision, model format, delegate) plus a JSON ``info`` blob.
* ``lut_rows``: one row per (setting, block key): statistics in ms and provenance.
* ``failed_blocks``: blocks a profiler could not time, with the reason and attempt count.
* ``validation_runs`` / ``validation_samples``: end-to-end checks of LUT predictions.
* ``calibrations``: fitted corrections per setting, as JSON coefficients (never pickle).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "SCHEMA_VERSION",
    "DDL",
    "DeviceSetting",
    "STAT_COLUMNS",
    "PROVENANCE_COLUMNS",
    "ROW_COLUMNS",
    "SOURCES",
]

SCHEMA_VERSION = 1

# Statistics of one block's latency, in ms (n: number of timed runs).
STAT_COLUMNS: tuple[str, ...] = ("median_ms", "mean_ms", "std_ms", "p10_ms", "p90_ms", "n")
# Where a row came from.
PROVENANCE_COLUMNS: tuple[str, ...] = (
    "agent_version", "measured_at", "temp_before_c", "temp_after_c", "sentinel_drift", "source", "extra",
)
# The columns of a LUT row as exported (CSV/Parquet) and returned by ``LutStore.rows``.
ROW_COLUMNS: tuple[str, ...] = ("block_key", *STAT_COLUMNS, *PROVENANCE_COLUMNS)
# Known values of ``lut_rows.source`` (others are accepted and kept as given).
SOURCES: tuple[str, ...] = ("measured", "ofa-yaml", "nsganetv2-yaml", "csv", "parquet")

DDL = """
CREATE TABLE schema_version (
    version INTEGER NOT NULL
);
CREATE TABLE device_settings (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    runtime TEXT NOT NULL,
    runtime_version TEXT NOT NULL,
    threads INTEGER NOT NULL,
    precision TEXT NOT NULL,
    model_format TEXT NOT NULL,
    delegate TEXT NOT NULL,
    info TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    UNIQUE (name, runtime, runtime_version, threads, precision, model_format, delegate)
);
CREATE TABLE lut_rows (
    setting_id INTEGER NOT NULL REFERENCES device_settings(id) ON DELETE CASCADE,
    block_key TEXT NOT NULL,
    median_ms REAL NOT NULL CHECK (median_ms >= 0),
    mean_ms REAL CHECK (mean_ms >= 0),
    std_ms REAL CHECK (std_ms >= 0),
    p10_ms REAL CHECK (p10_ms >= 0),
    p90_ms REAL CHECK (p90_ms >= 0),
    n INTEGER CHECK (n >= 0),
    agent_version TEXT,
    measured_at TEXT,
    temp_before_c REAL,
    temp_after_c REAL,
    sentinel_drift REAL,
    source TEXT NOT NULL,
    extra TEXT NOT NULL DEFAULT '{}',
    UNIQUE (setting_id, block_key)
);
CREATE TABLE failed_blocks (
    setting_id INTEGER NOT NULL REFERENCES device_settings(id) ON DELETE CASCADE,
    block_key TEXT NOT NULL,
    reason TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 1,
    at TEXT NOT NULL,
    UNIQUE (setting_id, block_key)
);
CREATE TABLE validation_runs (
    id INTEGER PRIMARY KEY,
    setting_id INTEGER NOT NULL REFERENCES device_settings(id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    meta TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE validation_samples (
    run_id INTEGER NOT NULL REFERENCES validation_runs(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    arch TEXT NOT NULL,
    predicted_ms REAL,
    measured_ms REAL,
    repeat_ms REAL,
    extra TEXT NOT NULL DEFAULT '{}',
    UNIQUE (run_id, idx)
);
CREATE TABLE calibrations (
    id INTEGER PRIMARY KEY,
    setting_id INTEGER NOT NULL REFERENCES device_settings(id) ON DELETE CASCADE,
    model TEXT NOT NULL,
    created_at TEXT NOT NULL,
    cv_metrics TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX failed_blocks_setting ON failed_blocks (setting_id);
CREATE INDEX validation_runs_setting ON validation_runs (setting_id);
CREATE INDEX calibrations_setting ON calibrations (setting_id);
"""


@dataclass(frozen=True)
class DeviceSetting:
    """What makes two latency measurements comparable; a LUT is keyed by one of these.

    Two settings are the same setting exactly when every field is equal.
    """

    name: str  # the device's name, as the CLI refers to it (e.g. "note10", "pi5")
    runtime: str  # "onnxruntime", "tflite", "torch", ... ("unknown" for imported tables)
    runtime_version: str = ""  # the runtime's version string ("" when unknown)
    threads: int = 0  # intra-op threads (0 when unknown)
    precision: str = "fp32"  # "fp32", "fp16", "int8", ...
    model_format: str = ""  # "onnx", "tflite", "torchscript", ... ("" when unknown)
    delegate: str = ""  # delegate or execution provider ("" for the runtime's default CPU path)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"DeviceSetting name must be a non-empty string, got {self.name!r}")
        if self.name.strip().isdigit():
            raise ValueError(f"DeviceSetting name must not be all digits (digits refer to setting ids), got {self.name!r}")
        if not isinstance(self.runtime, str) or not self.runtime:
            raise ValueError(f"DeviceSetting runtime must be a non-empty string, got {self.runtime!r}")
        if not isinstance(self.threads, int) or isinstance(self.threads, bool) or self.threads < 0:
            raise ValueError(f"DeviceSetting threads must be an int >= 0, got {self.threads!r}")
        for name in ("runtime_version", "precision", "model_format", "delegate"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"DeviceSetting {name} must be a string, got {getattr(self, name)!r}")

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict."""
        return asdict(self)

    def describe(self) -> str:
        """One line for humans: ``pi5: onnxruntime 1.17.1, 1 thread, fp32, onnx``."""
        parts = [f"{self.runtime} {self.runtime_version}".strip()]
        parts.append(f"{self.threads} thread{'s' if self.threads != 1 else ''}" if self.threads else "threads unknown")
        parts.append(self.precision)
        if self.model_format:
            parts.append(self.model_format)
        if self.delegate:
            parts.append(f"delegate {self.delegate}")
        return f"{self.name}: {', '.join(parts)}"
