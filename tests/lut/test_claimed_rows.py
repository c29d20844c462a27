"""A row timed under a work lease never replaces another host's row (a host back from a lost store link)."""

from __future__ import annotations

import pytest

from lut import LutStore
from lut.schema import DeviceSetting

KEY = "Conv-input:128x128x3-output:64x64x16"
SETTING = DeviceSetting(name="board", runtime="sleep", runtime_version="1", threads=1, precision="fp32",
                        model_format="json")


def _prov(host: str) -> dict:
    return {"extra": {"agent": "10.0.0.1:50051", "host": host}}


def test_first_host_row_stays_and_own_rows_are_replaced(store_url: str) -> None:
    with LutStore(store_url) as store:
        sid = store.ensure_setting(SETTING)
        store.seed_work(sid, [KEY])
        assert store.claim_work(sid, "b", [KEY], 1, 60.0)[0] == [KEY]  # B took the block over
        assert store.put_claimed_row(sid, KEY, {"median_ms": 2.0}, _prov("b"), holder="b")
        assert not store.put_claimed_row(sid, KEY, {"median_ms": 9.0}, _prov("a"), holder="a")  # A's late result
        assert store.table(sid) == {KEY: 2.0}
        assert store.put_claimed_row(sid, KEY, {"median_ms": 3.0}, _prov("b"), holder="b")  # B re-times its own
        assert store.table(sid) == {KEY: 3.0}
        assert store.lease_holders(sid) == []  # the block's lease went with the first row
        rows = store.rows(sid)
        assert len(rows) == 1


def test_predicted_row_is_replaced_and_the_host_must_be_named(store_url: str) -> None:
    with LutStore(store_url) as store:
        sid = store.ensure_setting(SETTING)
        store.put_row(sid, KEY, {"median_ms": 5.0}, {"source": "predicted"})
        assert store.put_claimed_row(sid, KEY, {"median_ms": 2.5}, _prov("a"), holder="a")
        assert store.table(sid) == {KEY: 2.5}
        with pytest.raises(ValueError, match="extra\\['host'\\] must be the holder 'a', got 'b'"):
            store.put_claimed_row(sid, KEY, {"median_ms": 1.0}, _prov("b"), holder="a")
