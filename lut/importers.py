"""Reading LUT files into rows: OFA yaml, nsganetv2 yaml, CSV and Parquet.

Every reader validates the whole file before anything is written and reports the first problem
with the file and the line (YAML, CSV) or row (Parquet) and key. :func:`import_files` then writes
all rows of all files in one transaction, so a bad file leaves the store unchanged.

* **OFA yaml** (``{resolution}_lookup_table.yaml``): ``key: {count, mean, std}`` (ProxylessNAS's table
  writes ``var`` for ``std``: the standard deviation is its square root). OFA stores no
  median, so ``median_ms`` takes the mean and the row says so in ``extra``. Files written by
  :mod:`lut.exporters` also carry ``median``, ``p10`` and ``p90``, which are read back.
  A key present in several files (OFA times the head's feature mix and classifier, and the blocks two
  resolutions share, in each resolution's file) keeps the highest-resolution file's value under its
  plain key and every other file's value under the resolution-qualified key ``<key>@r<R>``
  (:mod:`lut.keys`), so a subnet at R is priced from R's file, as OFA prices it.
* **nsganetv2 yaml**: ``MBConv-input:..-expand:<ratio>-..-se:0|1`` (no ``hs``), ``first_conv``,
  ``final_expand_layer``, ``feature_mix_layer``, ``classifier-input:C-output:N`` with
  ``{mean, var}``. Keys are mapped onto OFA keys (mid = round(in * ratio); h-swish inferred from
  the stage, found by the block's output width in the registered spaces). The file has no pool
  entry: an ``AvgPool2D`` row of 0.0 ms is added for every final-expand shape, flagged
  ``extra["note"] = "absent in source, assumed 0"``.
* **CSV / Parquet**: the columns of ``lut.schema.ROW_COLUMNS`` (``block_key`` and ``median_ms``
  required); files lutnas wrote also carry the setting's metadata (``lut._metadata.read_metadata``).
  A CSV text cell of one or more ``'`` and then a formula's first character loses one ``'``: the
  quote a CSV export adds so that spreadsheets show the cell as text (:mod:`lut.exporters`).
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from lut._metadata import CSV_PREFIX, SETTING_FILE
from lut._rows import normalize_row
from lut._yaml import key_line, load_yaml_mapping
from lut.errors import ImportFormatError
from lut.exporters import FORMULA_STARTS
from lut.keys import qualified_key
from lut.schema import PROVENANCE_COLUMNS, ROW_COLUMNS, STAT_COLUMNS, DeviceSetting
from space import Block, get_space
from space.bounds import MAX_QUOTED_CHARS, quoted

if TYPE_CHECKING:
    from lut.store import LutStore, RowInput, StoredSetting

__all__ = [
    "FORMATS",
    "ImportResult",
    "detect_format",
    "read_rows",
    "read_ofa_yaml",
    "read_nsganetv2_yaml",
    "read_csv",
    "read_parquet",
    "import_files",
    "ASSUMED_ZERO_NOTE",
]

logger = logging.getLogger(__name__)

FORMATS: tuple[str, ...] = ("ofa-yaml", "nsganetv2-yaml", "csv", "parquet")
ASSUMED_ZERO_NOTE = "absent in source, assumed 0"

PathLike = str | Path


@dataclass(frozen=True)
class ImportResult:
    """What an import wrote."""

    setting_id: int  # the device setting the rows were filed under
    n_rows: int  # rows written (new or replaced)
    n_files: int  # files read
    n_assumed: int  # rows not in the source but assumed (nsganetv2 pool rows)


# -- format detection ------------------------------------------------------------------------
def detect_format(path: PathLike) -> str:
    """The format of ``path`` from its extension (and, for YAML, its first key)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix in (".yaml", ".yml"):
        try:
            with path.open() as fh:
                head = fh.read(4096)
        except OSError as err:
            raise ImportFormatError(f"{path}: cannot read ({err.strerror})") from err
        first = head.lstrip().split(":", 1)[0]
        return "nsganetv2-yaml" if first.startswith(_NSGA_PREFIXES) else "ofa-yaml"
    raise ImportFormatError(f"{path}: cannot tell the format from the extension {quoted(suffix)}; "
                            f"pass a format ({', '.join(FORMATS)})")


