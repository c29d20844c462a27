"""One way to build a supernet of any family from its name: ``build_supernet("ofa-proxyless", n_classes=10)``."""

from __future__ import annotations

from torch import nn

from supernet.ofa_mbv3 import OFAMobileNetV3
from supernet.ofa_proxyless import OFAProxylessNASNets
from supernet.ofa_resnet import OFAResNets
from supernet.presets import SmallDataPreset, check_family

__all__ = ["build_supernet", "preset_supernet"]


def build_supernet(family: str = "ofa-mbv3", *, width_mult: float | None = None, n_classes: int = 1000) -> nn.Module:
    """An untrained supernet of a family with OFA's elastic choices.

    Args:
        family: One of :data:`supernet.presets.FAMILIES`.
        width_mult: Channel multiplier; None means the width OFA released (MobileNetV3 1.0, ProxylessNAS 1.3,
            ResNet50 1.0, under its elastic widths).
        n_classes: Classifier outputs.

    Raises:
        ValueError: The family is unknown.
    """
    if check_family(family) == "ofa-mbv3":
        return OFAMobileNetV3(width_mult=1.0 if width_mult is None else width_mult, n_classes=n_classes)
    if family == "ofa-proxyless":
        return OFAProxylessNASNets(width_mult=1.3 if width_mult is None else width_mult, n_classes=n_classes)
    return OFAResNets(width_mult=1.0 if width_mult is None else width_mult, n_classes=n_classes)


def preset_supernet(preset: SmallDataPreset, n_classes: int) -> nn.Module:
    """The untrained supernet a small-data preset trains (its family at its width)."""
    return build_supernet(preset.family, width_mult=preset.width_mult, n_classes=n_classes)
