"""docs/api.md's worked example runs as written: its python blocks, in order, in one namespace, in an empty
directory (a real agent process, real profiles, a supernet trained briefly, searches and a comparison)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def test_the_example_has_its_steps() -> None:
    code = "\n".join(_blocks())
    for call in ("start_agent_process", "lutnas.profile(", "lutnas.validate(", "lutnas.sweep(", "lutnas.compare(",
                 "pd.DataFrame("):
        assert call in code, call


def test_the_worked_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "api_doc"}
    try:
        for i, block in enumerate(_blocks()):
            exec(compile(block, f"{DOC.name}[python block {i + 1}]", "exec"), namespace)  # noqa: S102 - our own doc
    finally:
        agent = namespace.get("agent")
        if agent is not None and agent.alive:
            agent.stop()
    out = capsys.readouterr().out
    assert len(namespace["results"]) == 2 and namespace["results"]["feasible"].all()
    assert namespace["pairs"][["a", "b"]].values.tolist() == [["cpu:onnxruntime", "cpu:tflite"]]
    assert "regret" in namespace["compared"].to_dict()
    assert "onnxruntime" in out and (tmp_path / "accuracy.csv").is_file()
