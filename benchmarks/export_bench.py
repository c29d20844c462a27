"""Export speed and exported-model latency: the direct writers against torch's and litert-torch's exporters.

Prints two tables:

1. Export seconds per block (median over a sample of real ``ofa-mbv3-w1.0`` blocks at r=224):
   ONNX direct vs ``torch.onnx.export(dynamo=False)``, TFLite direct vs litert-torch.
2. Latency of the same block (MBConv 28x28x40, e6, k5, SE, skip) exported each way, 1 thread, interleaved
   rounds, minimum of round medians: TFLite direct vs litert-torch on the LiteRT interpreter, and ONNX direct
   vs torch's exporter on onnxruntime; with each model's op list.

litert-torch is optional (``pip install litert-torch``); without it its rows say so.

Usage: python benchmarks/export_bench.py [--blocks 24] [--litert-blocks 3] [--rounds 7] [--runs 50]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import statistics
import time
import warnings
from collections.abc import Callable
from functools import partial

import numpy as np
import torch

from layers import block_input_shape
from profiler.builders import build_block
from profiler.export import export_block, export_module
from space import Block, get_space

REFERENCE = Block.mbconv(28, 40, 40, 240, kernel=5, stride=1, skip=True, se=True, act="relu")


def _median_s(fn: Callable[[], object], repeat: int = 1) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _torch_onnx(module: torch.nn.Module, shape: tuple[int, ...]) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (torch.zeros(shape),),
            buf,
            dynamo=False,
            opset_version=17,
            input_names=["input"],
            output_names=["output"],
        )
    return buf.getvalue()


def _litert_torch(module: torch.nn.Module, shape: tuple[int, ...], channel_last: bool = True) -> bytes:
    """litert-torch's conversion; ``channel_last`` wraps the module so the model's interface is NHWC."""
    import litert_torch

    if channel_last:
        n, c, h, w = shape
        module = litert_torch.to_channel_last_io(module, args=[0], outputs=[0] if len(shape) == 4 else []).eval()
        shape = (n, h, w, c)
    with contextlib.redirect_stdout(io.StringIO()):  # its progress log
        return bytes(litert_torch.convert(module, (torch.zeros(shape),)).model_content())


def _have_litert_torch() -> bool:
    try:
        import litert_torch  # noqa: F401
    except ImportError:
        return False
    return True


def _tflite_runner(data: bytes, input_shape: tuple[int, ...]) -> Callable[[], None]:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=data, num_threads=1)
    it.allocate_tensors()
    x = np.random.default_rng(0).standard_normal(input_shape).astype(np.float32)
    it.set_tensor(it.get_input_details()[0]["index"], x)
    return it.invoke


def _onnx_runner(data: bytes, shape: tuple[int, ...]) -> Callable[[], None]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    feed = {sess.get_inputs()[0].name: np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
    return lambda: sess.run(None, feed)


def _interleaved_ms(runners: dict[str, Callable[[], None]], rounds: int, runs: int) -> dict[str, tuple[float, float]]:
    """Per runner: (min of round medians, spread of round medians as (max-min)/min), in ms."""
    for fn in runners.values():
        for _ in range(10):
            fn()
    medians: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(rounds):
        for name, fn in runners.items():
            samples = []
            for _ in range(runs):
                t0 = time.perf_counter()
                fn()
                samples.append(time.perf_counter() - t0)
            medians[name].append(1e3 * statistics.median(samples))
    return {n: (min(m), (max(m) - min(m)) / min(m)) for n, m in medians.items()}


def _tflite_ops(data: bytes) -> list[str]:
    from ai_edge_litert import schema_py_generated as schema

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    model = schema.Model.GetRootAs(data, 0)
    codes = [
        max(model.OperatorCodes(i).BuiltinCode(), model.OperatorCodes(i).DeprecatedBuiltinCode())
        for i in range(model.OperatorCodesLength())
    ]
    sub = model.Subgraphs(0)
    return [names[codes[sub.Operators(i).OpcodeIndex()]] for i in range(sub.OperatorsLength())]


def _onnx_ops(data: bytes) -> list[str]:
    import onnx

    return [n.op_type for n in onnx.load_from_string(data).graph.node]


def _sample_blocks(n: int) -> list[Block]:
    blocks = get_space("ofa-mbv3-w1.0").unique_blocks([224])
    mb = [b for b in blocks if b.kind == "mbconv"]
    step = max(1, len(mb) // max(1, n))
    return [b for b in blocks if b.kind != "mbconv"] + mb[::step][:n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=24, help="mbconv blocks sampled for export timing")
    parser.add_argument("--litert-blocks", type=int, default=3, help="blocks converted with litert-torch (~5 s each)")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved latency rounds")
    parser.add_argument("--runs", type=int, default=50, help="invocations per round")
    default_core = max(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else -1
    parser.add_argument("--pin-core", type=int, default=default_core, help="CPU to pin latency timing to (-1: none)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    have_lt = _have_litert_torch()

    blocks = _sample_blocks(args.blocks)
    for fmt in ("onnx", "tflite"):  # warm imports
        export_block(REFERENCE, fmt)
    build_s, onnx_s, tfl_s, torch_onnx_s = [], [], [], []
    for b in blocks:
        shape = block_input_shape(b)
        build_s.append(_median_s(partial(build_block, b), 3))
        module = build_block(b)
        onnx_s.append(_median_s(partial(export_module, module, shape, "onnx"), 3))
        tfl_s.append(_median_s(partial(export_module, module, shape, "tflite"), 3))
        torch_onnx_s.append(_median_s(partial(_torch_onnx, module, shape)))
    lt_s: list[float] = []
    if have_lt:
        lt_blocks = [REFERENCE] + [b for b in blocks if b.kind == "mbconv"][: max(0, args.litert_blocks - 1)]
        for b in lt_blocks:
            lt_s.append(_median_s(partial(_litert_torch, build_block(b), block_input_shape(b))))

    med = statistics.median
    print(f"\nExport seconds per block (median over {len(blocks)} blocks of ofa-mbv3-w1.0 at r=224)")
    print(f"{'exporter':<38}{'s/block':>10}{'blocks':>8}")
    print(f"{'build_block (shared by both writers)':<38}{med(build_s):>10.4f}{len(blocks):>8}")
    print(f"{'ONNX direct (onnx.helper)':<38}{med(onnx_s):>10.4f}{len(blocks):>8}")
    print(f"{'torch.onnx.export(dynamo=False)':<38}{med(torch_onnx_s):>10.4f}{len(blocks):>8}")
    print(f"{'TFLite direct (LiteRT schema API)':<38}{med(tfl_s):>10.4f}{len(blocks):>8}")
    if have_lt:
        print(f"{'litert-torch convert':<38}{med(lt_s):>10.4f}{len(lt_s):>8}")
    else:
        print(f"{'litert-torch convert':<38}{'n/a (not installed)':>18}")

    module = build_block(REFERENCE)
    shape = block_input_shape(REFERENCE)
    n, c, h, w = shape
    models = {
        "TFLite direct": ("tflite", export_module(module, shape, "tflite")),
        "ONNX direct": ("onnx", export_module(module, shape, "onnx")),
        "ONNX torch.onnx.export": ("onnx", _torch_onnx(module, shape)),
    }
    if have_lt:
        models["TFLite litert-torch"] = ("tflite", _litert_torch(module, shape))
        models["TFLite litert-torch NCHW io"] = ("tflite", _litert_torch(module, shape, channel_last=False))
    runners = {}
    for name, (fmt, data) in models.items():
        nhwc = (n, h, w, c) if "NCHW" not in name else shape
        runners[name] = _onnx_runner(data, shape) if fmt == "onnx" else _tflite_runner(data, nhwc)
    if hasattr(os, "sched_setaffinity") and args.pin_core >= 0:
        os.sched_setaffinity(0, {args.pin_core})
    lat = _interleaved_ms(runners, args.rounds, args.runs)
    print(f"\nLatency of {REFERENCE.key}")
    print(
        f"(1 thread, pinned to CPU {args.pin_core}, {args.rounds} interleaved rounds x {args.runs} runs, "
        "min of round medians)"
    )
    print(f"{'model':<30}{'ms':>8}{'spread':>9}{'bytes':>10}  ops")
    for name in sorted(models, key=lambda s: (s.split()[0], s)):
        fmt, data = models[name]
        ops = _tflite_ops(data) if fmt == "tflite" else _onnx_ops(data)
        ms, spread = lat[name]
        print(f"{name:<30}{ms:>8.3f}{100 * spread:>8.1f}%{len(data):>10}  {' '.join(ops)}")


if __name__ == "__main__":
    main()
