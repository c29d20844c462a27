"""The vocabulary: search spaces, subnets, blocks and their LUT keys.

Spaces are data (:mod:`space.spec`): OFA's MobileNetV3, ProxylessNAS and ResNet50 families are built-in
space files, and a user's own file loads the same way. Pure Python + numpy so it loads on boards and phones.
"""

from space.batch import Genome, SubnetBatch
from space.block import ACTIVATIONS, BLOCK_KINDS, Block
from space.net_config import load_net_config, net_config_family, read_net_config
from space.registry import DEFAULT_SPACE, get_space, list_spaces
from space.resnet_space import ResNetSpace, ResNetSubnet
from space.search_space import SE_REDUCTION, SearchSpace, active_mask, describe_resolutions, make_divisible, se_mid_chs
from space.spec import SPACE_FILE_SUFFIXES, AnySpace, load_space_file, space_from_dict, space_to_dict
from space.subnet import ArchLike, Subnet

__all__ = [
    "ACTIVATIONS",
    "AnySpace",
    "BLOCK_KINDS",
    "DEFAULT_SPACE",
    "SE_REDUCTION",
    "SPACE_FILE_SUFFIXES",
    "ArchLike",
    "Block",
    "Genome",
    "ResNetSpace",
    "ResNetSubnet",
    "SearchSpace",
    "Subnet",
    "SubnetBatch",
    "active_mask",
    "blocks",
    "describe_resolutions",
    "get_space",
    "list_spaces",
    "load_space_file",
    "load_net_config",
    "make_divisible",
    "net_config_family",
    "read_net_config",
    "se_mid_chs",
    "space_from_dict",
    "space_to_dict",
]


def blocks(subnet: ArchLike | Subnet | ResNetSubnet, space: str | AnySpace = DEFAULT_SPACE) -> list[Block]:
    """The ordered blocks ``subnet`` (the family's arch dict) runs in ``space`` (default ofa-mbv3-w1.2)."""
    return get_space(space).blocks(subnet)
