"""The agent's secrets and log: a token file others may read is named at start, key files are created
exclusively (no symlink followed), and names from clients and models reach the log with controls escaped."""

from __future__ import annotations

import stat
from pathlib import Path

from typer.testing import CliRunner

from agent.testing import start_agent_process, wait_until
from lutnas.cli import app
from profiler.client import AgentClient, make_job

runner = CliRunner()


def _warning(agent, token_file: Path) -> list[str]:
    return [line for line in agent.stderr_lines if str(token_file) in line and "chmod 600" in line]


def test_a_token_file_others_may_read_is_named_at_start(tmp_path: Path) -> None:
    token_file = tmp_path / "agent.token"
    token_file.write_text("s3cret-token\n")
    token_file.chmod(0o644)
    with start_agent_process(token="s3cret-token", extra_args=["--token-file", str(token_file)]) as agent:
        assert wait_until(lambda: bool(_warning(agent, token_file)), timeout_s=5.0), agent.stderr_lines
        (line,) = _warning(agent, token_file)
        assert "0644" in line and "s3cret" not in line
    token_file.chmod(0o600)
    with start_agent_process(token="s3cret-token", extra_args=["--token-file", str(token_file)]) as agent:
        with AgentClient(agent.address, token=agent.token) as client:
            client.device_info()  # the agent is up and its start-up lines are written
    assert not _warning(agent, token_file), agent.stderr_lines


def test_agent_cert_never_writes_through_a_symlink(tmp_path: Path) -> None:
    out, stolen_key, stolen_crt = tmp_path / "pair", tmp_path / "stolen.key", tmp_path / "stolen.crt"
    out.mkdir()
    (out / "agent.key").symlink_to(stolen_key)  # dangling: planted where the key will go
    (out / "agent.crt").symlink_to(stolen_crt)
    args = ["agent", "cert", "--out-dir", str(out), "--name", "localhost"]
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output
    assert len(res.output.strip().splitlines()) == 1 and "--force" in res.output
    assert not stolen_key.exists() and not stolen_crt.exists()

    res = runner.invoke(app, [*args, "--force"])
    assert res.exit_code == 0, res.output
    assert not stolen_key.exists() and not stolen_crt.exists()
    key, crt = out / "agent.key", out / "agent.crt"
    assert not key.is_symlink() and not crt.is_symlink()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert crt.read_text().startswith("-----BEGIN CERTIFICATE-----")
    assert sorted(p.name for p in out.iterdir()) == ["agent.crt", "agent.key"]  # no temporary file left


def _onnx_with_op(op_type: str, node_name: str) -> bytes:
    from onnx import TensorProto, helper

    node = helper.make_node(op_type, ["x"], ["y"], name=node_name)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def test_names_from_outside_reach_the_agent_log_escaped() -> None:
    model = _onnx_with_op("Evil\x1b]0;pwned\x07", "n\x1b[2J")
    with start_agent_process(extra_args=["--runtimes", "onnxruntime"]) as agent:
        with AgentClient(agent.address, token=agent.token) as client:
            (result,) = client.benchmark([make_job(model, runtime="onnxruntime", job_id="job\x1b[31m")])
        assert "\x1b" in result.error.message  # the runtime's text names the op as the model spells it
        assert wait_until(lambda: any("Evil" in line for line in agent.stderr_lines), timeout_s=5.0), agent.stderr_lines
        log = "\n".join(agent.stderr_lines)
    assert "\x1b" not in log and "\x07" not in log
    assert "Evil\\x1b]0;pwned\\x07" in log
