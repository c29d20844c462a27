"""YAML space files: read by the same code as JSON ones, bounded as LUT files are (size, anchors, nesting), and a bad
one gets one line naming the field or the problem."""

from __future__ import annotations

import json
import time
from importlib import resources
from pathlib import Path

import pytest
import yaml

from space import get_space, list_spaces, load_space_file
from space.bounds import MAX_QUOTED_CHARS
from space.spec import _MAX_SPACE_FILE_BYTES
from tests.security._bombs import yaml_alias_bomb

PROXYLESS = "ofa-proxyless-w1.3"


def _builtin_doc(name: str) -> dict:
    return json.loads(resources.files("space").joinpath("data", f"{name}.json").read_text())


@pytest.mark.parametrize("suffix", [".yaml", ".yml", ".YAML"])
def test_every_builtin_space_written_as_yaml_is_the_same_space(tmp_path: Path, suffix: str) -> None:
    for name in list_spaces():
        path = tmp_path / f"{name}{suffix}"
        path.write_text(yaml.safe_dump(_builtin_doc(name), sort_keys=False))
        assert load_space_file(path) == get_space(name) == get_space(str(path))


def test_a_hand_written_yaml_space_with_comments_and_flow_lists(tmp_path: Path) -> None:
    path = tmp_path / "small.yml"
    path.write_text("# a tiny ResNet-shaped space\nname: small\nkind: resnet\nresolutions: [32]\n"
                    "stem: {width: 16}\nstages:\n  - {width: 32, base_depth: 1, stride: 1}  # one stage\n"
                    "choices: {d: [0, 1], e: [0.25], w: [1.0]}\n")
    small = get_space(str(path))
    assert small.name == "small" and small.resolutions == (32,)
    assert [b.kind for b in small.blocks({"d": [1, 1], "e": [0.25, 0.25], "w": [0, 0, 0], "r": 32})] == [
        "conv_bn_act", "conv_bn_act", "conv_bn_act", "maxpool", "bottleneck", "bottleneck", "classifier"]


def _refused(path: Path, *needles: str) -> str:
    with pytest.raises(ValueError) as info:
        get_space(str(path))
    text = str(info.value)
    assert "\n" not in text and text.startswith(f"space file {path}"), text
    for needle in needles:
        assert needle in text, text
    return text


@pytest.mark.parametrize(
    "change,needle",
    [
        (lambda d: d["stages"][2].update(width=0), "stages[2].width must be a positive int, got 0"),
        (lambda d: d["stages"][1].update(act="gelu"), "stages[1].act must be one of relu, h_swish, relu6"),
        (lambda d: d["choices"].update(ks=[3, 4]), "choices.ks[1] must be an odd positive int, got 4"),
        (lambda d: d.update(colour="red"), "unknown field colour"),
        (lambda d: d.update({7: "seven"}), "unknown field 7"),  # YAML keys may be numbers: named, not a TypeError
        (lambda d: d.pop("stages"), "missing field stages"),
    ],
)
def test_a_bad_yaml_space_names_the_field(tmp_path: Path, change, needle: str) -> None:
    doc = _builtin_doc(PROXYLESS)
    change(doc)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    _refused(path, needle)


def test_yaml_that_is_not_a_space_names_the_problem_and_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nkind: mbconv\nstages: [\n")
    _refused(path, "line 4: YAML syntax error")
    path.write_text("- 1\n- 2\n")
    _refused(path, "(top level) must be an object, got [1, 2]")
    path.write_bytes(b"name: \xff\n")
    _refused(path, "not a text file")


def test_an_alias_bomb_is_refused_at_its_first_anchor_before_anything_is_built(tmp_path: Path) -> None:
    bomb = yaml_alias_bomb(tmp_path / "bomb.yaml", "stages", levels=8)  # 10**8 strings from ~500 bytes
    start = time.perf_counter()
    _refused(bomb, "line 1: YAML anchors and aliases (&name, *name) are not allowed in a space file")
    assert time.perf_counter() - start < 1.0


def test_size_nesting_and_quoted_values_are_bounded(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with big.open("wb") as fh:  # sparse: no more than the cap is read
        fh.truncate(_MAX_SPACE_FILE_BYTES + 1)
    _refused(big, f"larger than {_MAX_SPACE_FILE_BYTES} bytes")
    deep = tmp_path / "deep.yaml"
    deep.write_text("name:\n" + "".join(f"{'  ' * i}- \n" for i in range(100)))  # block style: no lookahead limit
    _refused(deep, "nested deeper than 64 levels")
    deep.write_text("name: " + "[" * 5000 + "]" * 5000 + "\n")  # libyaml's scanner stops this one first
    _refused(deep, "nest")
    long = tmp_path / "long.yaml"
    long.write_text(f"name: x\nkind: mbconv\n{'k' * 1000}: 1\n")  # YAML keys stop at 1024
    field = _refused(long, "unknown field 'kkk").split("unknown field ")[1].split(";")[0]
    assert len(field) <= MAX_QUOTED_CHARS, field
    long.write_text(f"kind: {'m' * 5000}\n")
    value = _refused(long, "kind must be one of mbconv, resnet, got 'mmm").split(", got ")[1]
    assert len(value) <= MAX_QUOTED_CHARS, value
