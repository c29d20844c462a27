"""A setting remembers the spaces its rows were profiled for (a user's space as its whole document), and readers
pick a recorded space up without its file."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from lut import DeviceSetting, LutStore
from lut.manage import copy_luts, resolve_space, store_space
from lut.spaces import recorded_spaces
from space import get_space, space_from_dict, space_to_dict

OWN = {"name": "own", "kind": "mbconv", "n_classes": 10, "resolutions": [32],
       "choices": {"ks": [3, 5], "e": [3], "d": [1, 2]},
       "stem": {"first_conv": {"width": 8, "act": "relu6"}, "first_block": {"width": 8, "act": "relu6"}},
       "stages": [{"width": 16, "stride": 2, "act": "relu6", "se": False},
                  {"width": 24, "stride": 2, "act": "h_swish", "se": True}],
       "head": {"final_expand": {"width": 64, "act": "h_swish"}}}
SETTING = DeviceSetting("cpu", "onnxruntime", "1.0", threads=1)


def _store(path: Path | str, space: object, resolution: int) -> int:
    """A store whose ``cpu`` setting prices every block of ``space`` at ``resolution`` (1 ms each)."""
    with LutStore(path) as store:
        sid, _ = store.import_rows(SETTING, [(b.key, {"median_ms": 1.0}, {})
                                             for b in get_space(space).unique_blocks([resolution])])
        return sid


def test_record_space_keeps_every_space_noted_and_travels_with_a_copy(store_url: str, tmp_path: Path) -> None:
    db = store_url  # SQLite and PostgreSQL
    sid = _store(db, space_from_dict(OWN), 32)
    with LutStore(db) as store:
        store.record_space(sid, "own", space_to_dict(space_from_dict(OWN)))
        store.record_space(sid, "ofa-mbv3-w0.25")
        assert set(store.setting(sid).info["spaces"]) == {"own", "ofa-mbv3-w0.25"}
    copy_luts(db, tmp_path / "copy.db")
    with LutStore(tmp_path / "copy.db") as store:
        (own,) = recorded_spaces(store.settings())  # registered names need no document
        assert own == space_from_dict(OWN)


def test_readers_choose_a_recorded_space_or_name_what_they_cannot_read(tmp_path: Path,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    db = tmp_path / "lut.db"
    sid = _store(db, space_from_dict(OWN), 32)
    with LutStore(db) as store:
        stored = {"cpu": store.setting(sid)}
        assert store_space(store, stored, [], None) != "own"  # nothing recorded: its name is registered nowhere
        store.record_space(sid, "own", space_to_dict(space_from_dict(OWN)))
        stored = {"cpu": store.setting(sid)}
        assert store_space(store, stored, [], None) == "own"
        assert resolve_space("own", stored.values()) == space_from_dict(OWN)
        damaged = {**OWN, "stages": "none"}
        store.record_space(sid, "own", damaged)
        with caplog.at_level(logging.WARNING, logger="lut.spaces"):
            assert recorded_spaces([store.setting(sid)]) == []
        assert "stages must be a non-empty list of stages" in caplog.text


@pytest.mark.parametrize("name", ["ofa-mbv3-w1.2", "ofa-proxyless-w1.3", "ofa-resnet50", "ofa-mbv3-w0.25"])
def test_space_to_dict_builds_the_same_space(name: str) -> None:
    space = get_space(name)
    doc = space_to_dict(space)
    assert space_from_dict(json.loads(json.dumps(doc))) == space
    assert space_from_dict(space_to_dict(space_from_dict(OWN))) == space_from_dict(OWN)


def test_listing_leaves_out_partial_spaces_the_setting_was_not_profiled_for(tmp_path: Path) -> None:
    from lut.listing import list_settings

    db = tmp_path / "lut.db"
    sid = _store(db, space_from_dict(OWN), 32)
    with LutStore(db) as store:
        before = {r["space"] for r in list_settings(store)[0]["coverage"]}
        store.record_space(sid, "own", space_to_dict(space_from_dict(OWN)))
        rows = list_settings(store)[0]["coverage"]
    # Unrecorded, the user's space is unknown and a built-in one sharing its stem shows as begun.
    assert "own" not in before and before
    assert [(r["space"], r["resolution"], r["complete"]) for r in rows] == [("own", 32, True)]
