"""The vocabulary: search spaces, subnets, blocks and their OFA LUT keys.

Pure Python + numpy so it loads on boards and phones.
"""

from space.batch import Genome, SubnetBatch
from space.block import ACTIVATIONS, BLOCK_KINDS, Block
from space.net_config import load_net_config, read_net_config
from space.registry import DEFAULT_SPACE, get_space, list_spaces
from space.search_space import SE_REDUCTION, SearchSpace, active_mask, describe_resolutions, make_divisible, se_mid_chs
from space.subnet import ArchLike, Subnet

__all__ = [
    "ACTIVATIONS",
    "BLOCK_KINDS",
    "DEFAULT_SPACE",
    "SE_REDUCTION",
    "ArchLike",
    "Block",
    "Genome",
    "SearchSpace",
    "Subnet",
    "SubnetBatch",
    "active_mask",
    "blocks",
    "describe_resolutions",
    "get_space",
    "list_spaces",
    "load_net_config",
    "make_divisible",
    "read_net_config",
    "se_mid_chs",
]


def blocks(subnet: ArchLike | Subnet, space: str | SearchSpace = DEFAULT_SPACE) -> list[Block]:
    """The ordered blocks ``subnet`` runs in ``space`` (default ofa-mbv3-w1.2)."""
    return get_space(space).blocks(subnet)
