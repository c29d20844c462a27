"""An agent-only install from the built wheel, in a fresh venv without torch or pandas, serves and talks to agents.

This is what a board runs: ``pip install "lutnas[agent,onnx]"`` (or ``[agent,tflite]``), then
``lutnas agent serve``, ``python -m agent``, ``lutnas devices`` and ``lutnas time``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
import typer.main

from agent.testing import onnx_conv, start_agent_process, tflite_add
from lutnas.cli import app

# Heavy host-side packages the agent extra must not pull in.
_HOST_ONLY = ("torch", "pandas", "onnx", "sklearn", "scipy", "matplotlib")


def _make_venv(wheel: Path, extras: str, where: Path) -> Path:
    venv = where / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    # The host's pip installs into the venv: same index settings and cache, no pip bootstrap per venv.
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", f"{wheel}[{extras}]"],
        check=True,
        timeout=600,
        stderr=subprocess.DEVNULL,
        env=_clean_env(),  # with the checkout on PYTHONPATH, pip would take lutnas as installed already
    )
    return venv


def _clean_env() -> dict[str, str]:
    # Without PYTHONPATH the venv can only see the installed wheel, not this checkout.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LUTNAS_TOKEN")}
    return env


def _command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = []
    for name, cmd in sorted(group.commands.items()):
        if isinstance(cmd, click.Group):
            paths += _command_paths(cmd, (*prefix, name))
        else:
            paths.append((*prefix, name))
    return paths


@pytest.mark.parametrize(
    ("extras", "model_name", "model"),
    [("agent,onnx", "conv.onnx", lambda: onnx_conv(8, 16)), ("agent,tflite", "add.tflite", lambda: tflite_add(16))],
)
def test_agent_only_install_serves(built_wheel: Path, tmp_path: Path, extras: str, model_name: str, model) -> None:
    venv = _make_venv(built_wheel, extras, tmp_path)
    bin_dir = venv / "bin"
    env = _clean_env()
    missing = subprocess.run(
        [str(bin_dir / "python"), "-c", f"import importlib.util as u; print([m for m in {_HOST_ONLY!r} if u.find_spec(m)])"],
        capture_output=True, text=True, check=True, env=env, cwd=tmp_path,
    ).stdout.strip()
    assert missing == "[]", f"[{extras}] installed host-only packages: {missing}"
    model_file = tmp_path / model_name
    model_file.write_bytes(model())
    pure_env = {"PYTHONPATH": ""}
    with (
        start_agent_process(token=None, command=[str(bin_dir / "lutnas"), "agent", "serve"], env=pure_env) as served,
        start_agent_process(token=None, python=str(bin_dir / "python"), env=pure_env) as module_agent,
    ):
        devices = subprocess.run(
            [str(bin_dir / "lutnas"), "devices", served.address, module_agent.address, "--json"],
            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
        )
        assert devices.returncode == 0, devices.stderr
        docs = json.loads(devices.stdout)["devices"]
        assert [d["address"] for d in docs] == [served.address, module_agent.address]
        assert all(d["machine"] and d["cpu_cores"] >= 1 for d in docs)
        timed = subprocess.run(
            [str(bin_dir / "lutnas"), "time", "--agent", f"dev={module_agent.address}", str(model_file), "--json"],
            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
        )
        assert timed.returncode == 0, timed.stderr
        doc = json.loads(timed.stdout)
        assert doc["runtime"] == ("onnxruntime" if model_name.endswith(".onnx") else "tflite")
        assert doc["n"] >= 1 and doc["median_ms"] > 0
    if extras == "agent,onnx":
        # Every command of the checkout's CLI answers --help from the agent-only install (lazy imports).
        for path in _command_paths(typer.main.get_command(app)):
            shown = subprocess.run(
                [str(bin_dir / "lutnas"), *path, "--help"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60
            )
            assert shown.returncode == 0 and "Usage" in shown.stdout, f"lutnas {' '.join(path)} --help: {shown.stderr[-300:]}"
