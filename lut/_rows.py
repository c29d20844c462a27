"""Checking and normalizing one LUT row before it is written (shared by the store and the importers)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from lut.keys import check_row_key
from lut.schema import PROVENANCE_COLUMNS, STAT_COLUMNS
from space.bounds import quoted

__all__ = ["RowTuple", "normalize_row", "check_block_key"]

# (block_key, median_ms, mean_ms, std_ms, p10_ms, p90_ms, n, agent_version, measured_at,
#  temp_before_c, temp_after_c, sentinel_drift, source, extra_json)
RowTuple = tuple[Any, ...]

_FLOAT_STATS = ("median_ms", "mean_ms", "std_ms", "p10_ms", "p90_ms")
_FLOAT_PROV = ("temp_before_c", "temp_after_c", "sentinel_drift")
_TEXT_PROV = ("agent_version", "measured_at")


def check_block_key(key: Any) -> str:
    """``key`` if it is a valid OFA block key, plain or resolution-qualified (:mod:`lut.keys`); ValueError naming
    it otherwise."""
    if not isinstance(key, str):
        raise ValueError(f"block key must be a string, got {quoted(key)}")
    check_row_key(key)
    return key.strip()


def _float(key: str, name: str, value: Any, *, nonneg: bool) -> float | None:
    if value is None:
        return None
    if isinstance(value, (bool, str, bytes)):
        raise ValueError(f"{key}: {name} must be a number, got {quoted(value)}")
    try:
        out = float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an integer too large for a float
        raise ValueError(f"{key}: {name} must be a number, got {quoted(value)}") from None
    if not math.isfinite(out):
        raise ValueError(f"{key}: {name} must be finite, got {quoted(value)}")
    if nonneg and out < 0:
        raise ValueError(f"{key}: {name} must be >= 0, got {quoted(value)}")
    return out


def normalize_row(
    block_key: Any,
    stats: Mapping[str, Any],
    provenance: Mapping[str, Any] | None = None,
    *,
    default_source: str = "measured",
) -> RowTuple:
    """Validate one row and return it as a tuple in ``ROW_COLUMNS`` order.

    ``median_ms`` is required; every other statistic and provenance field may be absent or None.
    Absent optional fields must be None (importers turn empty table cells into None).

    Raises:
        ValueError: unknown field, bad key, or a latency that is negative, NaN or infinite; the message names the key.
    """
    key = check_block_key(block_key)
    provenance = dict(provenance or {})
    unknown = (set(stats) - set(STAT_COLUMNS)) | (set(provenance) - set(PROVENANCE_COLUMNS))
    if unknown:
        raise ValueError(
            f"{key}: unknown field(s) {quoted(sorted(map(str, unknown)))}; "
            f"valid: {', '.join(STAT_COLUMNS + PROVENANCE_COLUMNS)}"
        )
    if stats.get("median_ms") is None:
        raise ValueError(f"{key}: median_ms is required")
    values: list[Any] = [key]
    for name in _FLOAT_STATS:
        values.append(_float(key, name, stats.get(name), nonneg=True))
    n = stats.get("n")
    if n is not None:
        as_float = _float(key, "n", n, nonneg=True)
        if as_float is None or as_float != int(as_float):
            raise ValueError(f"{key}: n must be an int >= 0, got {quoted(n)}")
        n = int(as_float)
    values.append(n)
    for name in _TEXT_PROV:
        value = provenance.get(name)
        values.append(None if value is None else str(value))
    for name in _FLOAT_PROV:
        values.append(_float(key, name, provenance.get(name), nonneg=False))
    source = provenance.get("source") or default_source
    values.append(str(source))
    extra = provenance.get("extra")
    if extra is None:
        extra_json = "{}"
    elif isinstance(extra, str):
        try:
            if not isinstance(json.loads(extra), dict):
                raise ValueError
        except ValueError:
            raise ValueError(f"{key}: extra must be a JSON object, got {quoted(extra)}") from None
        extra_json = extra
    elif isinstance(extra, Mapping):
        extra_json = json.dumps(dict(extra), sort_keys=True)
    else:
        raise ValueError(f"{key}: extra must be a dict or a JSON object string, got {quoted(extra)}")
    values.append(extra_json)
    return tuple(values)
