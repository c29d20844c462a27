"""What a store holds, setting by setting: the facts ``lutnas lut list`` shows and ``lutnas report`` draws.

One definition for both, so the page and the command never disagree: each setting's identifying fields,
its selector, row counts, predicted (few-shot) rows, coverage per space and resolution, round spread and
calibration, plus the free-form device facts the agent reported.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from lut.schema import DeviceSetting

if TYPE_CHECKING:
    from lut.store import LutStore

__all__ = ["coverage", "list_settings", "setting_fields"]


def coverage(table: Mapping[str, float], spaces: Sequence[Any] | None = None) -> list[dict[str, Any]]:
    """Per space and begun resolution, how many of the blocks a subnet may need the table prices.

    A resolution has begun when one of its stem blocks is priced; blocks shared with other
    resolutions alone do not make it begun.

    Args:
        table: block key -> latency.
        spaces: the spaces to check (names, space files or spaces); default: every registered space.

    Returns:
        Rows ``{"space", "resolution", "blocks", "of", "complete"}`` by space, then resolution.
    """
    from lut.predict import compile_resolutions
    from space import get_space, list_spaces

    keys = set(table)
    out = []
    for item in list_spaces() if spaces is None else spaces:
        space = get_space(item)
        name = space.name
        # The resolutions a compiled LUT would hold, without compiling one per space (5 spaces: ~0.2 s).
        for r in compile_resolutions(table, space, None):
            stem, _ = space.stem_blocks(r)
            if not any(b.key in keys for b in stem):
                continue
            need = {b.key for b in space.unique_blocks([r])}
            have = len(need & keys)
            out.append({"space": name, "resolution": r, "blocks": have, "of": len(need), "complete": have == len(need)})
    return out


def setting_fields(setting: DeviceSetting) -> dict[str, Any]:
    """A device setting for JSON: ``device`` names it, unknown fields are null (tables show "-")."""
    doc = setting.to_dict()
    out = {"device": doc.pop("name")}
    for key, value in doc.items():
        out[key] = None if value in ("", 0) and key != "precision" else value
    return out


def list_settings(store: LutStore) -> list[dict[str, Any]]:
    """Every setting of ``store`` as ``lutnas lut list --json`` lists it (its ``devices``), in id order."""
    from lut.calibration import Calibration
    from lut.repeatability import spread_pct, stored_round_spread
    from lut.selectors import selector_for
    from lut.transfer import predicted_rows

    from lut.spaces import recorded_spaces
    from space import list_spaces

    counts = store.count_rows()
    settings = store.settings()
    out = []
    for s in settings:
        rows = _own_rows(s, coverage(store.table(s.id), [*list_spaces(), *recorded_spaces([s])]))  # a user's space too
        complete: dict[str, list[int]] = {}
        for row in rows:
            if row["complete"]:
                complete.setdefault(row["space"], []).append(row["resolution"])
        cal = Calibration.from_store(store, s.id)
        few_shot = predicted_rows(store, s)
        out.append({"id": s.id, **setting_fields(s.setting), "selector": selector_for(s, settings),
                    "rows": counts.get(s.id, 0),
                    "predicted_rows": few_shot.predicted if few_shot else 0,
                    "expected_error_pct": few_shot.cv_error_pct if few_shot else None,
                    "failed_blocks": len(store.failures(s.id)), "resolutions": complete, "coverage": rows,
                    "round_spread_pct": spread_pct(stored_round_spread(store, s)),
                    "calibration": cal.kind if cal is not None else None, "info": s.info})
    return out


def _own_rows(stored: Any, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Leave out the partial rows of spaces the setting was not profiled for, when the store recorded which
    it was: a user's space shares its stem with a built-in one, and "1 of 96" of that one is noise."""
    recorded = stored.recorded_spaces
    if not recorded:
        return rows  # imported or older LUTs: no record, every begun space is listed
    return [r for r in rows if r["space"] in recorded or r["complete"]]