def read_rows(paths: Sequence[PathLike], fmt: str | None = None) -> list[RowInput]:
    """Rows of ``paths`` (all in one format; detected from the first file when ``fmt`` is None)."""
    paths = [p for p in paths if Path(p).name != SETTING_FILE]  # an OFA yaml export's metadata, read by read_metadata
    if not paths:
        raise ValueError("no files to import")
    fmt = fmt or detect_format(paths[0])
    if fmt == "ofa-yaml":
        return read_ofa_yaml(paths)
    if fmt == "nsganetv2-yaml":
        rows: list[RowInput] = []
        for p in paths:
            rows.extend(read_nsganetv2_yaml(p))
        return _dedupe(rows)
    if fmt in ("csv", "parquet"):
        reader = read_csv if fmt == "csv" else read_parquet
        rows = []
        for p in paths:
            rows.extend(reader(p))
        return _dedupe(rows)
    raise ValueError(f"unknown LUT format {quoted(fmt)}; valid: {', '.join(FORMATS)}")


def import_files(store: LutStore, setting: DeviceSetting | int | str | StoredSetting, paths: Sequence[PathLike],
                 fmt: str | None = None, info: Mapping[str, Any] | None = None) -> ImportResult:
    """Read ``paths`` and write every row under ``setting`` in one transaction (nothing on any error).

    Args:
        store: the LUT store.
        setting: a DeviceSetting (created when new) or an existing setting's name/id.
        paths: the files; several OFA yaml files (one per resolution) make one LUT.
        fmt: one of ``FORMATS`` (default: detected).
        info: device facts stored with a new setting.

    Raises:
        ImportFormatError: a malformed file (names the file and line/key).
    """
    rows = read_rows(paths, fmt)
    n_assumed = sum(1 for _, _, prov in rows if prov and ASSUMED_ZERO_NOTE in str(prov.get("extra", "")))
    setting_id, n = store.import_rows(setting, rows, info=info)
    logger.info("imported %d rows from %d file(s) into setting #%d", n, len(paths), setting_id)
    return ImportResult(setting_id=setting_id, n_rows=n, n_files=len(paths), n_assumed=n_assumed)


def _dedupe(rows: list[RowInput]) -> list[RowInput]:
    """Keep the last row per key (files later in the list win)."""
    return list({key: (key, stats, prov) for key, stats, prov in rows}.values())


# -- OFA yaml ----------------------------------------------------------------------------------
_OFA_FIELDS = {"count", "mean", "std", "var", "median", "p10", "p90"}
_RES_RE = re.compile(r"^(\d+)_")


def _file_resolution(path: Path, data: Mapping[str, Any]) -> int:
    """The resolution a per-resolution OFA file is for (from its name, else its first conv)."""
    m = _RES_RE.match(path.name)
    if m:
        return int(m.group(1))
    for key in data:
        if isinstance(key, str) and key.startswith("Conv-"):
            try:
                return Block.from_key(key).in_hw
            except ValueError:
                break
    return 0


def read_ofa_yaml(paths: PathLike | Sequence[PathLike]) -> list[RowInput]:
    """Rows of OFA per-resolution LUT files (``key: {count, mean, std}``).

    A key in several files keeps the highest-resolution file's value under the plain key and each
    other file's value, where it differs, under ``qualified_key(key, R)``.

    Raises:
        ImportFormatError: naming the file, line and key of the first problem.
    """
    path_list = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
    parsed = []
    for path in path_list:
        data, text = load_yaml_mapping(path)
        parsed.append((_file_resolution(path, data), path, data, text))
    parsed.sort(key=lambda item: item[0])
    timed: dict[str, dict[int, RowInput]] = {}  # key -> its row per file resolution (ascending; a later file wins)
    for r, path, data, text in parsed:
        for key, value in data.items():
            try:
                stats, extra = _ofa_entry(key, value)
                row = (key, stats, {"source": "ofa-yaml", "extra": {"file": path.name, **extra}})
                normalize_row(*row)
            except ValueError as err:
                raise _located(path, text, key, err) from err
            timed.setdefault(key, {})[r] = row
    rows = []
    for key, versions in timed.items():
        *others, (_, last) = versions.items()
        rows.append(last)
        for r, (_, stats, prov) in others:
            if stats == last[1]:  # the same value (a lutnas export of a LUT timed once): the plain row says it
                continue
            if r == 0:  # a file with neither a resolution in its name nor a first conv: nothing to qualify by
                logger.warning("%s: %s is also in a later file; keeping that one", prov["extra"]["file"], key)
                continue
            rows.append((qualified_key(key, r), stats, prov))
    n_shared = sum(len(v) > 1 for v in timed.values())
    if n_shared:
        logger.info("%d keys appear in several OFA files; each file's value is kept for its resolution", n_shared)
    return rows


