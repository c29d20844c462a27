"""ProxylessNAS w1.3 and ResNet50 end to end on a real local agent: ``lutnas profile --space`` on a slice of each
family at one small resolution, ``validate`` timing whole subnets of each, and a published ProxylessNAS net from
its net.config through the LUT price, an ONNX export and ``lutnas time``.

Each profile times one block of every kind the family has (the rest of the plan is stored beforehand, so the
command resumes past it), at resolution 128.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from agent.testing import start_agent_process
from lut import DeviceSetting, LutStore
from lut.predict import CompiledLut
from lutnas.cli import app
from profiler.client import AgentClient
from profiler.export import export_net_config, export_subnet
from profiler.fleet import AgentRef, ProfileSettings, plan_blocks, profile
from profiler.validate import ValidationError, ValidationSettings, validate
from space import get_space, read_net_config

TOKEN = "families-test-token"
RES = 128
FAMILIES = ("ofa-proxyless-w1.3", "ofa-resnet50")
QUICK_PLAN = {"warmup_count": 2, "warmup_s": 0.0, "min_reps": 5, "min_s": 0.0, "max_reps": 10, "max_s": 0.3,
              "target_rel_ci": 0.05}
NET = "tx2_gpu16-35ms_top1-70.3_finetune-25"  # ProxylessNAS, run.config image_size 128


@pytest.fixture(scope="module")
def agent():
    """One onnxruntime agent; a whole ResNet50 at fp32 is up to 184 MB, more than the default 64 MB message."""
    proc = start_agent_process(token=TOKEN, extra_args=["--max-message-mb", "256"])
    yield proc
    proc.stop()


def _one_per_kind(space: str) -> list:
    first: dict[str, object] = {}
    for block in plan_blocks(space, [RES]):
        first.setdefault(block.kind, block)
    return list(first.values())


def _ort_setting(address: str, name: str) -> DeviceSetting:
    with AgentClient(address, token=TOKEN) as client:
        version = next(r.version for r in client.device_info().runtimes if r.name == "onnxruntime")
    return DeviceSetting(name, "onnxruntime", version, 1, "fp32", "onnx")


@pytest.mark.timeout(300)
@pytest.mark.parametrize("space", FAMILIES)
def test_cli_profiles_every_block_kind_of_the_family(agent, tmp_path: Path, space: str) -> None:
    todo = _one_per_kind(space)
    plan = plan_blocks(space, [RES])
    with LutStore(tmp_path / "lut.db") as store:  # the rest is stored: the profile resumes past it
        store.import_rows(_ort_setting(agent.address, "local"),
                          [(b.key, {"median_ms": 1.0}, None) for b in plan if b not in todo])
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    result = CliRunner().invoke(app, [
        "profile", "--agent", f"local={agent.address}", "--db", str(tmp_path / "lut.db"), "--space", space,
        "--resolutions", str(RES), "--token-file", str(token_file), "--sentinel-every", "3",
        "--cache-dir", str(tmp_path / "artifacts"), "--json"])
    assert result.exit_code == 0, result.output
    (dev,) = json.loads(result.stdout)["devices"]
    assert (dev["timed"], dev["failed"], dev["skipped"]) == (len(todo), 0, len(plan) - len(todo))
    with LutStore(tmp_path / "lut.db") as store:
        rows = store.rows(store.setting("local")).set_index("block_key")
    assert {b.kind for b in todo} == {b.kind for b in plan}
    for block in todo:
        assert rows.loc[block.key, "median_ms"] > 0 and rows.loc[block.key, "median_ms"] != 1.0


@pytest.mark.timeout(300)
@pytest.mark.parametrize("space", FAMILIES)
def test_validate_times_whole_subnets_of_the_family(agent, tmp_path: Path, space: str) -> None:
    with LutStore(tmp_path / "lut.db") as store:
        store.import_rows(_ort_setting(agent.address, "local"),
                          [(b.key, {"median_ms": 0.01 + b.out_chs / 1e4}, None) for b in plan_blocks(space, [RES])])
        settings = ValidationSettings(samples=4, rounds=2, plan=QUICK_PLAN, space=space, resolutions=(RES,),
                                      export_workers=0, pool=200, calibrate=True)
        report = validate(store, "local", agent.address, settings, token=TOKEN)
    assert report.space == space and len(report.samples) == 4
    assert (report.samples["measured_ms"] > 0).all() and (report.samples["repeat_ms"] > 0).all()
    assert report.calibrated is not None and np.isfinite(report.samples["calibrated_ms"]).all()
    sp = get_space(space)
    for arch, predicted in zip(report.samples["arch"], report.samples["predicted_ms"]):
        expected = sum(0.01 + b.out_chs / 1e4 for b in sp.blocks(arch))
        assert predicted == pytest.approx(expected)  # the LUT sum of the very blocks the network runs
    with AgentClient(agent.address, token=TOKEN) as client:  # the agent timed these exact networks
        sha = hashlib.sha256(export_subnet(sp, report.samples["arch"].iloc[0], "onnx")).hexdigest()
        assert client.has_models([sha]) == {sha}


def _quick_validation(store: LutStore, address: str, name: str, space: str) -> ValidationSettings:
    """Store a 1 ms row for every block of ``space``'s plan under setting ``name``; settings for 3 nets, 2 rounds."""
    rows = [(b.key, {"median_ms": 1.0}, None) for b in plan_blocks(space, [RES])]
    store.import_rows(_ort_setting(address, name), rows)
    return ValidationSettings(samples=3, rounds=2, plan=QUICK_PLAN, space=space, resolutions=(RES,), export_workers=0,
                              pool=50)


