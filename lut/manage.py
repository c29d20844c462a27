"""What ``lutnas lut list|import|export|rm|copy`` do, as library calls returning reports.

Each function takes a store (a :class:`~lut.store.LutStore` or a locator string: a SQLite path or
``postgresql://...``) and plain arguments, and returns a report whose ``to_dict()`` is the command's
``--json`` document. Bad input raises ``ValueError`` (a :class:`~lut.errors.LutError` subclass where
the store says so) with one line; nothing is printed.

    from lut.manage import import_luts, list_luts
    import_luts("lut.db", ["note10/160_lookup_table.yaml"], "note10")
    list_luts("lut.db").to_dict()["devices"][0]["rows"]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lut.errors import WorkFailedError
from lut.store import LutStore, StoredSetting

__all__ = [
    "CopyReport",
    "ExportReport",
    "ImportReport",
    "ListReport",
    "RemoveReport",
    "StoreLike",
    "copy_luts",
    "export_format",
    "export_lut",
    "few_shot_status",
    "import_luts",
    "list_luts",
    "open_store",
    "remove_lut",
]

#: A LUT store, or where to open one: a SQLite path or a ``postgresql://`` URL.
StoreLike = LutStore | str | Path


@contextmanager
def open_store(store: StoreLike, *, create: bool = False) -> Iterator[LutStore]:
    """``store`` itself when it is open, else the store it locates, closed on exit.

    Only writers pass ``create``: a read never leaves a new store behind.
    """
    if isinstance(store, LutStore):
        yield store
        return
    with LutStore(store, create=create) as opened:
        yield opened


def few_shot_status(store: LutStore, stored: StoredSetting) -> tuple[dict[str, Any] | None, str | None]:
    """A setting's few-shot status for JSON (None when every row is measured) and the line that says so.

    Every report of a LUT carries this, so predicted (few-shot) rows never pass for measured ones.
    """
    from lut.schema import PREDICTED_SOURCE

    if not store.count_rows(PREDICTED_SOURCE).get(stored.id):  # one count, not the transfer model's imports
        return None, None
    from lut.transfer import predicted_rows

    status = predicted_rows(store, stored)
    if status is None:
        return None, None
    return {"device": stored.name, **status.to_dict()}, status.describe()


# -- lut list ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ListReport:
    """Every setting of a store (``lutnas lut list --json``)."""

    store: str
    devices: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {"devices": self.devices}


def list_luts(store: StoreLike) -> ListReport:
    """Every device setting with its rows, predicted rows, coverage, round spread and calibration."""
    from lut.listing import list_settings

    with open_store(store) as opened:
        return ListReport(store=str(opened.path), devices=list_settings(opened))


# -- lut import ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImportReport:
    """What an import filed where (``lutnas lut import --json``)."""

    setting: dict[str, Any]  # the setting's fields, ``device`` naming it
    setting_id: int
    description: str  # the setting in words, for a reader
    format: str
    files: list[str]
    rows: int
    new_rows: int
    assumed_rows: int
    calibrations: int

    def to_dict(self) -> dict[str, Any]:
        return {**self.setting, "setting_id": self.setting_id, "format": self.format, "files": self.files,
                "rows": self.rows, "new_rows": self.new_rows, "replaced_rows": self.rows - self.new_rows,
                "assumed_rows": self.assumed_rows, "calibrations": self.calibrations}


def import_luts(store: StoreLike, files: Sequence[str | Path], device: str, *, fmt: str | None = None,
                **fields: Any) -> ImportReport:
    """Import LUT files as one device setting: all rows or, on any error, none.

    Args:
        store: the store (created when absent).
        files: the files (one per resolution for OFA yaml).
        device: the device name, or an existing setting's name or id when no field is given.
        fmt: one of ``lut.FORMATS`` (default: detected from the first file).
        **fields: the setting's fields (``runtime``, ``runtime_version``, ``threads``, ``precision``,
            ``model_format``, ``delegate``); None values are left out. A lutnas CSV or Parquet export
            supplies what is not given.

    Raises:
        ValueError: an unknown format, a missing file, fields that make no setting, a malformed file.
    """
    from lut.importers import FORMATS, import_files

    if fmt is not None and fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    paths = [Path(f) for f in files]
    if not paths:
        raise ValueError("files must name at least one file, got none")
    for path in paths:
        if not path.is_file():
            raise ValueError(f"no such file: {path}")
    given = {k: v for k, v in fields.items() if v is not None}
    with open_store(store, create=True) as opened:
        fmt, meta = _format_and_metadata(paths, fmt)
        target, before = _import_target(opened, device, given, meta)
        result = import_files(opened, target, paths, fmt)
        stored = opened.setting(result.setting_id)
        new = len(opened.keys(stored.id)) - before
        n_cal = _import_calibrations(opened, stored, meta)
    from lut.listing import setting_fields

    return ImportReport(setting=setting_fields(stored.setting), setting_id=stored.id, description=stored.describe(),
                        format=fmt, files=[str(p) for p in paths], rows=result.n_rows, new_rows=new,
                        assumed_rows=result.n_assumed, calibrations=n_cal)


def _format_and_metadata(paths: list[Path], fmt: str | None) -> tuple[str, dict[str, Any]]:
    from lut._metadata import SETTING_FILE, read_metadata
    from lut.importers import detect_format

    fmt = fmt or detect_format(next((p for p in paths if p.name != SETTING_FILE), paths[0]))
    return fmt, read_metadata(paths[0], fmt) or {}


def _import_target(store: LutStore, device: str, given: dict[str, Any],
                   meta: dict[str, Any]) -> tuple[Any, int]:
    """The setting the rows go to (an existing one, or a new DeviceSetting) and its row count before."""
    from lut.schema import DeviceSetting

    if not given and (device.isdigit() or store.settings(device)):
        stored = store.setting(device)  # the existing setting (ambiguous names fail here)
        return stored, len(store.keys(stored.id))
    try:
        target = DeviceSetting(name=device, **{"runtime": "unknown", **meta.get("setting", {}), **given})
    except (TypeError, ValueError) as err:
        raise ValueError(f"cannot file the rows as a device setting: {err}") from err
    same = [s for s in store.settings(device) if s.setting == target]
    return target, len(store.keys(same[0].id)) if same else 0


def _import_calibrations(store: LutStore, stored: StoredSetting, meta: dict[str, Any]) -> int:
    """Calibrations a lutnas export carried, stored when the setting has none yet."""
    docs = meta.get("calibrations") or []
    if not docs or store.calibration_docs(stored.id):
        return 0
    from lut.calibration import Calibration

    for doc in docs:
        store.save_calibration(stored.id, Calibration.from_json(doc).to_json())  # checked before it is stored
    return len(docs)


# -- lut export ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExportReport:
    """What an export wrote (``lutnas lut export --json``)."""

    setting: dict[str, Any]
    setting_id: int
    description: str
    format: str
    files: list[str]
    out: str
    few_shot: dict[str, Any] | None = None
    notes: tuple[str, ...] = field(default=(), compare=False)  # lines for a reader, not in the JSON

    def to_dict(self) -> dict[str, Any]:
        return {**self.setting, "setting_id": self.setting_id, "format": self.format, "files": self.files}


def export_format(out: str | Path) -> str:
    """The export format an output path implies: its extension, else a directory of OFA yaml files.

    Raises:
        ValueError: a ``.yaml`` file (OFA yaml is one file per resolution: a directory).
    """
    suffix = Path(out).suffix.lower()
    if suffix in (".yaml", ".yml"):
        raise ValueError(f"--out {out}: OFA yaml is one file per resolution; give a directory")
    return {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}.get(suffix, "ofa-yaml")


def export_lut(store: StoreLike, device: str | int, out: str | Path, fmt: str | None = None) -> ExportReport:
    """Export a device's LUT: ofa-yaml (a directory), csv or parquet (default: from ``out``).

    Raises:
        ValueError: an unknown format or device.
        OSError: the files cannot be written.
    """
    from lut.exporters import EXPORT_FORMATS, export_table
    from lut.listing import setting_fields

    fmt = fmt or export_format(out)
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"format must be one of {', '.join(EXPORT_FORMATS)}, got {fmt!r}")
    with open_store(store) as opened:
        stored = opened.setting(device)
        few_shot, note = few_shot_status(opened, stored)
        notes = [note] if note else []
        if few_shot is not None and fmt == "ofa-yaml":  # CSV and Parquet keep each row's source; OFA yaml cannot
            notes.append("OFA yaml has no field for it: the exported files do not say which rows are predicted")
        paths = export_table(opened, stored, fmt, out)
    return ExportReport(setting=setting_fields(stored.setting), setting_id=stored.id, description=stored.describe(),
                        format=fmt, files=[str(p) for p in paths], out=str(out), few_shot=few_shot,
                        notes=tuple(notes))


# -- lut rm --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RemoveReport:
    """What ``lutnas lut rm`` removed."""

    device: str
    setting_id: int
    description: str
    removed_rows: int

    def to_dict(self) -> dict[str, Any]:
        return {"device": self.device, "setting_id": self.setting_id, "removed_rows": self.removed_rows}


def remove_lut(store: StoreLike, device: str | int, *, confirm: Callable[[str, int], bool] | None = None
               ) -> RemoveReport:
    """Remove a device setting with its rows, failures, validation runs and calibrations.

    Args:
        store: the store.
        device: the setting's name, selector or id.
        confirm: asked with the setting in words and its row count before anything is removed (a command's
            "remove ...?"); when it returns False nothing is removed.

    Raises:
        ValueError: an unknown device (a :class:`~lut.errors.LutError`).
        WorkFailedError: ``confirm`` said no ("nothing removed").
    """
    with open_store(store) as opened:
        stored = opened.setting(device)
        if confirm is not None and not confirm(stored.describe(), len(opened.keys(stored.id))):
            raise WorkFailedError("nothing removed")
        n_rows = opened.remove_setting(stored.id)
    return RemoveReport(device=stored.name, setting_id=stored.id, description=stored.describe(), removed_rows=n_rows)


# -- lut copy ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CopyReport:
    """What ``lutnas lut copy`` copied: per setting its name, ids in both stores, rows and description."""

    source: str
    dest: str
    copied: list[dict[str, Any]]
    descriptions: tuple[str, ...] = field(default=(), compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"from": self.source, "to": self.dest, "copied": self.copied}


def copy_luts(source: StoreLike, dest: StoreLike, devices: Sequence[str | int] | None = None, *,
              replace: bool = False) -> CopyReport:
    """Copy device settings (rows, failures, calibrations, validation runs) between stores, all or nothing.

    Args:
        source: the store to read.
        dest: the store to write (created when absent).
        devices: names, selectors or ids in ``source`` (default: every setting).
        replace: overwrite settings ``dest`` already has.
    """
    from lut.store import copy_settings

    with open_store(source) as src, open_store(dest, create=True) as dst:
        copied = copy_settings(src, dst, list(devices) if devices else None, replace=replace)
        counts = dst.count_rows()
        items = [{"device": s.name, "from_id": s.id, "to_id": new_id, "rows": counts.get(new_id, 0)}
                 for s, new_id in copied]
        return CopyReport(source=str(src.path), dest=str(dst.path), copied=items,
                          descriptions=tuple(s.describe() for s, _ in copied))


def store_space(store: LutStore, stored: dict[str, StoredSetting], others: Sequence[Any], given: str | None) -> str:
    """The space the LUTs of ``stored`` (name -> setting) and the ``others`` sources all fit (``given`` when set).

    Users' spaces recorded with the settings (``LutStore.record_space``) are candidates beside the registered
    ones; :func:`resolve_space` turns the answer into the space.

    Returns:
        A registered or recorded space's name, or ``given`` when it is a space file's path.

    Raises:
        ValueError: no space fits every input, or several do; the message names what each input covers.
    """
    from lut.spaces import choose_space, lut_source, recorded_spaces

    recorded = recorded_spaces(stored.values())
    sources = [lut_source(name, store.table(s.id), recorded) for name, s in stored.items()]
    return choose_space([*sources, *others], given, recorded)


def resolve_space(ref: str, stored: Iterable[StoredSetting]) -> Any:
    """The space :func:`store_space` chose: one recorded with the ``stored`` settings, else ``get_space(ref)``."""
    from lut.spaces import recorded_spaces
    from space import get_space

    for space in recorded_spaces(stored):
        if space.name == ref:
            return space
    return get_space(ref)
