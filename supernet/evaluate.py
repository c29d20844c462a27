"""Evaluating subnets: extract, recalibrate BN on training images, measure top-1 on held-out images."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from space import Subnet
from supernet.bn_calibration import recalibrate_bn
from supernet.complexity import subnet_complexity
from supernet.data import ImageDataset, iter_batches
from supernet.ofa_mbv3 import OFAMobileNetV3
from supernet.static_subnet import MobileNetV3

__all__ = ["DEFAULT_CALIB_IMAGES", "SubnetResult", "calibrated_subnet", "evaluate_subnet", "top1_accuracy"]

logger = logging.getLogger(__name__)

# Training images used to re-estimate a subnet's BN statistics (OFA uses 2,000 on ImageNet).
DEFAULT_CALIB_IMAGES = 512


@dataclass(frozen=True)
class SubnetResult:
    """One evaluated subnet."""

    arch: dict[str, Any]  # OFA arch dict, r included
    accuracy: float  # top-1 in percent on the held-out images
    macs: int  # multiply-accumulates at r
    params: int  # learnable parameters

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON."""
        return {"arch": self.arch, "accuracy": self.accuracy, "macs": self.macs, "params": self.params}


@torch.no_grad()
def top1_accuracy(model: nn.Module, data: ImageDataset, resolution: int, batch_size: int = 256) -> float:
    """Top-1 accuracy in percent of ``model`` (eval mode) on ``data`` at ``resolution``.

    Raises:
        ValueError: ``data`` is empty.
    """
    if len(data) == 0:
        raise ValueError("cannot measure accuracy on an empty dataset")
    was_training = model.training
    model.eval()
    correct = 0
    for x, y in iter_batches(data, batch_size, resolution):
        correct += int((model(x).argmax(dim=1) == y).sum())
    model.train(was_training)
    return 100.0 * correct / len(data)


def calibrated_subnet(
    net: OFAMobileNetV3,
    arch: Mapping[str, Any] | Subnet,
    calib_data: ImageDataset,
    calib_images: int = DEFAULT_CALIB_IMAGES,
    batch_size: int = 128,
    seed: int = 0,
) -> MobileNetV3:
    """Extract ``arch`` from ``net`` and re-estimate its BN statistics on ``calib_images`` images.

    The supernet's weights and statistics are not changed (its active subnet is).

    Args:
        net: the supernet.
        arch: the subnet, ``r`` included (the calibration resolution).
        calib_data: images to calibrate on (training images).
        calib_images: how many of them, drawn with ``seed``.
        batch_size: calibration batch size.
        seed: picks the calibration images.
    """
    sub = Subnet.parse(arch)
    net.set_active_subnet(sub)
    subnet = net.get_active_subnet()
    rng = np.random.default_rng(seed)
    n = min(calib_images, len(calib_data))
    subset = calib_data.subset(rng.choice(len(calib_data), size=n, replace=False))
    recalibrate_bn(subnet, (x for x, _ in iter_batches(subset, batch_size, sub.r)))
    return subnet


def evaluate_subnet(
    net: OFAMobileNetV3,
    arch: Mapping[str, Any] | Subnet,
    calib_data: ImageDataset,
    eval_data: ImageDataset,
    calib_images: int = DEFAULT_CALIB_IMAGES,
    batch_size: int = 256,
    seed: int = 0,
) -> SubnetResult:
    """Accuracy, MACs and parameters of one subnet after BN recalibration.

    Args:
        net: the supernet.
        arch: the subnet (``r`` is the evaluation resolution).
        calib_data: training images for BN recalibration.
        eval_data: held-out images to measure on.
        calib_images: calibration images.
        batch_size: batch size for calibration and evaluation.
        seed: picks the calibration images.
    """
    sub = Subnet.parse(arch)
    subnet = calibrated_subnet(net, sub, calib_data, calib_images, min(batch_size, 128), seed)
    accuracy = top1_accuracy(subnet, eval_data, sub.r, batch_size)
    macs, params = subnet_complexity(net.config, sub)
    return SubnetResult(arch=sub.to_arch(), accuracy=accuracy, macs=macs, params=params)
