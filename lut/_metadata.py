"""A device setting's metadata (runtime, threads, precision, format, calibrations) inside exported files.

CSV carries it as a first comment line ``# lutnas-setting: {json}``; Parquet in its schema metadata
under ``lutnas-setting``. OFA yaml has no room for it (OFA's tools read every top-level key as a block),
so an OFA yaml export writes it to ``lutnas-setting.json`` beside the yaml files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lut.errors import ImportFormatError

if TYPE_CHECKING:
    from lut.store import LutStore, StoredSetting

__all__ = ["CSV_PREFIX", "PARQUET_KEY", "SETTING_FILE", "setting_metadata", "read_metadata"]

CSV_PREFIX = "# lutnas-setting: "
PARQUET_KEY = b"lutnas-setting"
SETTING_FILE = "lutnas-setting.json"
_FORMAT_VERSION = 1


def setting_metadata(store: LutStore, stored: StoredSetting) -> dict[str, Any]:
    """The setting's fields (all but its name) and its newest calibration per space, JSON-ready."""
    from lut.calibration import Calibration
    from space import list_spaces

    fields = {k: v for k, v in stored.setting.to_dict().items() if k != "name"}
    calibrations = []
    for space in list_spaces():
        cal = Calibration.from_store(store, stored.id, space)  # checked: a damaged document is not exported
        if cal is not None and cal.to_json() not in calibrations:
            calibrations.append(cal.to_json())
    return {"format_version": _FORMAT_VERSION, "device": stored.name, "setting": fields,
            "calibrations": [json.loads(c) for c in calibrations]}


def read_metadata(path: str | Path, fmt: str) -> dict[str, Any] | None:
    """The metadata an exported CSV or Parquet file carries, or that an OFA yaml file has beside it; None when
    there is none (files lutnas did not write, nsganetv2 yaml).

    Raises:
        ImportFormatError: the metadata is there but is not JSON of a known format version.
    """
    path = Path(path)
    if fmt == "csv":
        try:
            with path.open() as fh:
                first = fh.readline()
        except (OSError, UnicodeDecodeError) as err:
            raise ImportFormatError(f"{path}: cannot read ({err})") from err
        text = first[len(CSV_PREFIX):] if first.startswith(CSV_PREFIX) else None
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            meta = pq.read_schema(path).metadata or {}
        except Exception as err:  # pyarrow raises its own ArrowInvalid for corrupt files
            raise ImportFormatError(f"{path}: not a readable Parquet file ({str(err).splitlines()[0]})") from err
        text = meta.get(PARQUET_KEY)
    elif fmt == "ofa-yaml" and (path.parent / SETTING_FILE).is_file():
        try:
            text = (path.parent / SETTING_FILE).read_text()
        except (OSError, UnicodeDecodeError) as err:
            raise ImportFormatError(f"{path.parent / SETTING_FILE}: cannot read ({err})") from err
    else:
        return None
    if text is None:
        return None
    try:
        doc = json.loads(text)
    except ValueError as err:
        raise ImportFormatError(f"{path}: line 1: the lutnas-setting metadata is not JSON ({err})") from err
    if not isinstance(doc, dict) or doc.get("format_version") != _FORMAT_VERSION:
        raise ImportFormatError(f"{path}: lutnas-setting metadata of an unknown format version")
    return doc
