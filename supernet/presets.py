"""Default settings for small-data runs (the built-in digits set, or a small image folder on a CPU).

Torch-free, so the command line can show these defaults without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_CALIB_IMAGES", "DIGITS_PRESET", "SmallDataPreset"]

# Training images used to re-estimate a subnet's BN statistics (OFA uses 2,000 on ImageNet).
DEFAULT_CALIB_IMAGES = 512


@dataclass(frozen=True)
class SmallDataPreset:
    """Sizes that let a whole progressive-shrinking run finish in minutes on two CPU cores."""

    width_mult: float = 0.25  # narrow OFA-MobileNetV3 (same 20-slot space, kernels 3/5/7, expand 3/4/6)
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


DIGITS_PRESET = SmallDataPreset()