def _ofa_entry(key: Any, value: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    if not isinstance(key, str):
        raise ValueError(f"block key must be a string, got {quoted(key)}")
    Block.from_key(key)
    if not isinstance(value, Mapping):
        raise ValueError(f"expected a mapping with count, mean, std; got {quoted(value)}")
    unknown = set(value) - _OFA_FIELDS
    if unknown:
        raise ValueError(f"unknown field(s) {quoted(sorted(map(str, unknown)))}; "
                         "valid: count, mean, std or var (median, p10, p90)")
    if "mean" not in value:
        raise ValueError("missing field 'mean'")
    if ("std" in value) == ("var" in value):
        raise ValueError("missing field 'std'" if "std" not in value else "give std or var, not both")
    mean = _number("mean", value["mean"])
    std = _number("std", value["std"]) if "std" in value else math.sqrt(_number("var", value["var"]))
    stats: dict[str, Any] = {"mean_ms": mean, "std_ms": std}
    extra: dict[str, Any] = {}
    if "median" in value:
        stats["median_ms"] = _number("median", value["median"])
    else:
        stats["median_ms"] = mean
        extra["median_from"] = "mean (OFA yaml has no median)"
    for name in ("p10", "p90"):
        if name in value:
            stats[f"{name}_ms"] = _number(name, value[name])
    if value.get("count") is not None:
        count = value["count"]
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"count must be an int >= 0, got {quoted(count)}")
        stats["n"] = count
    return stats, extra


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {quoted(value)}")
    try:
        out = float(value)
    except OverflowError:  # an integer too large for a float
        raise ValueError(f"{name} must be a finite number >= 0, got {quoted(value)}") from None
    if not math.isfinite(out) or out < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {quoted(value)}")
    return out


def _located(path: Path, text: str, key: Any, err: Exception) -> ImportFormatError:
    line = key_line(text, key)
    where = f"line {line}" if line is not None else "unknown line"
    msg = str(err)
    prefix = f"{key}: "
    if isinstance(key, str) and msg.startswith(prefix):
        msg = msg[len(prefix):]
    return ImportFormatError(f"{path}: {where}: key {quoted(key)}: {_cut(msg)}")


def _cut(msg: str) -> str:
    """An error's text at most a few quoted values long (errors from other layers may quote a whole key)."""
    limit = 3 * MAX_QUOTED_CHARS
    return msg if len(msg) <= limit else msg[: limit - 1] + "…"


# -- nsganetv2 yaml ------------------------------------------------------------------------------
_NSGA_PREFIXES = ("MBConv-", "first_conv-", "final_expand_layer-", "feature_mix_layer-", "classifier-")
_NSGA_MBCONV = re.compile(
    r"^MBConv-input:(\d+)x(\d+)x(\d+)-output:(\d+)x(\d+)x(\d+)-expand:(\d+(?:\.\d+)?)-kernel:(\d+)"
    r"-stride:(\d+)-idskip:([01])-se:([01])$"
)
_NSGA_FIXED = re.compile(r"^(first_conv|final_expand_layer|feature_mix_layer)-input:(\d+)x(\d+)x(\d+)"
                         r"-output:(\d+)x(\d+)x(\d+)$")
_NSGA_CLASSIFIER = re.compile(r"^classifier-input:(\d+)-output:(\d+)$")
_NSGA_KIND = {"first_conv": "first_conv", "final_expand_layer": "final_expand", "feature_mix_layer": "feature_mix"}
# NSGANetV2's LUTs price OFA's ImageNet supernets; the small digits space reuses some of their widths with
# other activations, so it would make those widths ambiguous.
_NSGA_SPACES = ("ofa-mbv3-w1.0", "ofa-mbv3-w1.2")


def _stage_acts() -> dict[int, str]:
    """Output width -> activation of the stage (or fixed first block) producing it, over NSGANetV2's spaces."""
    acts: dict[int, set[str]] = {}
    for name in _NSGA_SPACES:
        space = get_space(name)
        acts.setdefault(space.first_block_chs, set()).add("relu")
        for chs, act in zip(space.stage_chs, space.stage_acts):
            acts.setdefault(chs, set()).add(act)
    return {chs: next(iter(a)) for chs, a in acts.items() if len(a) == 1}


