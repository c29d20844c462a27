"""Writing a device setting's LUT: OFA yaml (one file per resolution), CSV and Parquet.

OFA yaml files hold ``key: {count, mean, std}`` as OFA's tools read them; where the store knows
more, ``median`` (when it differs from the mean), ``p10`` and ``p90`` are added (OFA ignores
extra fields), so re-importing an export gives identical predictions. A file is written for every
resolution whose stem the LUT prices in some registered space; it holds every block of every such
space at that resolution, with the value timed for that resolution where the LUT has one (a
resolution-qualified row, :mod:`lut.keys`), so exporting an OFA import gives OFA's files back.
Rows that belong to no space and resolution go to ``extra_lookup_table.yaml``. CSV and Parquet
hold the columns of ``lut.schema.ROW_COLUMNS`` and the setting's metadata and calibrations
(``lut._metadata``), which an import restores.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from lut._metadata import CSV_PREFIX, PARQUET_KEY, SETTING_FILE, setting_metadata
from lut.keys import qualified_key
from lut.predict import _stem_resolutions
from lut.schema import ROW_COLUMNS
from space import get_space, list_spaces

if TYPE_CHECKING:
    from lut.store import LutStore, StoredSetting

__all__ = [
    "EXPORT_FORMATS", "export_table", "export_ofa_yaml", "export_csv", "export_parquet", "ofa_yaml_files", "dump_ofa_yaml",
]

logger = logging.getLogger(__name__)

EXPORT_FORMATS: tuple[str, ...] = ("ofa-yaml", "csv", "parquet")
EXTRA_FILE = "extra_lookup_table.yaml"


def export_table(store: LutStore, device: str | int | StoredSetting, fmt: str, dest: str | Path) -> list[Path]:
    """Export the device's LUT in ``fmt`` to ``dest`` (a directory for ofa-yaml, a file otherwise).

    Returns:
        The paths written.
    """
    if fmt == "ofa-yaml":
        return export_ofa_yaml(store, device, dest)
    if fmt == "csv":
        return [export_csv(store, device, dest)]
    if fmt == "parquet":
        return [export_parquet(store, device, dest)]
    raise ValueError(f"unknown export format {fmt!r}; valid: {', '.join(EXPORT_FORMATS)}")


def export_csv(store: LutStore, device: str | int | StoredSetting, path: str | Path) -> Path:
    """Write the device's rows (``ROW_COLUMNS``) as CSV, after a comment line with the setting's metadata."""
    path = Path(path)
    stored = store.setting(device)
    frame = store.rows(stored)
    meta = json.dumps(setting_metadata(store, stored), sort_keys=True)

    def write(tmp: Path) -> None:
        with tmp.open("w", newline="") as fh:
            fh.write(f"{CSV_PREFIX}{meta}\n")
            frame.to_csv(fh, index=False, columns=list(ROW_COLUMNS))

    _atomic(path, write)
    return path


def export_parquet(store: LutStore, device: str | int | StoredSetting, path: str | Path) -> Path:
    """Write the device's rows (``ROW_COLUMNS``) as Parquet, the setting's metadata in its schema metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    stored = store.setting(device)
    table = pa.Table.from_pandas(store.rows(stored)[list(ROW_COLUMNS)], preserve_index=False)
    meta = json.dumps(setting_metadata(store, stored), sort_keys=True).encode()
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), PARQUET_KEY: meta})
    _atomic(path, lambda tmp: pq.write_table(table, tmp))
    return path


