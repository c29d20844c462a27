"""How far the readings of one block agree: the round spread of a profile timed in several rounds.

``lutnas profile --rounds N`` times every block once per round and stores each round's median in the
row's ``extra["round_medians_ms"]`` (the row keeps the lowest). How far a block's slowest round is above
its fastest tells how steady the device's timing was while the LUT was made: a LUT handed to someone
carries this noise in every row, and no later step can take it out.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lut.store import LutStore, StoredSetting

__all__ = ["ROUND_MEDIANS", "round_spread", "spread_pct", "stored_round_spread"]

ROUND_MEDIANS = "round_medians_ms"  # the key of a row's extra that holds its round medians


def round_spread(round_medians: Iterable[Sequence[float]]) -> float | None:
    """Median over blocks of (slowest round median / fastest - 1); blocks read once, or at 0 ms, are skipped.

    Returns None when no block has two readings. With more rounds the spread grows (the slowest of N
    readings), so compare profiles made with the same number of rounds.
    """
    ratios = [max(m) / min(m) for m in round_medians if len(m) > 1 and min(m) > 0]
    return statistics.median(ratios) - 1.0 if ratios else None


def spread_pct(spread: float | None) -> float | None:
    """A round spread as JSON reports carry it (``round_spread_pct``): percent, two decimals; None stays None."""
    return None if spread is None else round(100 * spread, 2)


def stored_round_spread(store: LutStore, setting: int | str | StoredSetting) -> float | None:
    """:func:`round_spread` over a stored setting's rows (None: no row was timed in several rounds)."""
    extras = store.rows(setting)["extra"]
    medians = []
    for text in extras:
        if ROUND_MEDIANS in text:  # most rows of a one-round profile: skip the JSON parse
            value = json.loads(text).get(ROUND_MEDIANS)
            if isinstance(value, list) and all(isinstance(v, (int, float)) for v in value):
                medians.append([float(v) for v in value])
    return round_spread(medians)
