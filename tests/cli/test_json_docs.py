"""docs/json.md is the one description of ``--json`` output: run each documented command and check its
document has exactly the documented keys (``"…"`` in an example stands for more keys)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SHARED_DATA

from .conftest import invoke_json

DOC = Path(__file__).resolve().parents[2] / "docs" / "json.md"
DATA = SHARED_DATA or Path("/nonexistent")
MORE = "…"


def _examples() -> dict[str, Any]:
    """Heading command (e.g. ``lutnas lut list --json``) -> its JSON example."""
    text = DOC.read_text()
    out = {}
    for heading, body in re.findall(r"^## `([^`]+)`[^\n]*\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S):
        block = re.search(r"```json\n(.*?)```", body, flags=re.S)
        if block:
            out[heading] = json.loads(block.group(1))
    return out


def _same_shape(doc: Any, example: Any, where: str = "$") -> None:
    if isinstance(example, dict) and len(example) == 1 and next(iter(example)).startswith("<"):
        assert isinstance(doc, dict) and doc, f"{where}: expected a non-empty map, got {doc!r}"
        for key, value in doc.items():  # one entry per device, space, ...
            _same_shape(value, next(iter(example.values())), f"{where}.{key}")
    elif isinstance(example, dict):
        assert isinstance(doc, dict), f"{where}: expected an object, got {doc!r}"
        documented = {k for k in example if k != MORE}
        if MORE in example:
            assert documented <= set(doc), f"{where}: keys {sorted(documented - set(doc))} missing"
        else:
            assert set(doc) == documented, f"{where}: keys {sorted(doc)} != documented {sorted(documented)}"
        for key in documented:
            _same_shape(doc[key], example[key], f"{where}.{key}")
    elif isinstance(example, list):
        assert isinstance(doc, list), f"{where}: expected a list, got {doc!r}"
        by_kind = {}
        for item in example:  # one checked item per distinct shape (e.g. feasible and infeasible results)
            by_kind.setdefault(json.dumps(sorted(item)) if isinstance(item, dict) else type(item).__name__, item)
        for item in doc:
            key = json.dumps(sorted(item)) if isinstance(item, dict) else type(item).__name__
            if isinstance(item, dict) and key not in by_kind and len(by_kind) == 1:
                key = next(iter(by_kind))
            assert key in by_kind, f"{where}[]: undocumented shape {sorted(item) if isinstance(item, dict) else item}"
            _same_shape(item, by_kind[key], f"{where}[]")


def test_every_documented_command_has_its_documented_shape(db: Path, tmp_path: Path) -> None:
    examples = _examples()
    fresh = tmp_path / "fresh.db"
    note10 = sorted((DATA / "ofa" / "note10").glob("*_lookup_table.yaml"))
    arch = DATA / "ofa" / "specialized" / "note10_lat-30ms_top1-78.4_finetune-75"
    pred = DATA / "ofa" / "acc_predictor.pth"
    runs = {
        "lutnas lut import --json": ["lut", "import", "--db", fresh, "--device", "note10", "--threads", "1",
                                     "--runtime", "onnxruntime", note10[0]],
        "lutnas lut list --json": ["lut", "list", "--db", db],
        "lutnas lut export --json": ["lut", "export", "--db", db, "--device", "note10", "--out", tmp_path / "n.csv"],
        "lutnas lut predict --json": ["lut", "predict", "--db", db, "--device", "note10", "--net-config", arch],
        "lutnas search --json": ["search", "--db", db, "--device", "note10", "--predictor", pred, "--latency-ms",
                                 "5,20", "--generations", "3", "--population", "20"],
        "lutnas compare --json": ["compare", "--db", db, "--device", "note10", "--device", "i7", "--subnets", "50"],
        "lutnas report --json": ["report", "--db", db, "--out", tmp_path / "report.html"],
        "lutnas predictor eval --json": [
            "predictor", "eval", "--predictor", pred, "--data", DATA / "dynast" / "mbnv3w10_linasga_acc.csv"],
        "lutnas lut copy --json": ["lut", "copy", "--from", db, "--to", tmp_path / "copy.db", "--device", "note10"],
        "lutnas lut rm --json": ["lut", "rm", "--db", db, "--device", "note10", "--yes"],
    }
    assert set(runs) == set(examples), "docs/json.md and this test must list the same commands"
    for heading, args in runs.items():
        _same_shape(invoke_json(*args), examples[heading], heading)


@pytest.mark.parametrize("bad, example", [({"a": 1}, {"a": 1, "b": 2}), ({"a": [{"x": 1}]}, {"a": [{"y": 1}]}),
                                          ({"a": {"b": 1, "c": 2}}, {"a": {"b": 1}}),
                                          ({"m": {"x": {"b": 1}}}, {"m": {"<device>": {"c": 1}}})])
def test_the_shape_check_catches_a_difference(bad: Any, example: Any) -> None:
    with pytest.raises(AssertionError):
        _same_shape(bad, example)
