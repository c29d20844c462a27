"""int8 accuracy collection: fake-quantized subnets compute close to their float selves, and the CSV says int8."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from torch import nn

from supernet import OFAMobileNetV3, collect_accuracy_data, load_digits_dataset, read_accuracy_csv, split_dataset
from supernet import write_accuracy_csv
from supernet.evaluate import calibrated_subnet
from supernet.quantize import fake_quantize_int8

ARCH = {"ks": [3, 5, 7, 3] * 5, "e": [3, 4, 6, 3] * 5, "d": [2, 3, 4, 2, 3], "r": 16}


@pytest.fixture(scope="module")
def digits():
    train, held = split_dataset(load_digits_dataset(), 0.2, seed=0)
    return train.subset(np.arange(256)), held.subset(np.arange(64))


def test_fake_quantized_subnet_is_close_and_on_the_int8_grid(digits) -> None:
    train, _ = digits
    torch.manual_seed(0)
    net = OFAMobileNetV3(width_mult=0.25, n_classes=10).eval()
    subnet = calibrated_subnet(net, ARCH, train, calib_images=64)
    x = torch.nn.functional.interpolate(train.images[:32], size=(16, 16), mode="bilinear")
    before = {k: v.clone() for k, v in subnet.state_dict().items()}
    quantized = fake_quantize_int8(subnet, [x[:16], x[16:]])
    assert all(torch.equal(v, subnet.state_dict()[k]) for k, v in before.items())  # the float subnet is unchanged
    assert not any(isinstance(m, nn.BatchNorm2d) for m in quantized.modules())  # folded into the convolutions
    conv = next(m for m in quantized.modules() if isinstance(m, nn.Conv2d) and m.weight.shape[1] > 1)
    flat = conv.weight.detach().reshape(conv.weight.shape[0], -1)
    steps = flat / (flat.abs().amax(dim=1, keepdim=True) / 127)
    torch.testing.assert_close(steps, steps.round(), rtol=0, atol=1e-3)  # 255 signed levels per channel
    with torch.no_grad():
        want, got = subnet(x), quantized(x)
    # An untrained subnet's logits are small and quantization noise is large beside them (27% here);
    # a trained one fares better. The bound catches a wrong fold or scale (errors of 100% and more).
    assert 0.0 < float((got - want).norm() / want.norm()) < 0.4
    with pytest.raises(ValueError, match="calibration batch"):
        fake_quantize_int8(subnet, [])


def test_collect_int8_records_its_precision(digits, tmp_path) -> None:
    train, held = digits
    net = OFAMobileNetV3(width_mult=0.25, n_classes=10).eval()
    results = collect_accuracy_data(net, train, held, 2, [16], seed=0, calib_images=32, precision="int8")
    assert {r.precision for r in results} == {"int8"}
    path = write_accuracy_csv(results, tmp_path / "acc.csv")
    with path.open(newline="") as fh:
        assert {row["precision"] for row in csv.DictReader(fh)} == {"int8"}
    assert [r.precision for r in read_accuracy_csv(path)] == ["int8", "int8"]
    with pytest.raises(ValueError, match="precision must be one of fp32, int8"):
        collect_accuracy_data(net, train, held, 1, [16], precision="fp16")
