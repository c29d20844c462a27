"""Bounded fuzzing of everything that reads outside input: every case ends in a result or a clear error.

Covered: the LUT importers (OFA yaml, nsganetv2 yaml, CSV, Parquet), net.config and arch parsing, the
agent's job check, and its ONNX, TFLite and ``.pt2`` model checks. "A clear error" means the documented
exception type (``ValueError`` and its subclasses on the host, ``JobError`` in the agent) with a
one-line message of bounded length; anything else (another exception type, a RecursionError, an
unbounded message) fails the test. Runtimes that could crash natively on a hostile model (TFLite,
torch) are fuzzed through a real agent, whose worker process takes the crash; the agent must keep
serving. ``benchmarks/fuzz_bench.py`` runs the same targets for longer.
"""

from __future__ import annotations

import io
import json
import os
from collections import Counter
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.errors import JobError
from agent.jobs import validate_job
from agent.runtimes.onnxruntime_rt import check_self_contained
from agent.testing import AgentProcess, onnx_conv, tflite_add
from lut.importers import read_rows
from profiler.client import AgentCallError, AgentClient, make_job
from space import Subnet, get_space, read_net_config

from tests.security import _fuzz as fz

# benchmarks/fuzz_bench.py scales the case counts up and draws fresh cases; the suite's run is fixed.
SCALE = float(os.environ.get("LUTNAS_FUZZ_SCALE", "1"))
_SETTINGS = dict(deadline=None, derandomize=SCALE == 1, suppress_health_check=list(HealthCheck), database=None)
CASES: Counter[str] = Counter()  # cases run per target, written to LUTNAS_FUZZ_REPORT when set
# The longest one-line error any target may give: a few names and a ~200-character quote of a value.
MAX_MESSAGE_CHARS = 1000


def _n(examples: int) -> int:
    return max(1, round(examples * SCALE))


@pytest.fixture(autouse=True)
def _count_cases(request: pytest.FixtureRequest):
    """Count the cases each target runs (hypothesis calls the wrapped body once per case)."""
    before = CASES.total()
    yield
    report = os.environ.get("LUTNAS_FUZZ_REPORT")
    if report:
        with open(report, "a") as out:
            out.write(json.dumps({"test": request.node.name, "cases": CASES.total() - before}) + "\n")


def _clear(err: BaseException) -> None:
    """Fail unless ``err`` reads as one bounded line."""
    text = str(err)
    assert "\n" not in text.strip(), f"{type(err).__name__} spans lines: {text[:300]!r}"
    assert len(text) <= MAX_MESSAGE_CHARS, f"{type(err).__name__} message is {len(text)} characters"


# -- LUT importers ------------------------------------------------------------------------------------


def _import(tmp: Path, name: str, payload: bytes, fmt: str) -> None:
    path = tmp / name
    path.write_bytes(payload)
    try:
        rows = read_rows([path], fmt)
    except ValueError as err:  # ImportFormatError is a ValueError
        _clear(err)
        return
    assert isinstance(rows, list)


@pytest.mark.parametrize("fmt", ["ofa-yaml", "nsganetv2-yaml", "csv"])
def test_text_importers(fmt: str, tmp_path: Path) -> None:
    seed = fz.SEEDS[fmt]
    name = {"ofa-yaml": "224_lookup_table.yaml", "nsganetv2-yaml": "lut.yaml", "csv": "lut.csv"}[fmt]
    count = {"n": 0}

    @settings(max_examples=_n(400), **_SETTINGS)
    @given(st.data())
    def fuzz(data: st.DataObject) -> None:
        CASES["case"] += 1
        _import(tmp_path, name, fz.mutate_text(seed, data, fz.TOKENS[fmt]).encode("utf-8", "surrogatepass"), fmt)
        count["n"] += 1

    fuzz()
    assert count["n"] >= 300


def test_parquet_importer(tmp_path: Path) -> None:
    buf = io.BytesIO()
    pd.read_csv(io.StringIO(fz.SEEDS["csv"])).to_parquet(buf)
    seed = buf.getvalue()

    @settings(max_examples=_n(200), **_SETTINGS)
    @given(st.data())
    def fuzz(data: st.DataObject) -> None:
        CASES["case"] += 1
        _import(tmp_path, "lut.parquet", fz.mutate_bytes(seed, data), "parquet")

    fuzz()


@settings(max_examples=_n(300), **_SETTINGS)
@given(fz.json_values(), st.sampled_from(["ofa-yaml", "nsganetv2-yaml"]))
def test_yaml_importers_any_document(doc: object, fmt: str) -> None:
    # Structurally odd documents: lists where maps go, maps where numbers go, deep nesting.
    CASES["case"] += 1
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        _import(Path(tmp), "160_lookup_table.yaml", json.dumps(doc).encode(), fmt)


# -- net.config and arch ------------------------------------------------------------------------------


def test_net_config_parsing(shared_data: Path) -> None:
    seeds = [json.loads(p.read_text()) for p in sorted((shared_data / "ofa" / "specialized").glob("*/net.config"))[:6]]

    @settings(max_examples=_n(400), **_SETTINGS)
    @given(st.data())
    def fuzz(data: st.DataObject) -> None:
        CASES["case"] += 1
        cfg = fz.mutate_json(data.draw(st.sampled_from(seeds)), data)
        if isinstance(cfg, str):  # a string names a file: test_net_config_text covers files
            return
        try:
            blocks = read_net_config(cfg, data.draw(st.sampled_from([160, 224, 0, -3, 10**9])))
        except ValueError as err:
            _clear(err)
            return
        assert isinstance(blocks, list)

    fuzz()


