"""Whole OFA networks through ``lutnas time`` on a real local agent: a published specialized net of each family and
width (exported from its net.config at its run.config resolution), and ResNet50's largest subnet, which is larger
than the agent's default message limit: refused by the host in one line naming the flag, timed by an agent started
with that flag. (All 50 published nets: ``benchmarks/families_bench.py --all-nets``.)"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.testing import start_agent_process
from lutnas.cli import app
from profiler.export import export_net_config, export_subnet
from space import get_space

from tests.conftest import SHARED_DATA

SPECIALIZED = SHARED_DATA / "ofa" / "specialized"
# The flag the host names for ResNet50's largest subnet (184 MB at fp32), rounded up to 16 MB.
RESNET_MESSAGE_MB = 192
LARGEST_RESNET = {"d": [2] * 5, "e": [0.35] * 18, "w": [2] * 6, "r": 224}


@pytest.fixture(scope="module")
def agent():
    proc = start_agent_process(token=None, extra_args=["--max-message-mb", str(RESNET_MESSAGE_MB)])
    yield proc
    proc.stop()


def _time(address: str, model: Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["time", "--agent", f"local={address}", str(model), "--json"])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.timeout(300)
@pytest.mark.parametrize("net", [
    "note10_lat-8ms_top1-71.4_finetune-25",  # MobileNetV3 w1.0, r 160
    "note10_lat-64ms_top1-80.2_finetune-75",  # MobileNetV3 w1.2, r 260
    "v100_gpu64-11ms_top1-76.1_finetune-25",  # ProxylessNAS w1.3, r 192
])
def test_a_published_net_of_each_family_and_width_is_exported_and_timed(agent, tmp_path: Path, net: str) -> None:
    folder = SPECIALIZED / net
    resolution = json.loads((folder / "run.config").read_text())["image_size"]
    model = tmp_path / f"{net}.onnx"
    model.write_bytes(export_net_config(folder / "net.config", resolution, "onnx"))
    code, stdout, stderr = _time(agent.address, model)
    assert code == 0, stderr
    doc = json.loads(stdout)
    assert doc["device"] == "local" and doc["runtime"] == "onnxruntime" and doc["median_ms"] > 0
    assert doc["model_sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()


@pytest.mark.timeout(300)
def test_resnet50s_largest_subnet_is_refused_by_a_default_agent_and_timed_by_one_started_as_told(
        agent, tmp_path: Path) -> None:
    model = tmp_path / "resnet50-largest.onnx"
    model.write_bytes(export_subnet(get_space("ofa-resnet50"), LARGEST_RESNET, "onnx"))
    size_mb = model.stat().st_size / 2**20
    assert 64 < size_mb <= RESNET_MESSAGE_MB
    with start_agent_process(token=None) as default:
        code, _, stderr = _time(default.address, model)
        assert code == 2
        (line,) = [x for x in stderr.splitlines() if x.startswith("error:")]
        assert line == (f"error: model {model.name} is {size_mb:.1f} MB and the agent at {default.address} accepts "
                        "messages up to 64 MB; "
                        f"start the agent with --max-message-mb {RESNET_MESSAGE_MB}")
    code, stdout, stderr = _time(agent.address, model)
    assert code == 0, stderr
    assert json.loads(stdout)["median_ms"] > 0
