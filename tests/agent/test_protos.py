"""The committed generated modules match agent.proto."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from protos.generate import REPO_ROOT, generate

pytest.importorskip("grpc_tools")


def test_generated_modules_are_current(tmp_path: Path) -> None:
    written = generate(tmp_path)
    assert written
    stale = []
    for path in written:
        committed = REPO_ROOT / path.relative_to(tmp_path)
        if not committed.exists() or committed.read_bytes() != path.read_bytes():
            stale.append(str(committed.relative_to(REPO_ROOT)))
    assert not stale, f"regenerate with `python protos/generate.py`: stale {stale}"


def test_generated_code_imports_as_package() -> None:
    grpc_mod = importlib.import_module("protos.agent_pb2_grpc")
    assert hasattr(grpc_mod, "AgentStub")
    assert "from protos import agent_pb2" in Path(grpc_mod.__file__).read_text()
