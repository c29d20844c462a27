"""Every runtime x format x precision the profiler accepts profiles end to end on a real local agent, and every other
one is refused up front with one line (exit 2 from the CLI, before any agent is asked anything).

The agent is one process serving onnxruntime, LiteRT, torch (CPU) and benchmark_model (the LiteRT stand-in of
tests/agent/adb_standin). Each profile times a small slice of the digits space: its first conv, one MBConv and its
classifier at one resolution.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import platform
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from agent.testing import start_agent_process
from lut import DeviceSetting, LutStore
from lutnas.cli import app
from profiler.artifacts import ArtifactCache
from profiler.client import AgentClient
from profiler.fleet import AgentRef, ProfileSettings, plan_blocks, profile
from profiler.quantize import unsupported_precision
from profiler.vocabulary import COMBINATIONS, FORMATS, RUNTIMES
from space.precision import PRECISIONS

TOKEN = "combinations-test-token"
SPACE = "ofa-mbv3-w0.25"
RES = 12
QUICK_PLAN = {"warmup_count": 2, "warmup_s": 0.0, "min_reps": 5, "min_s": 0.0, "max_reps": 10, "max_s": 0.3,
              "target_rel_ci": 0.05}
STANDIN = Path(__file__).resolve().parents[1] / "agent" / "adb_standin" / "benchmark_model"
# Runtime options a combination needs (torch's fp16 is timed on a CUDA device only).
OPTIONS = {("torch", "fp16"): {"device": "cuda"}}


def _slice() -> list:
    blocks = plan_blocks(SPACE, [RES])
    return [blocks[0], next(b for b in blocks if b.kind == "mbconv"), blocks[-1]]


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    """One agent serving all four runtimes; benchmark_model is the LiteRT stand-in run by this interpreter."""
    folder = tmp_path_factory.mktemp("standin")
    binary = folder / "benchmark_model"
    binary.write_text(STANDIN.read_text().replace("#!/usr/bin/env python3", f"#!{sys.executable}", 1))
    binary.chmod(0o755)
    proc = start_agent_process(token=TOKEN, extra_args=["--benchmark-model-bin", str(binary)])
    yield proc
    proc.stop()


def _case(runtime: str, fmt: str, precision: str):
    marks = []
    if OPTIONS.get((runtime, precision), {}).get("device") == "cuda":
        marks.append(pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"))
    return pytest.param(runtime, fmt, precision, marks=marks, id=f"{runtime}-{fmt}-{precision}")


@pytest.mark.timeout(300)
@pytest.mark.parametrize(("runtime", "fmt", "precision"), [_case(*c) for c in COMBINATIONS])
def test_every_supported_combination_profiles_end_to_end(agent, tmp_path: Path, runtime: str, fmt: str,
                                                         precision: str) -> None:
    options = OPTIONS.get((runtime, precision), {})
    todo = _slice()
    settings = ProfileSettings(space=SPACE, resolutions=(RES,), runtime=runtime, fmt=fmt, precision=precision,
                               options=options, plan=QUICK_PLAN, sentinel_every=0, only_keys=tuple(b.key for b in todo),
                               cache_dir=str(tmp_path / "artifacts"))
    refusal = unsupported_precision(runtime, precision, platform.machine(), options)
    with LutStore(tmp_path / "lut.db") as store:
        (dev,) = profile(store, [AgentRef("local", agent.address)], settings, token=TOKEN).devices
        if refusal is not None:  # onnxruntime's x86 CPU provider at fp16: this device cannot, every block says why
            assert dev.timed == 0 and {f.reason for f in dev.failed} == {refusal} and not store.settings()
            return
        assert (dev.timed, dev.failed, dev.aborted) == (len(todo), [], "")
        stored = store.setting("local").setting
        assert (stored.runtime, stored.model_format, stored.precision) == (runtime, fmt, precision)
        rows = store.rows(store.setting("local")).set_index("block_key")
    cache = ArtifactCache(tmp_path / "artifacts", precision=precision)
    for block in todo:
        extra = json.loads(rows.loc[block.key, "extra"])
        assert extra["model_sha256"] == cache.lookup(block, fmt)  # the agent timed this format at this precision
        assert rows.loc[block.key, "median_ms"] > 0
        if runtime == "torch":
            assert extra["options"]["format"] == "pt2"


def _unsupported() -> list:
    """Runtime x format x precision triples the table leaves out, unknown names among them, and torch's fp16 on
    its default device (the CPU)."""
    runtimes, formats, precisions = (*RUNTIMES, "tvm"), (*FORMATS, "torchscript"), (*PRECISIONS, "int4")
    triples = [t for t in itertools.product(runtimes, formats, precisions) if t not in COMBINATIONS]
    return [*triples, ("torch", "pt2", "fp16")]


def test_the_table_is_what_each_exporter_and_runtime_support() -> None:
    assert set(COMBINATIONS) == {
        *(("onnxruntime", "onnx", p) for p in PRECISIONS),
        *(("tflite", "tflite", p) for p in PRECISIONS),
        *(("benchmark_model", "tflite", p) for p in PRECISIONS),
        ("torch", "pt2", "fp32"), ("torch", "pt2", "fp16"),
    }


@pytest.mark.parametrize(("runtime", "fmt", "precision"), _unsupported())
def test_every_other_combination_is_refused_up_front_in_one_line(tmp_path: Path, runtime: str, fmt: str,
                                                                 precision: str) -> None:
    db = tmp_path / "lut.db"
    args = ["profile", "--agent", "x=127.0.0.1:1", "--db", str(db), "--space", SPACE, "--resolutions", str(RES),
            "--runtime", runtime, "--format", fmt, "--precision", precision]
    result = CliRunner().invoke(app, args)
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error: ") and " must be " in lines[0], result.output
    assert "Traceback" not in result.output and not db.exists()
    with pytest.raises(ValueError, match=r"^[^\n]+ must be [^\n]+, got '[^\n]+'$"):
        ProfileSettings(space=SPACE, resolutions=(RES,), runtime=runtime, fmt=fmt, precision=precision).validate()


def test_the_refusals_name_what_is_supported() -> None:
    def message(**kw) -> str:
        with pytest.raises(ValueError) as err:
            ProfileSettings(**kw).validate()
        return str(err.value)

    assert message(runtime="tvm") == "runtime must be one of onnxruntime, tflite, torch, benchmark_model, got 'tvm'"
    assert message(runtime="torch", fmt="torchscript") == "the model format for runtime torch must be pt2, got 'torchscript'"
    assert message(runtime="torch", precision="int8") == \
        "the precision for torch (pt2) must be one of fp32, fp16, got 'int8'"
    assert message(runtime="torch", precision="fp16").startswith("torch's device at fp16 must be cuda")
    assert message(runtime="onnxruntime", fmt="tflite") == \
        "the model format for runtime onnxruntime must be onnx, got 'tflite'"
    assert message(rounds=0) == "rounds must be >= 1, got 0"
    # a caller's own exporter (a synthetic runtime) is not held to the exporters' table
    ProfileSettings(runtime="sleep", fmt="json").validate(own_exports=True)


@pytest.mark.timeout(300)
def test_cli_profiles_with_torch(agent, tmp_path: Path) -> None:
    """``lutnas profile --runtime torch`` used to die with a traceback (no exporter wrote its format)."""
    todo = _slice()
    with AgentClient(agent.address, token=TOKEN) as client:
        version = next(r.version for r in client.device_info().runtimes if r.name == "torch")
    with LutStore(tmp_path / "lut.db") as store:  # every other block is already stored: the profile resumes past them
        setting = DeviceSetting("local", "torch", version, 1, "fp32", "pt2")
        store.import_rows(setting, [(b.key, {"median_ms": 1.0}, None) for b in plan_blocks(SPACE, [RES]) if b not in todo])
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    result = CliRunner().invoke(app, [
        "profile", "--agent", f"local={agent.address}", "--db", str(tmp_path / "lut.db"), "--space", SPACE,
        "--resolutions", str(RES), "--runtime", "torch", "--token-file", str(token_file), "--sentinel-every", "0",
        "--cache-dir", str(tmp_path / "artifacts"), "--json"])
    assert result.exit_code == 0, result.output
    (dev,) = json.loads(result.stdout)["devices"]
    assert (dev["timed"], dev["failed"], dev["skipped"]) == (len(todo), 0, len(plan_blocks(SPACE, [RES])) - len(todo))
    with LutStore(tmp_path / "lut.db") as store:
        rows = store.rows(store.setting("local")).set_index("block_key")
    for block in todo:
        sha = json.loads(rows.loc[block.key, "extra"])["model_sha256"]
        assert sha == hashlib.sha256(ArtifactCache(tmp_path / "artifacts").get(block, "pt2")[1]).hexdigest()


@pytest.mark.timeout(300)
def test_a_torch_lut_validates_against_pt2_networks(agent, tmp_path: Path) -> None:
    from profiler.export import export_subnet
    from profiler.validate import ValidationError, ValidationSettings, validate
    from space import get_space

    with AgentClient(agent.address, token=TOKEN) as client:
        version = next(r.version for r in client.device_info().runtimes if r.name == "torch")
    with LutStore(tmp_path / "lut.db") as store:
        setting = DeviceSetting("local", "torch", version, 1, "fp32", "pt2")
        store.import_rows(setting, [(b.key, {"median_ms": 0.01 + b.out_chs / 1e4}, None)
                                    for b in plan_blocks(SPACE, [RES])])
        settings = ValidationSettings(samples=3, rounds=2, plan=QUICK_PLAN, space=SPACE, resolutions=(RES,),
                                      export_workers=0)
        report = validate(store, "local", agent.address, settings, token=TOKEN)
        assert len(report.samples) == 3 and (report.samples["measured_ms"] > 0).all()
        # a LUT of a combination no exporter writes is refused before anything is timed
        store.import_rows(DeviceSetting("old", "torch", version, 1, "fp32", "torchscript"),
                          [(plan_blocks(SPACE, [RES])[0].key, {"median_ms": 1.0}, None)])
        with pytest.raises(ValidationError, match="^device 'old': cannot export whole networks: the model format for "
                                                  "runtime torch must be pt2, got 'torchscript'$"):
            validate(store, "old", agent.address, settings, token=TOKEN)
    sha = hashlib.sha256(export_subnet(get_space(SPACE), report.samples["arch"].iloc[0], "pt2")).hexdigest()
    with AgentClient(agent.address, token=TOKEN) as client:
        assert client.has_models([sha]) == {sha}  # the agent timed the whole network as a .pt2 archive