def test_net_config_text(tmp_path: Path) -> None:
    # The file path: bytes that are not JSON, or JSON nested past any recursion limit.
    path = tmp_path / "net.config"

    @settings(max_examples=_n(150), **_SETTINGS)
    @given(st.one_of(st.binary(max_size=200), st.integers(1, 200_000).map(lambda n: b"[" * n + b"]" * n),
                     st.integers(1, 200_000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n)))
    def fuzz(payload: bytes) -> None:
        CASES["case"] += 1
        path.write_bytes(payload)
        try:
            read_net_config(path, 224)
        except ValueError as err:
            _clear(err)

    fuzz()


def test_arch_parsing() -> None:
    space = get_space("ofa-mbv3-w1.0")
    valid = {"ks": [3] * 20, "e": [4] * 20, "d": [2] * 5, "r": 224}

    @settings(max_examples=_n(500), **_SETTINGS)
    @given(st.data())
    def fuzz(data: st.DataObject) -> None:
        CASES["case"] += 1
        arch = fz.mutate_json(valid, data)
        try:
            subnet = Subnet.parse(arch)
            blocks = space.blocks(subnet)
        except ValueError as err:
            _clear(err)
            return
        assert blocks

    fuzz()


# -- the agent's checks, in process --------------------------------------------------------------------


def test_job_check() -> None:
    offered, known = ("onnxruntime", "tflite", "torch"), ("onnxruntime", "tflite", "torch", "benchmark_model")

    @settings(max_examples=_n(600), **_SETTINGS)
    @given(fz.jobs())
    def fuzz(job: object) -> None:
        CASES["case"] += 1
        try:
            doc, timeout_s = validate_job(job, offered, known, 1 << 24, 60.0, 600.0)
        except JobError as err:
            _clear(err)
            return
        assert doc["runtime"] in offered and timeout_s > 0

    fuzz()


def test_onnx_check() -> None:
    seed = onnx_conv(4, 8)

    @settings(max_examples=_n(500), **_SETTINGS)
    @given(st.data())
    def fuzz(data: st.DataObject) -> None:
        CASES["case"] += 1
        try:
            check_self_contained(fz.mutate_bytes(seed, data))
        except JobError as err:
            _clear(err)

    fuzz()


def _pt2_seed() -> bytes:
    import torch

    buf = io.BytesIO()
    program = torch.export.export(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()), (torch.zeros(1, 3, 8, 8),))
    torch.export.save(program, buf)
    return buf.getvalue()


def test_pt2_check() -> None:
    import torch

    from agent.runtimes.torch_rt import check_pt2_archive

    seed = _pt2_seed()
    members = zipfile.ZipFile(io.BytesIO(seed)).namelist()

    @settings(max_examples=_n(300), **_SETTINGS)
    @given(st.data())
    def fuzz(data: st.DataObject) -> None:
        CASES["case"] += 1
        if data.draw(st.booleans()):
            blob = fz.mutate_bytes(seed, data)
        else:  # a well-formed zip with one member's text mutated: the checks past the zip layer
            blob = fz.mutate_zip_member(seed, data.draw(st.sampled_from(members)), data)
        try:
            check_pt2_archive(torch, blob)
        except JobError as err:
            _clear(err)

    fuzz()


# -- hostile models through a real agent --------------------------------------------------------------


@pytest.fixture(scope="module")
def agent() -> AgentProcess:
    from agent.testing import start_agent_process

    proc = start_agent_process(extra_args=["--runtimes", "onnxruntime,tflite,torch"])
    yield proc
    proc.stop()


_PLAN = {"warmup_count": 1, "warmup_s": 0.0, "min_reps": 2, "min_s": 0.0, "max_reps": 3, "max_s": 0.2}
_JOB_CODES = {"INVALID_ARGUMENT", "FAILED_PRECONDITION", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED", "ABORTED"}


@pytest.mark.parametrize("runtime", ["tflite", "torch"])
def test_models_through_the_agent(agent: AgentProcess, runtime: str) -> None:
    seed = tflite_add(8) if runtime == "tflite" else _pt2_seed()
    fmt = "tflite" if runtime == "tflite" else "pt2"
    outcomes: dict[str, int] = {}
    with AgentClient(agent.address, token=agent.token, timeout_s=30.0) as client:

        @settings(max_examples=_n(40), **_SETTINGS)
        @given(st.data())
        def fuzz(data: st.DataObject) -> None:
            CASES["case"] += 1
            job = make_job(fz.mutate_bytes(seed, data), runtime=runtime, format=fmt, plan=_PLAN, job_timeout_s=20.0)
            try:
                (result,) = client.benchmark([job], timeout_s=40.0)
            except AgentCallError as err:
                assert err.code in {"RESOURCE_EXHAUSTED", "INVALID_ARGUMENT"}, err
                return
            kind = result.WhichOneof("outcome")
            if kind == "error":
                assert result.error.code in _JOB_CODES, result.error
                _clear(RuntimeError(result.error.message))
                kind = result.error.code
            outcomes[kind] = outcomes.get(kind, 0) + 1

        fuzz()
        assert client.health() == "SERVING"
        assert client.time_model(seed, runtime, format=fmt, plan=_PLAN).stats.n >= 2
    assert agent.alive()
    assert outcomes.get("INVALID_ARGUMENT", 0) > 0, outcomes