@pytest.mark.timeout(300)
def test_a_network_larger_than_the_agents_message_limit_is_refused_before_timing(tmp_path: Path) -> None:
    with start_agent_process(token=TOKEN, extra_args=["--max-message-mb", "8"]) as proc, \
            LutStore(tmp_path / "lut.db") as store:
        settings = _quick_validation(store, proc.address, "small", "ofa-resnet50")
        with pytest.raises(ValidationError, match=r"^the largest network is \d+\.\d MB and the agent at \S+ "
                                                  r"accepts messages up to 8 MB; start the agent with "
                                                  r"--max-message-mb \d+$"):
            validate(store, "small", proc.address, settings, token=TOKEN)
        assert store.validation_runs(store.setting("small")).empty


@pytest.mark.timeout(300)
def test_a_published_proxyless_net_is_priced_exported_and_timed(agent, tmp_path: Path, shared_data) -> None:
    folder = shared_data / "ofa" / "specialized" / NET
    resolution = json.loads((folder / "run.config").read_text())["image_size"]
    blocks = read_net_config(folder / "net.config", resolution=resolution)
    space = "ofa-proxyless-w1.3"
    settings = ProfileSettings(space=space, resolutions=(resolution,), plan=QUICK_PLAN, sentinel_every=0,
                               only_keys=tuple(dict.fromkeys(b.key for b in blocks)),
                               cache_dir=str(tmp_path / "artifacts"))
    with LutStore(tmp_path / "lut.db") as store:
        (dev,) = profile(store, [AgentRef("local", agent.address)], settings, token=TOKEN).devices
        assert (dev.timed, dev.failed) == (len(settings.only_keys), [])
        # only the net's own blocks are timed: price them from a table of those rows
        table = dict(zip(*(store.rows(store.setting("local"))[c] for c in ("block_key", "median_ms"))))
    priced = CompiledLut.from_table(table, space, resolutions=[resolution]).predict_blocks(blocks, resolution)
    assert priced == pytest.approx(sum(table[b.key] for b in blocks))
    model = tmp_path / "net.onnx"
    model.write_bytes(export_net_config(folder / "net.config", resolution, "onnx"))
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    result = CliRunner().invoke(app, ["time", str(model), "--agent", f"local={agent.address}",
                                      "--token-file", str(token_file), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["runtime"] == "onnxruntime" and doc["median_ms"] > 0
    # the blocks run back to back cost about what the whole net does (a loose bound: this host is shared)
    assert 0.2 < doc["median_ms"] / priced < 5


@pytest.mark.timeout(300)
def test_validate_resends_a_network_the_agents_cache_dropped(tmp_path: Path) -> None:
    """Whole nets of these families are tens of MB: a small LRU cache turns over within one round."""
    with start_agent_process(token=TOKEN, extra_args=["--cache-mb", "30"]) as proc, \
            LutStore(tmp_path / "lut.db") as store:
        settings = _quick_validation(store, proc.address, "lru", "ofa-proxyless-w1.3")
        report = validate(store, "lru", proc.address, settings, token=TOKEN)
    assert (report.samples["round_medians_ms"].map(len) == 2).all()
    assert (report.samples["measured_ms"] > 0).all()
