"""Default settings for small-data runs (the built-in digits set, or a small image folder on a CPU).

Torch-free, so the command line can show these defaults without importing torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = [
    "DEFAULT_CALIB_IMAGES",
    "DIGITS_PRESET",
    "DIGITS_PRESETS",
    "FAMILIES",
    "PROXYLESS_DIGITS_PRESET",
    "RESNET_DIGITS_PRESET",
    "SmallDataPreset",
    "check_family",
    "digits_preset",
]

# Training images used to re-estimate a subnet's BN statistics (OFA uses 2,000 on ImageNet).
DEFAULT_CALIB_IMAGES = 512


@dataclass(frozen=True)
class SmallDataPreset:
    """Sizes that let a whole progressive-shrinking run finish in minutes on two CPU cores."""

    width_mult: float = 0.25  # a quarter of the family's widths (same space: MobileNetV3's 20 slots, k 3/5/7, e 3/4/6)
    resolutions: tuple[int, ...] = (12, 16)  # train and sample at these sides
    batch_size: int = 32  # images per step
    epochs: tuple[int, ...] = (6, 1, 1, 1, 1, 1, 1)  # full (a good teacher matters), kernel ×2, depth ×2, expand ×2
    full_lr: float = 0.2  # peak learning rate of the full-network phase
    lr: float = 0.05  # peak learning rate of the shrinking phases
    subnets_per_step: int = 2  # subnets per batch in the shrinking phases
    kd_ratio: float = 1.0  # distillation weight
    holdout_fraction: float = 0.2  # share of images held out for evaluation
    split_seed: int = 0  # seeds the train/held-out split
    image_size: int = 32  # side ImageFolder images are stored at
    family: str = "ofa-mbv3"  # supernet family, one of FAMILIES; width_mult scales that family's widths


#: Supernet families: OFA's MobileNetV3, ProxylessNAS (``supernet.OFAProxylessNASNets``) and ResNet50
#: (``supernet.OFAResNets``).
FAMILIES: tuple[str, ...] = ("ofa-mbv3", "ofa-proxyless", "ofa-resnet50")

DIGITS_PRESET = SmallDataPreset()

#: OFA's ProxylessNAS space (21 slots, kernels 3/5/7, expand 3/4/6, depth 2/3/4) at a quarter of w1.0's widths;
#: its stride-32 body ends at 1x1 at r=16, as the MobileNetV3 preset's does.
PROXYLESS_DIGITS_PRESET = SmallDataPreset(family="ofa-proxyless")

#: OFA's ResNet50 space (depth 0/1/2, expand 0.2/0.25/0.35, width 0.65/0.8/1.0) at a quarter of its widths
#: (stage outputs up to 64..512). The stem (stride 2 and a 3x3/2 max pool) and three strided stages also reach
#: 1x1 at r=16; r=12 ends the same way through ceil-mode pooling. Its elastic dimensions have no kernel, so a
#: trainer's kernel phases have nothing to shrink.
RESNET_DIGITS_PRESET = SmallDataPreset(family="ofa-resnet50")

#: The digits-scale preset of each family (read-only).
DIGITS_PRESETS: Mapping[str, SmallDataPreset] = MappingProxyType(
    {
        "ofa-mbv3": DIGITS_PRESET,
        "ofa-proxyless": PROXYLESS_DIGITS_PRESET,
        "ofa-resnet50": RESNET_DIGITS_PRESET,
    }
)


def check_family(family: str) -> str:
    """``family`` if it is one of :data:`FAMILIES`.

    Raises:
        ValueError: ``"family must be one of ofa-mbv3, ofa-proxyless, ofa-resnet50, got 'x'"``.
    """
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {', '.join(FAMILIES)}, got {family!r}")
    return family


def digits_preset(family: str = "ofa-mbv3") -> SmallDataPreset:
    """The digits-scale preset of a supernet family.

    Raises:
        ValueError: the family is unknown.
    """
    return DIGITS_PRESETS[check_family(family)]