def nsganetv2_to_ofa_key(key: str, acts: Mapping[int, str] | None = None) -> str:
    """The OFA key of one nsganetv2 key.

    Raises:
        ValueError: the key follows neither grammar, or its stage (hence activation) cannot be inferred.
    """
    acts = _stage_acts() if acts is None else acts
    if m := _NSGA_MBCONV.match(key):
        h, w, cin, oh, ow, cout = (int(x) for x in m.groups()[:6])
        ratio = float(m.group(7))
        k, s, skip, se = (int(x) for x in m.groups()[7:])
        if cout not in acts:
            raise ValueError(f"cannot infer the activation: output width {cout} is not a stage width of "
                             f"{', '.join(_NSGA_SPACES)}")
        if h != w or oh != ow:
            raise ValueError("non-square feature map")
        block = Block(kind="mbconv", in_hw=h, in_chs=cin, out_hw=oh, out_chs=cout, mid_chs=round(cin * ratio),
                      kernel=k, stride=s, skip=bool(skip), se=bool(se), act=acts[cout])
        if block.out_hw != (h - 1) // s + 1:
            raise ValueError(f"output side {oh} does not follow from input {h} and stride {s}")
        return block.key
    if m := _NSGA_FIXED.match(key):
        prefix = m.group(1)
        h, w, cin, oh, ow, cout = (int(x) for x in m.groups()[1:])
        if h != w or oh != ow:
            raise ValueError("non-square feature map")
        return Block.fixed(_NSGA_KIND[prefix], h, cin, oh, cout).key
    if m := _NSGA_CLASSIFIER.match(key):
        cin, cout = int(m.group(1)), int(m.group(2))
        return Block.fixed("classifier", 1, cin, 1, cout).key
    raise ValueError("not an nsganetv2 key (expected MBConv-input:HxWxC-output:HxWxC-expand:R-kernel:K-stride:S-"
                     "idskip:0|1-se:0|1, first_conv|final_expand_layer|feature_mix_layer-input:..-output:.., "
                     "or classifier-input:C-output:N)")


def read_nsganetv2_yaml(path: PathLike) -> list[RowInput]:
    """Rows of an nsganetv2 LUT (``key: {mean, var}``) mapped onto OFA keys, plus assumed-zero pool rows.

    Raises:
        ImportFormatError: naming the file, line and key of the first problem.
    """
    path = Path(path)
    data, text = load_yaml_mapping(path)
    acts = _stage_acts()
    rows: dict[str, RowInput] = {}
    for key, value in data.items():
        try:
            if not isinstance(key, str):
                raise ValueError(f"block key must be a string, got {quoted(key)}")
            ofa_key = nsganetv2_to_ofa_key(key, acts)
            if not isinstance(value, Mapping):
                raise ValueError(f"expected a mapping with mean, var; got {quoted(value)}")
            unknown = set(value) - {"mean", "var"}
            if unknown:
                raise ValueError(f"unknown field(s) {quoted(sorted(map(str, unknown)))}; valid: mean, var")
            for name in ("mean", "var"):
                if name not in value:
                    raise ValueError(f"missing field {name!r}")
            mean, var = _number("mean", value["mean"]), _number("var", value["var"])
            stats = {"median_ms": mean, "mean_ms": mean, "std_ms": math.sqrt(var)}
            prov = {"source": "nsganetv2-yaml",
                    "extra": {"file": path.name, "source_key": key, "median_from": "mean (nsganetv2 yaml has no median)"}}
            normalize_row(ofa_key, stats, prov)
        except ValueError as err:
            raise _located(path, text, key, err) from err
        if ofa_key in rows:
            raise _located(path, text, key, ValueError(f"maps to OFA key {quoted(ofa_key)} like an earlier entry"))
        rows[ofa_key] = (ofa_key, stats, prov)
    n_before = len(rows)
    for ofa_key in list(rows):
        block = Block.from_key(ofa_key)
        if block.kind == "final_expand":
            pool = Block.fixed("avgpool", block.out_hw, block.out_chs, 1, block.out_chs)
            if pool.key not in rows:
                rows[pool.key] = (pool.key, {"median_ms": 0.0, "mean_ms": 0.0, "std_ms": 0.0},
                                  {"source": "nsganetv2-yaml", "extra": {"file": path.name, "note": ASSUMED_ZERO_NOTE}})
    logger.info("%s: %d entries, %d AvgPool2D rows assumed 0 ms", path, n_before, len(rows) - n_before)
    return list(rows.values())


