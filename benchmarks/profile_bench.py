"""Profiling on this machine: the pipelined fleet profiler against a naive export-then-time loop.

One local agent (``python -m agent``: onnxruntime, 1 thread, timing worker pinned to one core)
serves both, in the same run:

- pipelined: ``profiler.fleet.profile`` for ``ofa-mbv3-w1.0`` at one resolution, from an empty
  artifact cache (exports run ahead in a process pool with the direct ONNX writer; blobs are uploaded
  only when the agent lacks them; the drift sentinel is on, as by default);
- naive: for each of the same blocks, ``torch.onnx.export(dynamo=False)`` then
  ``AgentClient.time_model`` (the same timing plan), one after the other.

Prints unique blocks, wall time, export seconds per block, bytes uploaded and saved, and the
device-busy fraction (the agent's reported job time over the wall time it served the profile).

    python benchmarks/profile_bench.py [--resolution 224] [--naive-blocks 0 (all)]
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
import warnings
from pathlib import Path

from agent.testing import start_agent_process
from lut import LutStore
from layers import block_input_shape
from profiler.builders import build_block
from profiler.client import AgentClient
from profiler.fleet import DEFAULT_PLAN, AgentRef, ProfileSettings, plan_blocks, profile

TOKEN = "profile-bench"
SPACE = "ofa-mbv3-w1.0"


def _torch_onnx(block) -> bytes:
    import torch

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            build_block(block),
            (torch.zeros(block_input_shape(block)),),
            buf,
            dynamo=False,
            opset_version=17,
            input_names=["input"],
            output_names=["output"],
        )
    return buf.getvalue()


def _naive(address: str, blocks: list, plan: dict) -> dict:
    export_s = busy_s = 0.0
    uploaded = 0
    start = time.monotonic()
    with AgentClient(address, token=TOKEN) as client:
        for block in blocks:
            t0 = time.perf_counter()
            data = _torch_onnx(block)
            export_s += time.perf_counter() - t0
            result = client.time_model(data, "onnxruntime", format="onnx", threads=1, plan=plan)
            busy_s += result.wall_s
            uploaded += len(data)
    wall_s = time.monotonic() - start
    return {
        "blocks": len(blocks),
        "wall_s": wall_s,
        "export_s_per_block": export_s / len(blocks),
        "uploaded_bytes": uploaded,
        "saved_bytes": 0,
        "busy_fraction": busy_s / wall_s,
        "retimed": 0,
        "sentinel_drifts": 0,
    }


def _pipelined(address: str, db: Path, cache: Path, resolution: int, sentinel_every: int | None) -> dict:
    extra = {} if sentinel_every is None else {"sentinel_every": sentinel_every}
    settings = ProfileSettings(space=SPACE, resolutions=(resolution,), cache_dir=str(cache), **extra)
    with LutStore(db) as store:
        report = profile(store, [AgentRef("bench", address)], settings, token=TOKEN)
    (dev,) = report.devices
    if not report.ok:
        raise SystemExit(f"profile failed: {report.to_dict()}")
    return {
        "blocks": dev.total,
        "wall_s": dev.wall_s,
        "export_s_per_block": report.export_s / max(report.exported, 1),
        "uploaded_bytes": dev.uploaded_bytes,
        "saved_bytes": dev.saved_bytes,
        "busy_fraction": dev.busy_fraction,
        "retimed": dev.retimed,
        "sentinel_drifts": dev.sentinel_drifts,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument(
        "--naive-blocks",
        type=int,
        default=0,
        help="time only the first N blocks naively (0: all); per-block figures stay comparable",
    )
    parser.add_argument("--sentinel-every", type=int, default=None,
                        help="drift sentinel period for the pipelined profile (default: the profiler's; 0: off)")
    args = parser.parse_args()
    blocks = plan_blocks(SPACE, [args.resolution])
    naive_blocks = blocks[: args.naive_blocks] if args.naive_blocks else blocks
    with tempfile.TemporaryDirectory(prefix="lutnas-profile-bench-") as tmp, start_agent_process(token=TOKEN) as agent:
        pipe = _pipelined(agent.address, Path(tmp) / "lut.db", Path(tmp) / "artifacts", args.resolution,
                          args.sentinel_every)
        naive = _naive(agent.address, naive_blocks, dict(DEFAULT_PLAN))
    print(
        f"profile of {SPACE} at r={args.resolution}: onnxruntime, 1 thread, one local agent pinned to one core "
        f"({len(blocks)} unique blocks)"
    )
    head = (
        f"{'loop':<34} {'blocks':>6} {'wall s':>8} {'s/block':>8} {'export s/block':>15} {'uploaded KB':>12} "
        f"{'saved KB':>9} {'busy':>6} {'re-timed':>8}"
    )
    print(head)
    print("-" * len(head))
    sentinel = "default sentinel" if args.sentinel_every is None else f"sentinel every {args.sentinel_every}"
    for label, r in ((f"pipelined ({sentinel})", pipe), ("naive: torch export, then time", naive)):
        print(
            f"{label:<34} {r['blocks']:>6} {r['wall_s']:>8.1f} {r['wall_s'] / r['blocks']:>8.3f} "
            f"{r['export_s_per_block']:>15.4f} {r['uploaded_bytes'] / 1024:>12.0f} {r['saved_bytes'] / 1024:>9.0f} "
            f"{r['busy_fraction']:>6.1%} {r['retimed']:>8}"
        )
    print(
        f"\ntarget: device busy >= 90% of the agent's wall time; pipelined {pipe['busy_fraction']:.1%} "
        f"(sentinel drifts {pipe['sentinel_drifts']}, blocks re-timed {pipe['retimed']}), "
        f"naive {naive['busy_fraction']:.1%}"
    )


if __name__ == "__main__":
    main()
