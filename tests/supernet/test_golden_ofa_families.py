"""OFA-ProxylessNAS w1.3 and OFA-ResNet50 against OFA's own numbers (shared/data/ofa/golden).

For every golden case: the supernet's logits, the extracted static subnet's state_dict keys, logits and
``net.config``; and the supernets' state_dict layout against ``shapes.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from supernet import OFAProxylessNASNets, OFAResNets, ProxylessNASNets, ResNets

TOL = 1e-5  # max abs logit difference

# golden name -> (supernet as OFA built it for the golden, static network class)
FAMILIES = {
    "ofa_proxyless_w1.3": (lambda: OFAProxylessNASNets(width_mult=1.3, dropout_rate=0.0), ProxylessNASNets),
    "ofa_resnet50": (lambda: OFAResNets(), ResNets),
}


@dataclass
class CaseRun:
    case: dict
    logits: torch.Tensor  # supernet's
    subnet: nn.Module
    subnet_logits: torch.Tensor


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family(request, family_golden) -> tuple[str, list[CaseRun]]:
    """Each family's supernet loaded with the golden weights, run on every case."""
    name = request.param
    golden = family_golden(name)
    net = FAMILIES[name][0]()
    net.load_state_dict(golden.weights, strict=True)
    net.eval()
    runs = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # module fixtures run before the autouse one-thread fixture (see tests/conftest.py)
    try:
        for case in golden.cases:
            net.set_active_subnet(case["arch"])
            subnet = net.get_active_subnet().eval()
            with torch.no_grad():
                runs.append(CaseRun(case, net(case["input"]), subnet, subnet(case["input"])))
    finally:
        torch.set_num_threads(threads)
    return name, runs


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_state_dict_layout_is_ofas(name: str, family_golden) -> None:
    own = {k: list(v.shape) for k, v in FAMILIES[name][0]().state_dict().items()}
    shapes = family_golden(name).shapes
    assert list(own) == list(shapes)
    assert own == shapes


def test_supernet_logits(family) -> None:
    name, runs = family
    assert runs, f"{name}: no golden cases"
    for run in runs:
        err = (run.logits - run.case["logits"]).abs().max().item()
        assert err <= TOL, f"{name} {run.case['arch']}: max abs logit error {err:.3g}"


def test_extracted_subnet_keys_and_logits(family) -> None:
    name, runs = family
    for run in runs:
        assert list(run.subnet.state_dict()) == list(run.case["subnet_state_dict_keys"]), run.case["arch"]
        err = (run.subnet_logits - run.case["logits"]).abs().max().item()
        assert err <= TOL, f"{name} {run.case['arch']}: subnet max abs logit error {err:.3g}"


def test_extracted_subnet_config_is_ofas(family) -> None:
    name, runs = family
    for run in runs:
        assert run.subnet.config == json.loads(run.case["subnet_config"]), f"{name} {run.case['arch']}"


def test_static_network_builds_from_ofas_config(family) -> None:
    name, runs = family
    static_cls = FAMILIES[name][1]
    for run in runs:
        config = json.loads(run.case["subnet_config"])
        rebuilt = static_cls.build_from_config(config)
        assert list(rebuilt.state_dict()) == list(run.case["subnet_state_dict_keys"])
        assert rebuilt.config == config
    smallest = min(runs, key=lambda r: r.case["input"].shape[-1] * len(r.case["subnet_state_dict_keys"]))
    rebuilt = static_cls.build_from_config(json.loads(smallest.case["subnet_config"]))
    rebuilt.load_state_dict(smallest.subnet.state_dict(), strict=True)
    with torch.no_grad():
        logits = rebuilt.eval()(smallest.case["input"])
    assert (logits - smallest.case["logits"]).abs().max().item() <= TOL


def test_proxyless_accepts_older_ofa_block_keys(family_golden) -> None:
    weights = family_golden("ofa_proxyless_w1.3").weights
    legacy = {k.replace(".conv.", ".mobile_inverted_conv.", 1) if k.startswith("blocks.") else k: v
              for k, v in weights.items()}
    assert any(".mobile_inverted_conv." in k for k in legacy)
    OFAProxylessNASNets(width_mult=1.3).load_state_dict(legacy, strict=True)
