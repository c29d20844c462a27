"""Checking a ``BenchmarkJob`` message and turning it into the worker's job document.

Plain functions over protobuf messages, testable without a server. Every rejection is a
:class:`~agent.errors.JobError` with a status name and a one-line reason naming the bad field.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection
from dataclasses import asdict, replace
from typing import Any

from agent.adb import ADB_CPUS_OPTION, ADB_SERIAL_OPTION
from agent.errors import JobError
from agent.runtimes._inputs import DTYPES
from agent.runtimes.benchmark_model_rt import AGENT_FLAGS
from agent.timing import TimingPlan
from protos import agent_pb2

__all__ = ["plan_from_proto", "validate_job", "infer_format", "MAX_THREADS", "MAX_DIMS", "MAX_OPTIONS"]

MAX_THREADS = 256
MAX_DIMS = 8
MAX_INPUTS = 64
MAX_OPTIONS = 32
_MAX_OPTION_CHARS = 1024
_MAX_JOB_ID_CHARS = 256
_OPTION_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_.\-]*$")
# benchmark_model flags that name files or shared objects (external_delegate_path, *_file, *_dir, ...).
_FILE_FLAG = re.compile(r"path|file|dir|lib|delegate|graph", re.IGNORECASE)
# Formats each runtime accepts ("" lets the runtime decide).
_FORMATS = {
    "onnxruntime": ("", "onnx"),
    "tflite": ("", "tflite"),
    "torch": ("", "torchscript", "pt2"),
    "benchmark_model": ("", "tflite"),
}


def infer_format(runtime: str) -> str:
    """The default model format of a built-in runtime ("" when it decides itself)."""
    return {"onnxruntime": "onnx", "tflite": "tflite", "benchmark_model": "tflite"}.get(runtime, "")


def plan_from_proto(msg: agent_pb2.TimingPlan, default: TimingPlan | None = None) -> TimingPlan:
    """A validated :class:`TimingPlan` from the message's set fields over ``default``.

    Raises:
        JobError: INVALID_ARGUMENT for an out-of-range field.
    """
    changes = {f.name: value for f, value in msg.ListFields()}
    plan = replace(default or TimingPlan(), **changes)
    try:
        return plan.validate()
    except ValueError as err:
        raise JobError("INVALID_ARGUMENT", str(err)) from err


def validate_job(
    job: agent_pb2.BenchmarkJob,
    offered: Collection[str],
    known: Collection[str],
    max_input_bytes: int,
    job_timeout_s: float,
    max_job_timeout_s: float,
) -> tuple[dict[str, Any], float]:
    """Check a job and build the worker's job document (without the model path).

    Args:
        job: The job as received.
        offered: Runtime names this agent offers.
        known: Every runtime name the agent knows, offered or not.
        max_input_bytes: Cap on the job's input tensors.
        job_timeout_s: Deadline when the job names none.
        max_job_timeout_s: Largest deadline a job may ask for.

    Returns:
        The job document and its deadline in seconds.

    Raises:
        JobError: INVALID_ARGUMENT for bad fields or an unknown runtime, FAILED_PRECONDITION for
            a known runtime this agent does not offer.
    """
    if len(job.job_id) > _MAX_JOB_ID_CHARS:
        raise JobError("INVALID_ARGUMENT", f"job_id longer than {_MAX_JOB_ID_CHARS} characters")
    if not job.runtime:
        raise JobError("INVALID_ARGUMENT", f"job names no runtime; offered: {', '.join(sorted(offered))}")
    if job.runtime not in offered:
        if job.runtime in known:
            raise JobError(
                "FAILED_PRECONDITION", f"runtime {job.runtime!r} is not available on this agent; offered: {', '.join(sorted(offered))}"
            )
        raise JobError("INVALID_ARGUMENT", f"unknown runtime {job.runtime[:64]!r}; offered: {', '.join(sorted(offered))}")
    formats = _FORMATS.get(job.runtime)
    if formats is not None and job.format not in formats:
        raise JobError(
            "INVALID_ARGUMENT", f"format {job.format[:32]!r} for runtime {job.runtime}; known: {', '.join(f for f in formats if f)}"
        )
    if not 0 <= job.threads <= MAX_THREADS:
        raise JobError("INVALID_ARGUMENT", f"threads must be in 0..{MAX_THREADS}, got {job.threads}")
    if len(job.inputs) > MAX_INPUTS:
        raise JobError("INVALID_ARGUMENT", f"{len(job.inputs)} inputs; at most {MAX_INPUTS}")
    inputs = []
    for i, spec in enumerate(job.inputs):
        if len(spec.shape) > MAX_DIMS:
            raise JobError("INVALID_ARGUMENT", f"inputs[{i}] has {len(spec.shape)} dims; at most {MAX_DIMS}")
        if any(d < 1 for d in spec.shape):
            raise JobError("INVALID_ARGUMENT", f"inputs[{i}].shape {list(spec.shape)} must have dims >= 1")
        if spec.dtype and spec.dtype not in DTYPES:
            raise JobError("INVALID_ARGUMENT", f"inputs[{i}].dtype {spec.dtype[:32]!r}; known: {', '.join(sorted(DTYPES))}")
        numel = math.prod(spec.shape) if spec.shape else 0
        if numel > max_input_bytes:  # every dtype takes at least one byte per element
            raise JobError(
                "RESOURCE_EXHAUSTED", f"inputs[{i}].shape {list(spec.shape)} has {numel} elements; input limit is {max_input_bytes} bytes"
            )
        inputs.append({"name": spec.name[:256], "shape": list(spec.shape), "dtype": spec.dtype})
    if len(job.options) > MAX_OPTIONS:
        raise JobError("INVALID_ARGUMENT", f"{len(job.options)} options; at most {MAX_OPTIONS}")
    for key, value in job.options.items():
        if not _OPTION_KEY.match(key) or len(key) > 128 or len(value) > _MAX_OPTION_CHARS:
            raise JobError("INVALID_ARGUMENT", f"bad option key or value for {key[:64]!r}")
    reserved = sorted({"binary", ADB_SERIAL_OPTION, ADB_CPUS_OPTION} & set(job.options))
    if job.runtime == "benchmark_model" and reserved:
        raise JobError("INVALID_ARGUMENT", f"option {reserved[0]!r} is set by the agent (--benchmark-model-bin, --adb), not by a job")
    if job.runtime == "benchmark_model":
        # The agent times with the job's plan and threads and kills the tool at the deadline; flags that would
        # replace them (flag.min_secs=25 under a 4 s deadline) are refused rather than clamped, so a result
        # never silently differs from what its job asked for.
        timing = sorted(k for k in job.options if k.startswith("flag.") and k[5:] in AGENT_FLAGS - {"graph"})
        if timing:
            raise JobError(
                "INVALID_ARGUMENT",
                f"benchmark_model option(s) {timing[:4]} are set by the agent from the job's threads and plan; "
                "set the plan (min_s, max_s, min_reps, warmup_count, warmup_s) and threads instead",
            )
        named = sorted(k for k in job.options if _FILE_FLAG.search(k))
        if named:
            raise JobError(
                "INVALID_ARGUMENT", f"benchmark_model option(s) {named[:4]} would make the tool read or write files or load a library; not allowed in a job"
            )
    plan = plan_from_proto(job.plan)
    if not math.isfinite(job.timeout_s) or job.timeout_s < 0:
        raise JobError("INVALID_ARGUMENT", f"timeout_s must be a finite number >= 0, got {job.timeout_s!r}")
    if job.timeout_s > max_job_timeout_s:
        raise JobError("INVALID_ARGUMENT", f"timeout_s {job.timeout_s} exceeds the agent's limit of {max_job_timeout_s} s")
    timeout_s = job.timeout_s or job_timeout_s
    if plan.budget_s() > timeout_s:
        raise JobError(
            "INVALID_ARGUMENT",
            f"plan needs up to {plan.budget_s():.1f} s (cooldown + warmup + max_s) but the job deadline is {timeout_s:.1f} s",
        )
    doc = {
        "job_id": job.job_id,
        "runtime": job.runtime,
        "format": job.format or infer_format(job.runtime),
        "threads": job.threads or 1,
        "inputs": inputs,
        "plan": asdict(plan),
        "options": dict(job.options),
        "return_samples": job.return_samples,
        "max_input_bytes": max_input_bytes,
    }
    return doc, timeout_s
