"""Evaluating subnets: extract, recalibrate BN on training images, measure top-1 on held-out images."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from space import Subnet
from supernet._family import activate_arch, subnet_counts
from supernet.bn_calibration import recalibrate_bn
from supernet.data import ImageDataset, iter_batches
from supernet.ofa_mbv3 import OFAMobileNetV3
from supernet.presets import DEFAULT_CALIB_IMAGES
from supernet.quantize import check_precision, fake_quantize_int8
from supernet.static_subnet import MobileNetV3

__all__ = ["DEFAULT_CALIB_IMAGES", "SubnetResult", "calibrated_subnet", "evaluate_subnet", "top1_accuracy"]

logger = logging.getLogger(__name__)



@dataclass(frozen=True)
class SubnetResult:
    """One evaluated subnet."""

    arch: dict[str, Any]  # OFA arch dict, r included
    accuracy: float  # top-1 in percent on the held-out images
    macs: int  # multiply-accumulates at r
    params: int  # learnable parameters
    precision: str = "fp32"  # the arithmetic the accuracy was measured in ("fp32" or "int8")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON."""
        return {
            "arch": self.arch,
            "accuracy": self.accuracy,
            "macs": self.macs,
            "params": self.params,
            "precision": self.precision,
        }


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
    device = _device_of(model)
    correct = 0
    for x, y in iter_batches(data, batch_size, resolution):
        correct += int((model(x.to(device)).argmax(dim=1).cpu() == y).sum())
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
    _, r = activate_arch(net, arch)
    subnet = net.get_active_subnet()
    recalibrate_bn(subnet, _calibration_batches(calib_data, calib_images, batch_size, r, seed, _device_of(net)))
    return subnet


def _calibration_batches(
    data: ImageDataset, n_images: int, batch_size: int, resolution: int, seed: int, device: torch.device
) -> Iterator[torch.Tensor]:
    # The same ``seed`` picks the same images, for BN recalibration and int8 calibration alike.
    rng = np.random.default_rng(seed)
    subset = data.subset(rng.choice(len(data), size=min(n_images, len(data)), replace=False))
    return (x.to(device) for x, _ in iter_batches(subset, batch_size, resolution))


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def evaluate_subnet(
    net: OFAMobileNetV3,
    arch: Mapping[str, Any] | Subnet,
    calib_data: ImageDataset,
    eval_data: ImageDataset,
    calib_images: int = DEFAULT_CALIB_IMAGES,
    batch_size: int = 256,
    seed: int = 0,
    precision: str = "fp32",
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
        precision: ``fp32``, or ``int8`` to measure the subnet fake-quantized (calibrated on the same
            images as its batch norm; see :mod:`supernet.quantize`).

    Raises:
        ValueError: an arch outside the supernet, or an unknown precision.
    """
    check_precision(precision)
    canonical, r = activate_arch(net, arch)
    calib_batch = min(batch_size, 128)
    subnet: nn.Module = calibrated_subnet(net, canonical, calib_data, calib_images, calib_batch, seed)
    if precision == "int8":
        batches = _calibration_batches(calib_data, calib_images, calib_batch, r, seed, _device_of(subnet))
        subnet = fake_quantize_int8(subnet, batches)
    accuracy = top1_accuracy(subnet, eval_data, r, batch_size)
    macs, params = subnet_counts(net, canonical)
    return SubnetResult(arch=canonical, accuracy=accuracy, macs=macs, params=params, precision=precision)
