"""ONNX, TFLite and .pt2 exports equal the torch modules numerically: every block kind, real blocks, whole subnets."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from layers import block_input_shape
from profiler.builders import build_block, build_from_net_config, build_subnet
from profiler.export import (
    FORMATS,
    check_format,
    export_block,
    export_module,
    export_net_config,
    export_subnet,
    exporter_version,
)
from space import Block, get_space

ort = pytest.importorskip("onnxruntime")

_MB = Block.mbconv
KIND_CASES: dict[str, Block] = {
    "first_conv_even": Block.first_conv(64, 16),
    "first_conv_odd": Block.first_conv(65, 24),
    "mbconv_no_expand_k3_skip": _MB(32, 16, 16, 16, kernel=3, stride=1, skip=True, se=False, act="relu"),
    "mbconv_e3_k3_s1_relu": _MB(20, 16, 24, 48, kernel=3, stride=1, skip=False, se=False, act="relu"),
    "mbconv_e4_k5_se_skip_relu": _MB(14, 40, 40, 160, kernel=5, stride=1, skip=True, se=True, act="relu"),
    "mbconv_e6_k3_s2_even_se_relu": _MB(28, 24, 40, 144, kernel=3, stride=2, skip=False, se=True, act="relu"),
    "mbconv_e6_k7_s2_even_hs": _MB(14, 40, 80, 240, kernel=7, stride=2, skip=False, se=False, act="h_swish"),
    "mbconv_e3_k5_s2_odd_se_hs": _MB(15, 112, 160, 336, kernel=5, stride=2, skip=False, se=True, act="h_swish"),
    "mbconv_e6_k7_se_skip_hs": _MB(7, 112, 112, 672, kernel=7, stride=1, skip=True, se=True, act="h_swish"),
    "mbconv_e4_k3_skip_hs": _MB(9, 80, 80, 320, kernel=3, stride=1, skip=True, se=False, act="h_swish"),
    "final_expand": Block.fixed("final_expand", 4, 160, 4, 960),
    "avgpool": Block.fixed("avgpool", 4, 960, 1, 960),
    "feature_mix": Block.fixed("feature_mix", 1, 960, 1, 1280),
    "classifier": Block.fixed("classifier", 1, 1280, 1, 1000),
    # ProxylessNAS: ReLU6 everywhere, a pooling classifier
    "proxyless_first_conv_even": Block.first_conv(64, 40, act="relu6"),
    "proxyless_mbconv_e1_k3": _MB(16, 40, 24, 40, kernel=3, stride=1, skip=False, se=False, act="relu6"),
    "proxyless_mbconv_e6_k7_s2_even": _MB(16, 24, 32, 144, kernel=7, stride=2, skip=False, se=False, act="relu6"),
    "proxyless_mbconv_e3_k5_s2_odd": _MB(9, 32, 56, 96, kernel=5, stride=2, skip=False, se=False, act="relu6"),
    "proxyless_mbconv_e4_k5_skip": _MB(5, 56, 56, 224, kernel=5, stride=1, skip=True, se=False, act="relu6"),
    "proxyless_feature_mix": Block.fixed("final_expand", 4, 416, 4, 1664, act="relu6"),
    "proxyless_classifier": Block.fixed("classifier", 4, 1664, 1, 1000),
    # ResNet50: conv-BN-act stem (one with an identity skip), max pool, bottlenecks, a pooling classifier
    "resnet_stem_conv_even": Block.conv_bn_act(32, 3, 24, kernel=3, stride=2, act="relu"),
    "resnet_stem_conv_skip": Block.conv_bn_act(16, 24, 24, kernel=3, stride=1, act="relu", skip=True),
    "resnet_maxpool_even": Block.maxpool(16, 48),
    "resnet_maxpool_odd": Block.maxpool(15, 48),
    "resnet_bottleneck_s1_project": Block.bottleneck(8, 48, 48, 256, stride=1),
    "resnet_bottleneck_identity": Block.bottleneck(8, 256, 64, 256, stride=1),
    "resnet_bottleneck_s2_even": Block.bottleneck(8, 256, 104, 512, stride=2),
    "resnet_bottleneck_s2_odd": Block.bottleneck(7, 512, 144, 1024, stride=2),
    "resnet_classifier": Block.fixed("classifier", 3, 2048, 1, 1000),
}
TOL = 1e-4


def _run_onnx(data: bytes, x: np.ndarray) -> np.ndarray:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def _run_tflite(data: bytes, x: np.ndarray) -> np.ndarray:
    interpreter_mod = pytest.importorskip("ai_edge_litert.interpreter")
    it = interpreter_mod.Interpreter(model_content=data, num_threads=1)
    it.allocate_tensors()
    nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    it.set_tensor(it.get_input_details()[0]["index"], nhwc)
    it.invoke()
    out = it.get_tensor(it.get_output_details()[0]["index"])
    return out.transpose(0, 3, 1, 2) if out.ndim == 4 else out


def _run_pt2(data: bytes, x: np.ndarray) -> np.ndarray:
    program = torch.export.load(io.BytesIO(data))  # bytes this test exported itself
    with torch.no_grad():
        return program.module()(torch.from_numpy(x)).numpy()


def _run(fmt: str, data: bytes, x: np.ndarray) -> np.ndarray:
    return {"onnx": _run_onnx, "tflite": _run_tflite, "pt2": _run_pt2}[fmt](data, x)


def _assert_close(got: np.ndarray, ref: np.ndarray) -> None:
    assert got.shape == ref.shape
    err = float(np.abs(got - ref).max())
    scale = max(1.0, float(np.abs(ref).max()))
    assert err <= TOL * scale, f"max abs error {err:.3g} > {TOL} x {scale:.3g}"


def _input(shape: tuple[int, ...], seed: int = 7) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _check_block(block: Block, fmt: str, seed: int = 0) -> None:
    x = _input(block_input_shape(block))
    with torch.no_grad():
        ref = build_block(block, seed=seed)(torch.from_numpy(x)).numpy()
    _assert_close(_run(fmt, export_block(block, fmt, seed=seed), x), ref)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("case", sorted(KIND_CASES))
def test_every_block_kind_matches_torch(case: str, fmt: str) -> None:
    _check_block(KIND_CASES[case], fmt)


@pytest.mark.parametrize("fmt", FORMATS)
def test_real_blocks_of_the_space_match_torch(fmt: str) -> None:
    blocks = get_space("ofa-mbv3-w1.0").unique_blocks([128])
    fixed = [b for b in blocks if b.kind != "mbconv"]
    sample = fixed + [b for b in blocks if b.kind == "mbconv"][::6]
    assert {b.kind for b in sample} == {"first_conv", "mbconv", "final_expand", "avgpool", "feature_mix", "classifier"}
    for block in sample:
        _check_block(block, fmt, seed=3)


@pytest.mark.parametrize("fmt", FORMATS)
def test_whole_subnet_matches_torch(fmt: str) -> None:
    space = get_space("ofa-mbv3-w1.0")
    arch = {"ks": [3, 5, 7, 5] * 5, "e": [6, 3, 4, 6] * 5, "d": [2, 3, 4, 2, 3], "r": 132}
    model = build_subnet(space, arch, seed=5)
    x = _input(model.input_shape)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    _assert_close(_run(fmt, export_subnet(space, arch, fmt, seed=5), x), ref)
    _assert_close(_run(fmt, export_module(model, model.input_shape, fmt), x), ref)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(("name", "arch"), [
    ("ofa-proxyless-w1.3", {"ks": [7, 5, 3] * 7, "e": [6, 3, 4] * 7, "d": [2, 3, 4, 2, 3, 4], "r": 128}),
    ("ofa-resnet50", {"d": [0, 1, 2, 0, 1], "e": [0.2, 0.25, 0.35] * 6, "w": [0, 1, 2, 0, 1, 2], "r": 128}),
])
def test_whole_subnet_of_every_family_matches_torch(name: str, arch: dict, fmt: str) -> None:
    space = get_space(name)
    model = build_subnet(space, arch, seed=4)
    assert model.blocks == tuple(space.blocks(arch))
    x = _input(model.input_shape)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    _assert_close(_run(fmt, export_subnet(space, arch, fmt, seed=4), x), ref)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", ["ofa-proxyless-w1.3", "ofa-resnet50"])
def test_real_blocks_of_every_family_match_torch(name: str, fmt: str) -> None:
    blocks = get_space(name).unique_blocks([128])
    by_kind: dict[str, list[Block]] = {}
    for block in blocks:
        by_kind.setdefault(block.kind, []).append(block)
    sample = [b for kind_blocks in by_kind.values() for b in kind_blocks[::max(1, len(kind_blocks) // 4)]]
    for block in sample:
        _check_block(block, fmt, seed=3)


def test_net_config_export_matches_torch(shared_data) -> None:
    cfg = shared_data / "ofa" / "specialized" / "note10_lat-8ms_top1-71.4_finetune-25" / "net.config"
    model = build_from_net_config(cfg, 128, seed=2)
    x = _input(model.input_shape)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    _assert_close(_run("onnx", export_net_config(cfg, 128, "onnx", seed=2), x), ref)


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_is_deterministic_and_seeded(fmt: str) -> None:
    block = KIND_CASES["mbconv_e4_k5_se_skip_relu"]
    first = export_block(block, fmt, seed=0)
    assert first == export_block(block, fmt, seed=0)
    assert first != export_block(block, fmt, seed=1)
    assert exporter_version(fmt)


def test_unknown_format_is_rejected() -> None:
    with pytest.raises(ValueError, match="^model format must be one of onnx, tflite, pt2, got 'pb'$"):
        check_format("pb")
    with pytest.raises(ValueError, match="model format must be one of onnx, tflite, pt2, got 'pb'"):
        export_block(KIND_CASES["avgpool"], "pb")


def test_pt2_is_written_at_fp32_and_fp16_only() -> None:
    block = KIND_CASES["mbconv_e4_k3_skip_hs"]
    half = torch.export.load(io.BytesIO(export_block(block, "pt2", precision="fp16")))
    assert half.example_inputs[0][0].dtype == torch.float16  # the agent times it with a float16 input
    assert {p.dtype for p in half.parameters()} == {torch.float16}
    with pytest.raises(ValueError, match="^the precision of a pt2 export must be one of fp32, fp16, got 'int8'$"):
        export_block(block, "pt2", precision="int8")


def test_non_builder_module_is_rejected() -> None:
    with pytest.raises(TypeError, match="Sequential"):
        export_module(torch.nn.Sequential(torch.nn.ReLU()), (1, 3, 8, 8), "onnx")
