"""Row keys of a LUT: a block key, or a block key qualified by the resolution it was timed for.

OFA's per-resolution yaml files time some blocks in several files: the head's feature mix and
classifier in every file, and the blocks two resolutions share (r=176 and r=192 both end at 6x6)
in each of those files, each time with a slightly different value. OFA prices a subnet from the
file of its own resolution. An OFA yaml import keeps every one of those values: the plain key's
row holds the highest resolution's value, and each other file's value is a row keyed
``<block key>@r<R>`` (e.g. ``Logits-input:1x1x1536-output:1000@r160``). A subnet at resolution R
is priced with the ``@rR`` row where there is one, else with the plain row, so predictions equal
OFA's own at every resolution; an ofa-yaml export writes each value back into its own file.
Profiled LUTs time each block once and have no qualified rows.
"""

from __future__ import annotations

from space import Block
from space.search_space import MAX_RESOLUTION, MIN_RESOLUTION

__all__ = ["RESOLUTION_QUALIFIER", "qualified_key", "split_row_key", "check_row_key"]

RESOLUTION_QUALIFIER = "@r"


def qualified_key(block_key: str, resolution: int) -> str:
    """The row key of ``block_key``'s value at ``resolution``: ``<block key>@r<resolution>``."""
    return f"{block_key}{RESOLUTION_QUALIFIER}{int(resolution)}"


def split_row_key(row_key: str) -> tuple[str, int | None]:
    """``(block key, resolution)`` of a qualified row key; ``(row_key, None)`` for a plain one.

    Raises:
        ValueError: the qualifier is not ``@r`` and an int in the supported resolution range.
    """
    block_key, sep, tail = row_key.rpartition(RESOLUTION_QUALIFIER)
    if not sep:
        return row_key, None
    if not tail.isdigit() or not MIN_RESOLUTION <= int(tail) <= MAX_RESOLUTION:
        raise ValueError(f"row key {row_key!r}: the qualifier must be {RESOLUTION_QUALIFIER}<resolution in "
                         f"[{MIN_RESOLUTION}, {MAX_RESOLUTION}]>, got {sep + tail!r}")
    return block_key, int(tail)


def check_row_key(row_key: str) -> str:
    """``row_key`` when it is an OFA block key, plain or resolution-qualified; ValueError naming it otherwise."""
    block_key, _ = split_row_key(row_key)
    Block.from_key(block_key)
    return row_key
