"""CLI fixtures: a writable copy of the reference store (Note10 w1.2 OFA yaml, i7 w1.0 nsganetv2 yaml)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.lut.conftest import ref_db  # noqa: F401 - the session-wide reference store

__all__ = ["invoke", "invoke_json"]


@pytest.fixture()
def db(ref_db: Path, tmp_path: Path) -> Path:  # noqa: F811 - uses the imported fixture
    path = tmp_path / "lut.db"
    shutil.copy(ref_db, path)
    return path


def invoke(*args: object):
    """Run ``lutnas ARGS`` in-process; returns typer's result (stdout and stderr apart)."""
    from lutnas.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def invoke_json(*args: object):
    """Run ``lutnas ARGS --json``, check it succeeded and return the parsed document."""
    result = invoke(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def one_line(text: str) -> str:
    """The text with its line wrapping undone (rich wraps long messages)."""
    return " ".join(text.split())