def ofa_yaml_files(frame: pd.DataFrame, spaces: Sequence[str] | None = None) -> dict[str, dict[str, dict[str, Any]]]:
    """``{file name: {key: entry}}`` of an OFA yaml export of ``frame`` (rows as from ``LutStore.rows``)."""
    entries = {row.block_key: _entry(row) for row in frame.itertuples(index=False)}
    table = dict.fromkeys(entries, 0.0)
    files: dict[int, dict[str, dict[str, Any]]] = {}
    placed: set[str] = set()
    for name in spaces or list_spaces():
        space = get_space(name)
        for r in sorted(_stem_resolutions(table, space)):
            # A block's value timed for r (a resolution-qualified row, lut.keys) goes to r's file under its plain key.
            row_keys = {b.key: _row_key_at(entries, b.key, r) for b in space.unique_blocks(r)}
            row_keys = {k: rk for k, rk in row_keys.items() if rk is not None}
            files.setdefault(r, {}).update((k, entries[rk]) for k, rk in row_keys.items())
            placed.update(row_keys.values())
    out = {f"{r}_lookup_table.yaml": files[r] for r in sorted(files)}
    leftover = {k: v for k, v in entries.items() if k not in placed}
    if leftover:
        logger.warning("%d rows belong to no space/resolution; writing them to %s", len(leftover), EXTRA_FILE)
        out[EXTRA_FILE] = leftover
    return out


def export_ofa_yaml(store: LutStore, device: str | int | StoredSetting, out_dir: str | Path,
                    spaces: Sequence[str] | None = None) -> list[Path]:
    """Write ``{resolution}_lookup_table.yaml`` files for the device into ``out_dir`` (created if needed),
    and the setting's metadata beside them (``lut._metadata.SETTING_FILE``; OFA's tools read only the yaml files).

    Returns:
        The paths written, by resolution, then the metadata file.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"ofa-yaml export needs a directory, got the file {out_dir}")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, entries in ofa_yaml_files(store.rows(device), spaces).items():
        path = out_dir / name
        text = dump_ofa_yaml(entries)
        _atomic(path, lambda tmp, text=text: Path(tmp).write_text(text))
        written.append(path)
    stored = store.setting(device)
    meta = json.dumps(setting_metadata(store, stored), sort_keys=True, indent=1)
    _atomic(out_dir / SETTING_FILE, lambda tmp: Path(tmp).write_text(meta + "\n"))
    logger.info("wrote %d OFA yaml files and %s to %s", len(written), SETTING_FILE, out_dir)
    return [*written, out_dir / SETTING_FILE]


def dump_ofa_yaml(entries: dict[str, dict[str, Any]]) -> str:
    """OFA's block layout (``key:`` then indented ``field: value`` lines), sorted by key.

    Written by hand because PyYAML's representer is ~50x slower; keys are block keys (plain scalars)
    and values ints or finite floats, so the output parses back to exactly these values.
    """
    lines = []
    for key in sorted(entries):
        lines.append(f"{key}:")
        lines.extend(f"  {name}: {_yaml_number(value)}" for name, value in entries[key].items())
    return "\n".join(lines) + "\n"


def _yaml_number(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    text = repr(float(value))
    if "e" in text and "." not in text:  # YAML 1.1 floats need a dot: 1e-05 -> 1.0e-05
        mantissa, exponent = text.split("e")
        text = f"{mantissa}.0e{exponent}"
    return text


def _row_key_at(entries: dict[str, Any], block_key: str, resolution: int) -> str | None:
    """The row holding ``block_key``'s value at ``resolution``: its qualified row, else the plain one (None: neither)."""
    qualified = qualified_key(block_key, resolution)
    if qualified in entries:
        return qualified
    return block_key if block_key in entries else None


def _entry(row: Any) -> dict[str, Any]:
    median = float(row.median_ms)
    mean = _num(row.mean_ms)
    entry: dict[str, Any] = {}
    if _num(row.n) is not None:
        entry["count"] = int(row.n)
    entry["mean"] = median if mean is None else mean
    std = _num(row.std_ms)
    entry["std"] = 0.0 if std is None else std
    if entry["mean"] != median:
        entry["median"] = median
    for name in ("p10", "p90"):
        value = _num(getattr(row, f"{name}_ms"))
        if value is not None:
            entry[name] = value
    return entry


def _num(value: Any) -> float | None:
    if value is None or value is pd.NA:
        return None
    out = float(value)
    return None if math.isnan(out) else out


def _atomic(path: Path, write: Any) -> None:
    """Write through a temporary file in the same directory, then rename over ``path``."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
