"""What differs between the supernet families where training, collection and extraction meet them.

A family is one of :data:`supernet.presets.FAMILIES`. Every supernet class has the same elastic interface
(``config``, ``set_active_subnet(arch)``, ``active_arch``, ``get_active_subnet``, ``set_max_net``); what this
module adds is the rest: rebuilding a supernet from its stored config, the registered search space its subnets
belong to, reading an arch dict of its family, and MACs and parameters of a subnet.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from space import Subnet, get_space, list_spaces, make_divisible
from space.counts import block_macs, block_params
from supernet.ofa_mbv3 import STAGE_ACTS, STAGE_SE, STAGE_STRIDES, OFAMobileNetV3, SupernetConfig
from supernet.ofa_proxyless import OFAProxylessNASNets, ProxylessSupernetConfig
from supernet.ofa_resnet import OFAResNets, ResNetSupernetConfig
from supernet.presets import check_family

__all__ = [
    "AnyConfig",
    "activate_arch",
    "block_model",
    "config_family",
    "config_from_dict",
    "net_from_config",
    "search_space_name",
    "subnet_counts",
]

AnyConfig = SupernetConfig | ProxylessSupernetConfig | ResNetSupernetConfig

_CLASSES: dict[str, tuple[type, type]] = {
    "ofa-mbv3": (SupernetConfig, OFAMobileNetV3),
    "ofa-proxyless": (ProxylessSupernetConfig, OFAProxylessNASNets),
    "ofa-resnet50": (ResNetSupernetConfig, OFAResNets),
}


def config_family(config: AnyConfig) -> str:
    """The family a supernet config belongs to."""
    for family, (config_cls, _) in _CLASSES.items():
        if isinstance(config, config_cls):
            return family
    raise ValueError(f"config must be a supernet config, got {type(config).__name__}")


def config_from_dict(family: str, data: Mapping[str, Any]) -> AnyConfig:
    """The config of ``family`` stored as ``data`` (a checkpoint's ``config``).

    Raises:
        ValueError: an unknown family or config keys.
    """
    return _CLASSES[check_family(family)][0].from_dict(data)


def net_from_config(config: AnyConfig) -> nn.Module:
    """An untrained supernet built from its config."""
    return _CLASSES[config_family(config)][1].from_config(config)


def search_space_name(config: AnyConfig) -> str | None:
    """The registered search space whose subnets this supernet's are: its family, widths, choices and classes
    (None when no registered space has them)."""
    family = config_family(config)
    for name in list_spaces():
        space = get_space(name)
        if space.family == family and space.n_classes == config.n_classes and _same_space(config, space):
            return name
    return None


def _same_space(config: AnyConfig, space: Any) -> bool:
    if isinstance(config, ResNetSupernetConfig):
        return (space.width_mult == config.width_mult
                and tuple(config.depth_list) == tuple(space.depth_choices)
                and _floats(config.expand_ratio_list) == _floats(space.expand_choices)
                and _floats(config.width_mult_list) == _floats(space.width_choices))
    widths = tuple(make_divisible(w * config.width_mult, 8) for w in config.base_stage_width)
    if isinstance(config, SupernetConfig):
        layout = (widths == (space.first_conv_chs, space.first_block_chs, *space.stage_chs, space.final_expand_chs,
                             space.feature_mix_chs)
                  and (STAGE_STRIDES, STAGE_ACTS, STAGE_SE) == (space.stage_strides, space.stage_acts, space.stage_se))
    else:  # ProxylessNAS: the last width is the feature mix, which the space calls its final expand
        layout = widths == (space.first_conv_chs, space.first_block_chs, *space.stage_chs, space.final_expand_chs)
    return (layout and tuple(config.ks_list) == tuple(space.ks_choices)
            and _floats(config.expand_ratio_list) == _floats(space.expand_choices)
            and tuple(config.depth_list) == tuple(space.depth_choices))


def _floats(values: Any) -> tuple[float, ...]:
    return tuple(float(v) for v in values)


def activate_arch(net: nn.Module, arch: Mapping[str, Any] | Subnet) -> tuple[dict[str, Any], int]:
    """Make ``arch`` (``r`` required) the supernet's active subnet; returns its canonical arch dict and ``r``.

    Raises:
        ValueError: the arch lies outside the supernet or has no ``r``.
    """
    if isinstance(net, OFAMobileNetV3):
        sub = Subnet.parse(arch)
        net.set_active_subnet(sub)
        return sub.to_arch(), sub.r
    if isinstance(arch, Subnet):
        arch = arch.to_arch()
    if not isinstance(arch, Mapping) or "r" not in arch:
        raise ValueError(f"arch must be a dict with an 'r', got {str(arch)[:200]}")
    net.set_active_subnet(dict(arch))
    canonical = net.active_arch()
    return canonical, int(canonical["r"])


def subnet_counts(net: nn.Module, arch: Mapping[str, Any], space: Any = None) -> tuple[int, int]:
    """MACs at ``arch['r']`` and parameters of one subnet (the arch canonical, as :func:`activate_arch` gives).

    Counted from the space's blocks when the supernet has a registered space (exactly the extracted network's
    counts), else from the extracted network itself.
    """
    if isinstance(net, OFAMobileNetV3):
        from supernet.complexity import subnet_complexity

        return subnet_complexity(net.config, arch)
    if space is None:
        name = search_space_name(net.config)
        space = get_space(name) if name else None
    if space is not None:
        blocks = space.blocks(arch)
        return sum(block_macs(b) for b in blocks), sum(block_params(b) for b in blocks)
    from supernet.complexity import count_module_macs, count_parameters

    activate_arch(net, arch)
    subnet = net.get_active_subnet()
    return count_module_macs(subnet, int(arch["r"])), count_parameters(subnet)


def block_model(subnet: nn.Module, resolution: int) -> Any:
    """A static subnet of any family as the profiler's exporters take it: its own layers in run order, paired
    with the blocks of its ``net.config`` at ``resolution`` (nothing is copied)."""
    from layers import Classifier, MaxPool, SubnetModel
    from space import read_net_config

    if hasattr(subnet, "block_model"):  # MobileNetV3
        return subnet.block_model(resolution)
    blocks = read_net_config(subnet.config, resolution=resolution)
    # The Logits block pools the map it is keyed by; the static network pools before its classifier.
    head = Classifier(subnet.classifier.in_chs, subnet.classifier.out_chs, pool=True)
    head.linear = subnet.classifier.linear
    if hasattr(subnet, "input_stem"):  # ResNet50
        layers = [*subnet.input_stem, MaxPool(3, 2), *subnet.blocks, head]
    else:  # ProxylessNAS: its feature mix is the space's final expand
        layers = [subnet.first_conv, *subnet.blocks, subnet.feature_mix_layer, head]
    return SubnetModel(blocks, layers).eval()
