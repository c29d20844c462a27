"""Every block of both spaces at every resolution round-trips through its OFA key."""

from __future__ import annotations

import pytest

from space import Block, get_space

# The spaces' own resolutions and the nsganetv2 LUT's (96..256 step 4).
RESOLUTIONS = sorted(set(range(96, 257, 4)) | set(get_space("ofa-mbv3-w1.2").resolutions))


@pytest.mark.parametrize("space_name", ["ofa-mbv3-w1.0", "ofa-mbv3-w1.2"])
def test_key_round_trip_every_block(space_name: str) -> None:
    space = get_space(space_name)
    seen = 0
    for r in RESOLUTIONS:
        for block in space.unique_blocks(r):
            assert Block.from_key(block.key) == block, block.key
            seen += 1
    assert seen == len(RESOLUTIONS) * 96  # stem 2 + 5 stages x (9 first-slot + 9 repeated-slot blocks) + head 4
