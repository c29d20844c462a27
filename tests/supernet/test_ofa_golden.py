"""OFA compatibility: OFA's state_dict layout, and OFA's own logits for four subnets."""

from __future__ import annotations

import json

import pytest
import torch

from supernet import OFAMobileNetV3

OFA_KW = {"ks_list": [3, 5, 7], "expand_ratio_list": [3, 4, 6], "depth_list": [2, 3, 4]}


@pytest.fixture(scope="module")
def golden_net(golden: dict) -> OFAMobileNetV3:
    net = OFAMobileNetV3(width_mult=1.0, **OFA_KW)
    net.load_state_dict(golden["state_dict"], strict=True)
    return net.eval()


def test_state_dict_keys_match_ofa_in_order(golden: dict) -> None:
    net = OFAMobileNetV3(width_mult=1.0, **OFA_KW)
    assert list(net.state_dict()) == list(golden["state_dict"])


@pytest.mark.parametrize("case_index", range(4))
def test_golden_logits(golden: dict, golden_net: OFAMobileNetV3, case_index: int) -> None:
    case = golden["cases"][case_index]
    golden_net.set_active_subnet(case["arch"])
    with torch.no_grad():
        logits = golden_net(case["input"])
    assert (logits - case["logits"]).abs().max().item() <= 1e-4


@pytest.mark.parametrize("case_index", range(4))
def test_golden_static_subnet(golden: dict, golden_net: OFAMobileNetV3, case_index: int) -> None:
    case = golden["cases"][case_index]
    golden_net.set_active_subnet(case["arch"])
    subnet = golden_net.get_active_subnet().eval()
    assert list(subnet.state_dict()) == list(case["subnet_state_dict_keys"])
    with torch.no_grad():
        logits = subnet(case["input"])
    assert (logits - case["logits"]).abs().max().item() <= 1e-4


@pytest.mark.parametrize("width", ["1.0", "1.2"])
def test_strict_load_from_ofa_shapes(golden_dir, width: str) -> None:
    shapes = json.loads((golden_dir / f"ofa_mbv3_w{width}_shapes.json").read_text())
    net = OFAMobileNetV3(width_mult=float(width), **OFA_KW)
    own = {k: list(v.shape) for k, v in net.state_dict().items()}
    assert own == shapes
    state = {
        k: torch.zeros(v, dtype=torch.int64 if k.endswith("num_batches_tracked") else torch.float32)
        for k, v in shapes.items()
    }
    net.load_state_dict(state, strict=True)


def test_legacy_block_keys_load(golden: dict) -> None:
    legacy = {
        k.replace(".conv.", ".mobile_inverted_conv.", 1) if k.startswith("blocks.") else k: v
        for k, v in golden["state_dict"].items()
    }
    assert any(".mobile_inverted_conv." in k for k in legacy)
    OFAMobileNetV3(width_mult=1.0, **OFA_KW).load_state_dict(legacy, strict=True)


def test_ofa_release_file_loads_with_inferred_config(golden: dict, tmp_path) -> None:
    from supernet import load_supernet

    path = tmp_path / "ofa_release.pth"
    torch.save({"state_dict": golden["state_dict"]}, path)
    net, meta = load_supernet(path)
    assert meta == {"source": "ofa"}
    config = net.config
    assert (config.width_mult, config.n_classes) == (1.0, 1000)
    assert list(config.ks_list) == [3, 5, 7] and list(config.depth_list) == [2, 3, 4]
    assert list(config.expand_ratio_list) == [3, 4, 6]
    case = golden["cases"][1]
    net.set_active_subnet(case["arch"])
    with torch.no_grad():
        assert (net(case["input"]) - case["logits"]).abs().max().item() <= 1e-4