# -- CSV / Parquet -------------------------------------------------------------------------------
_CSV_TEXT_COLUMNS = ("block_key", "source", "extra", "agent_version", "measured_at")
_FORMULA_QUOTED = re.compile("^'(?='*[" + re.escape("".join(FORMULA_STARTS)) + "])")  # the export's added quote


def read_csv(path: PathLike) -> list[RowInput]:
    """Rows of a CSV with ``ROW_COLUMNS`` (``block_key``, ``median_ms`` required).

    Raises:
        ImportFormatError: naming the file, line and key of the first problem.
    """
    path = Path(path)
    try:
        with path.open() as fh:
            skip = 1 if fh.readline().startswith(CSV_PREFIX) else 0  # the setting's metadata (read_metadata)
        frame = pd.read_csv(path, dtype=dict.fromkeys(_CSV_TEXT_COLUMNS, str), keep_default_na=True, skiprows=skip)
    except (OSError, UnicodeDecodeError) as err:
        raise ImportFormatError(f"{path}: cannot read ({err})") from err
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as err:
        raise ImportFormatError(f"{path}: not a LUT CSV ({str(err).splitlines()[0]})") from err
    for name in _CSV_TEXT_COLUMNS:
        if name in frame.columns:
            frame[name] = [_FORMULA_QUOTED.sub("", v, count=1) if isinstance(v, str) else v for v in frame[name]]
    return _frame_rows(path, frame, "csv", lambda i: f"line {i + 2 + skip}")


def read_parquet(path: PathLike) -> list[RowInput]:
    """Rows of a Parquet file with ``ROW_COLUMNS``.

    Raises:
        ImportFormatError: naming the file, row and key of the first problem.
    """
    path = Path(path)
    try:
        frame = pd.read_parquet(path)
    except MemoryError:
        raise
    except Exception as err:  # noqa: BLE001 - pyarrow's ArrowInvalid, or pandas' KeyError/TypeError on damaged metadata
        reason = (str(err).splitlines() or [type(err).__name__])[0]
        raise ImportFormatError(f"{path}: not a readable Parquet file ({quoted(reason)})") from err
    return _frame_rows(path, frame, "parquet", lambda i: f"row {i + 1}")


def _frame_rows(path: Path, frame: pd.DataFrame, default_source: str, where: Any) -> list[RowInput]:
    unknown = [c for c in frame.columns if c not in ROW_COLUMNS]
    if unknown:
        raise ImportFormatError(f"{path}: line 1: unknown column(s) {quoted(unknown)}; valid: {', '.join(ROW_COLUMNS)}")
    for required in ("block_key", "median_ms"):
        if required not in frame.columns:
            raise ImportFormatError(f"{path}: line 1: missing column {required!r}")
    rows: list[RowInput] = []
    seen: dict[str, int] = {}
    records = frame.to_dict("records")
    for i, rec in enumerate(records):
        rec = {k: (None if _is_na(v) else v) for k, v in rec.items()}
        key = rec.pop("block_key")
        stats = {k: rec[k] for k in STAT_COLUMNS if k in rec and rec[k] is not None}
        prov = {k: rec[k] for k in PROVENANCE_COLUMNS if k in rec and rec[k] is not None}
        prov.setdefault("source", default_source)
        if "extra" in prov:
            try:
                prov["extra"] = json.loads(prov["extra"])
            except (TypeError, ValueError):
                raise ImportFormatError(f"{path}: {where(i)}: key {quoted(key)}: "
                                        f"extra is not JSON: {quoted(prov['extra'])}") from None
        try:
            if stats.get("median_ms") is None:
                raise ValueError("median_ms is required")
            normalize_row(key, stats, prov)
        except ValueError as err:
            msg = str(err)
            if isinstance(key, str) and msg.startswith(f"{key}: "):
                msg = msg[len(key) + 2:]
            raise ImportFormatError(f"{path}: {where(i)}: key {quoted(key)}: {_cut(msg)}") from err
        if key in seen:
            raise ImportFormatError(f"{path}: {where(i)}: key {quoted(key)} repeats {where(seen[key])}")
        seen[key] = i
        rows.append((key, stats, prov))
    return rows


def _is_na(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


