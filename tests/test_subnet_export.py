"""A static supernet subnet is the profiler's module tree: exported directly, torch, ONNX and TFLite agree."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from layers import ConvBNAct, MBConv, ResidualBlock, SubnetModel
from lutnas.cli import app
from profiler.builders import build_block
from profiler.export import export_module
from supernet import OFAMobileNetV3, save_checkpoint
from supernet.static_subnet import subnet_resolution

ort = pytest.importorskip("onnxruntime")

N_CLASSES = 10


@pytest.fixture(autouse=True)
def _one_torch_thread(one_torch_thread):
    """Every test here runs with one torch thread (see tests/conftest.py)."""


@pytest.fixture(scope="module")
def small_net() -> OFAMobileNetV3:
    """A width-0.25 supernet with random weights and BN statistics, so every tensor matters."""
    gen = torch.Generator().manual_seed(0)
    net = OFAMobileNetV3(width_mult=0.25, n_classes=N_CLASSES)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5, generator=gen)
                module.bias.normal_(0.0, 0.1, generator=gen)
                module.running_mean.normal_(0.0, 0.1, generator=gen)
                module.running_var.uniform_(0.5, 1.5, generator=gen)
            elif isinstance(module, torch.nn.Linear):
                module.weight.normal_(0.0, (2.0 / module.in_features) ** 0.5, generator=gen)
    return net.eval()


def _arch(net: OFAMobileNetV3, kind: str, r: int) -> dict:
    if kind == "max":
        net.set_max_net()
    elif kind == "min":
        net.set_min_net()
    else:
        net.sample_active_subnet(int(kind))
    arch = net.active_arch()
    arch["r"] = r
    return arch


def _onnx_run(data: bytes, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def _tflite_run(data: bytes, x_nchw: np.ndarray) -> np.ndarray:
    interpreter_mod = pytest.importorskip("ai_edge_litert.interpreter")
    interp = interpreter_mod.Interpreter(model_content=data)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    out = interp.get_output_details()[0]
    x_nhwc = np.ascontiguousarray(x_nchw.transpose(0, 2, 3, 1))
    assert tuple(inp["shape"]) == x_nhwc.shape
    interp.set_tensor(inp["index"], x_nhwc)
    interp.invoke()
    return interp.get_tensor(out["index"])


def _rel_err(got: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-12))


def _export(subnet, fmt: str, resolution: int | None = None) -> bytes:
    model = subnet.block_model(resolution)
    return export_module(model, model.input_shape, fmt)


@pytest.mark.parametrize("kind, r", [("max", 16), ("min", 13), ("1", 16), ("2", 15)])
def test_torch_onnx_tflite_agree(small_net: OFAMobileNetV3, kind: str, r: int) -> None:
    arch = _arch(small_net, kind, r)
    small_net.set_active_subnet(arch)
    subnet = small_net.get_active_subnet().eval()
    model = subnet.block_model()
    assert isinstance(model, SubnetModel)
    assert model.input_shape == (1, 3, r, r)
    assert len(model.layers) == len(subnet.blocks) + 5
    assert model.layers[1] is subnet.blocks[0]  # the subnet's own modules, nothing copied
    x = torch.randn(1, 3, r, r, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = subnet(x).numpy()
        assert np.abs(ref).max() > 1e-3  # a signal worth comparing
        assert _rel_err(model(x).numpy(), ref) <= 1e-4
    x_np = x.numpy()
    assert _rel_err(_onnx_run(_export(subnet, "onnx"), x_np), ref) <= 1e-4
    assert _rel_err(_tflite_run(_export(subnet, "tflite"), x_np), ref) <= 1e-4


def test_same_module_tree_as_the_lut_blocks(small_net: OFAMobileNetV3) -> None:
    small_net.set_active_subnet(_arch(small_net, "3", 16))
    model = small_net.get_active_subnet().block_model()
    kinds = [b.kind for b in model.blocks]
    assert kinds[0] == "first_conv" and kinds[-4:] == ["final_expand", "avgpool", "feature_mix", "classifier"]
    assert all(k == "mbconv" for k in kinds[1:-4])
    assert isinstance(model.layers[0], ConvBNAct) and isinstance(model.layers[1], ResidualBlock)
    for block, layer in zip(model.blocks, model.layers):
        built = build_block(block)  # what the profiler times for this block
        assert type(layer) is type(built)
        assert [(k, v.shape) for k, v in layer.state_dict().items()] == [
            (k, v.shape) for k, v in built.state_dict().items()
        ]
        if block.kind == "mbconv":
            conv = layer.conv
            assert isinstance(conv, MBConv) and layer.has_skip == block.skip
            assert (conv.depth_conv.kernel, conv.depth_conv.stride, conv.mid_chs) == (
                block.kernel,
                block.stride,
                block.mid_chs,
            )


def test_resolution_and_errors(small_net: OFAMobileNetV3) -> None:
    small_net.set_active_subnet(_arch(small_net, "max", 16))
    subnet = small_net.get_active_subnet()
    assert subnet_resolution(subnet) == 16
    assert subnet_resolution(subnet, 20) == 20
    assert subnet.block_model(resolution=20).input_shape == (1, 3, 20, 20)
    subnet.arch = None
    with pytest.raises(ValueError, match="resolution"):
        subnet.block_model()
    with pytest.raises(ValueError, match="model format"):
        _export(subnet, "pt", resolution=16)


def test_golden_w10_onnx_logits(shared_data) -> None:
    path = shared_data / "ofa" / "golden" / "ofa_mbv3_w1.0_golden.pt"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    golden = torch.load(path, map_location="cpu", weights_only=True)
    net = OFAMobileNetV3(width_mult=1.0, ks_list=[3, 5, 7], expand_ratio_list=[3, 4, 6], depth_list=[2, 3, 4])
    net.load_state_dict(golden["state_dict"], strict=True)
    case = min(golden["cases"], key=lambda c: c["arch"]["r"])  # the smallest resolution is the quickest
    net.eval().set_active_subnet(case["arch"])
    subnet = net.get_active_subnet().eval()
    data = _export(subnet, "onnx", resolution=case["arch"]["r"])
    for i in range(case["input"].shape[0]):  # the exported model takes batch 1
        logits = _onnx_run(data, case["input"][i : i + 1].numpy())
        assert np.abs(logits - case["logits"][i : i + 1].numpy()).max() <= 1e-3


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_cli_extract(small_net: OFAMobileNetV3, tmp_path, fmt: str) -> None:
    ckpt = save_checkpoint(tmp_path / "supernet.pt", small_net)
    arch = _arch(small_net, "4", 16)
    out = tmp_path / f"sub.{fmt}"
    argv = ["supernet", "extract", "--checkpoint", str(ckpt), "--arch", json.dumps(arch), "--out", str(out)]
    result = CliRunner().invoke(app, [*argv, "--format", fmt, "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["format"] == fmt and doc["bn_recalibrated"] is False and doc["out"] == str(out)

    small_net.set_active_subnet(arch)
    subnet = small_net.get_active_subnet().eval()
    x = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = subnet(x).numpy()
    run = _tflite_run if fmt == "tflite" else _onnx_run
    assert _rel_err(run(out.read_bytes(), x.numpy()), ref) <= 1e-4
    assert out.read_bytes() == _export(subnet, fmt)  # deterministic, same path as the library


def test_cli_extract_format_from_suffix_and_bad_format(small_net: OFAMobileNetV3, tmp_path) -> None:
    ckpt = save_checkpoint(tmp_path / "supernet.pt", small_net)
    arch = json.dumps(_arch(small_net, "max", 16))
    base = ["supernet", "extract", "--checkpoint", str(ckpt), "--arch", arch]
    result = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "a.tflite"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["format"] == "tflite"
    assert (tmp_path / "a.tflite").read_bytes()[4:8] == b"TFL3"
    result = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "a.bin"), "--format", "coreml"])
    assert result.exit_code == 2
    assert "--format" in result.stderr
