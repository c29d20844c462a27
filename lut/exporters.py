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

A CSV is opened by spreadsheets, which run a cell that starts with ``=``, ``+``, ``-``, ``@``, tab or
CR as a formula. Text cells that start so (after any single quotes) get one more ``'`` in front, as
OWASP's CSV-injection advice says; numbers stay numbers; the importer removes that one quote
(:data:`FORMULA_STARTS`). Parquet keeps its typed columns as they are: spreadsheets read it as data,
not as text to evaluate. Every file is staged under a fresh name created exclusively (never through
an existing file or link) and renamed into place.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import secrets
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
    "EXPORT_FORMATS", "FORMULA_STARTS", "export_table", "export_ofa_yaml", "export_csv", "export_parquet",
    "ofa_yaml_files", "dump_ofa_yaml",
]

logger = logging.getLogger(__name__)

EXPORT_FORMATS: tuple[str, ...] = ("ofa-yaml", "csv", "parquet")
EXTRA_FILE = "extra_lookup_table.yaml"
# First characters that make a spreadsheet read a cell as a formula (OWASP, "CSV Injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_FORMULA_LIKE = re.compile("^'*[" + re.escape("".join(FORMULA_STARTS)) + "]")
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')


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
    # A comma inside a JSON string would split the comment line into cells a spreadsheet reads on their own.
    meta = _JSON_STRING.sub(lambda m: m.group().replace(",", "\\u002c"),
                            json.dumps(setting_metadata(store, stored), sort_keys=True))
    text = f"{CSV_PREFIX}{meta}\n" + _defused(frame[list(ROW_COLUMNS)]).to_csv(index=False)
    _atomic(path, lambda fh: fh.write(text.encode()))
    return path


def _defused(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every text cell a spreadsheet would run as a formula behind one more ``'``."""
    out = frame.copy()
    for name in out.columns:
        if not pd.api.types.is_numeric_dtype(out[name]):  # text (object or string dtype); numbers stay numbers
            out[name] = [f"'{v}" if isinstance(v, str) and _FORMULA_LIKE.match(v) else v for v in out[name]]
    return out


def export_parquet(store: LutStore, device: str | int | StoredSetting, path: str | Path) -> Path:
    """Write the device's rows (``ROW_COLUMNS``) as Parquet, the setting's metadata in its schema metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    stored = store.setting(device)
    table = pa.Table.from_pandas(store.rows(stored)[list(ROW_COLUMNS)], preserve_index=False)
    meta = json.dumps(setting_metadata(store, stored), sort_keys=True).encode()
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), PARQUET_KEY: meta})
    _atomic(path, lambda fh: pq.write_table(table, fh))
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
        _atomic(path, lambda fh, text=text: fh.write(text.encode()))
        written.append(path)
    stored = store.setting(device)
    meta = json.dumps(setting_metadata(store, stored), sort_keys=True, indent=1)
    _atomic(out_dir / SETTING_FILE, lambda fh: fh.write((meta + "\n").encode()))
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
    """Call ``write`` with a binary file staged beside ``path``, then rename it over ``path``.

    The staging file gets a fresh random name and is created exclusively (``O_EXCL``: an existing file
    or symlink of that name fails the call instead of being written through).
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(tmp, flags, 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    finally:
        if os.path.lexists(tmp):
            tmp.unlink()
