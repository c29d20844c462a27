"""docs/spaces.md's worked custom space runs as written: its JSON is the space file, and its ``lutnas profile`` and
``lutnas lut predict`` lines run in an empty directory against a real agent process (the page's address swapped
for the agent's)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.testing import start_agent_process
from lutnas.cli import app
from space import get_space
from space.spec import load_space_file

DOC = Path(__file__).resolve().parents[2] / "docs" / "spaces.md"
PAGE_ADDRESS = "127.0.0.1:50051"


def _commands(prefix: str) -> list[str]:
    lines = [line.strip() for block in re.findall(r"```bash\n(.*?)```", DOC.read_text(), flags=re.S)
             for line in block.splitlines()]
    return [line for line in lines if line.startswith(prefix)]


def test_the_space_file_is_the_pages_json(tmp_path: Path) -> None:
    (text,) = re.findall(r"```json\n(.*?)```", DOC.read_text(), flags=re.S)
    path = tmp_path / "my-space.json"
    path.write_text(text)
    space = load_space_file(path)
    assert space.name == "my-space" and space.resolutions == (32,) and space.n_classes == 10
    assert get_space(path).name == "my-space"  # --space FILE takes the same path
    doc = json.loads(text)
    doc["stages"][1]["stride"] = 3
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=r"stages\[1\]\.stride must be one of 1, 2, got 3"):
        load_space_file(path)


def test_the_pages_yaml_is_the_same_space(tmp_path: Path) -> None:
    (text,) = re.findall(r"```json\n(.*?)```", DOC.read_text(), flags=re.S)
    (yaml_text,) = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), flags=re.S)
    (tmp_path / "my-space.json").write_text(text)
    (tmp_path / "my-space.yaml").write_text(yaml_text)
    assert get_space(tmp_path / "my-space.yaml") == load_space_file(tmp_path / "my-space.json")
    (tmp_path / "bad.yaml").write_text(yaml_text.replace("stride: 2, act: h_swish, se: true}", "stride: 3}", 1))
    with pytest.raises(ValueError, match=r"^space file \S+bad.yaml: stages\[1\]\.stride must be one of 1, 2, got 3$"):
        get_space(str(tmp_path / "bad.yaml"))


@pytest.mark.timeout(300)
def test_profile_and_predict_as_the_page_says(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (text,) = re.findall(r"```json\n(.*?)```", DOC.read_text(), flags=re.S)
    Path("my-space.json").write_text(text)
    (profile,) = _commands("lutnas profile ")
    (predict,) = _commands("lutnas lut predict ")
    runner = CliRunner()
    with start_agent_process(token="") as agent:
        Path("token.txt").write_text(agent.token)
        argv = shlex.split(profile.replace(PAGE_ADDRESS, agent.address))[1:]
        result = runner.invoke(app, [*argv, "--json"])
        assert result.exit_code == 0, result.output
    space = load_space_file("my-space.json")
    doc = json.loads(result.stdout)
    assert doc["devices"][0]["timed"] == len(space.unique_blocks([32]))
    result = runner.invoke(app, [*shlex.split(predict)[1:], "--json"])
    assert result.exit_code == 0, result.output
    priced = json.loads(result.stdout)
    # The report names the space as it was given (the file: its name is registered nowhere).
    assert priced["space"] == "my-space.json" and get_space(priced["space"]).name == "my-space"
    assert priced["raw_ms"] > 0 and priced["latency_ms"] == pytest.approx(priced["raw_ms"])
    # Without the file: the store recorded the space with the LUT, and finds it by itself.
    Path("my-space.json").unlink()
    argv = shlex.split(predict)[1:]
    del argv[argv.index("--space"):argv.index("--space") + 2]
    again = runner.invoke(app, [*argv, "--json"])
    assert again.exit_code == 0, again.output
    found = json.loads(again.stdout)
    assert found["space"] == "my-space" and found["raw_ms"] == pytest.approx(priced["raw_ms"])
    table = runner.invoke(app, ["lut", "predict", "--db", "my.db", "--device", "cpu", "--arch",
                                json.dumps({"ks": [3] * 20, "e": [3] * 20, "d": [1] * 5, "r": 32})])
    assert table.exit_code == 2 and len(table.output.strip().splitlines()) == 1  # an arch of another space: named
    assert "ks must have 6 entries for my-space" in table.output
