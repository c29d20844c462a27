"""The built wheel holds every module and data file of every top-level package."""

from __future__ import annotations

import zipfile
from pathlib import Path

from tests.packaging.conftest import checkout_files, top_level_packages


def test_wheel_holds_every_package_file(built_wheel: Path) -> None:
    packages = top_level_packages()
    # The packages DESIGN.md names must be among those discovered (layers/ once it exists).
    assert {"protos", "agent", "space", "lut", "profiler", "search", "supernet", "lutnas"} <= set(packages)
    in_wheel = set(zipfile.ZipFile(built_wheel).namelist())
    expected = [f for f in checkout_files() if f.split("/", 1)[0] in packages]
    assert any(f.startswith("agent/runtimes/") for f in expected) and any(f.startswith("lutnas/commands/") for f in expected)
    assert any(f.startswith("lutnas/data/") for f in expected) and "protos/agent.proto" in expected
    missing = sorted(set(expected) - in_wheel)
    assert not missing, f"the wheel lacks {len(missing)} file(s), first: {missing[:5]}"
    stray = sorted(n for n in in_wheel if n.split("/", 1)[0] in ("tests", "benchmarks", "deploy"))
    assert not stray, f"the wheel ships test/benchmark/deploy files: {stray[:5]}"


def test_wheel_declares_the_lutnas_script(built_wheel: Path) -> None:
    with zipfile.ZipFile(built_wheel) as wheel:
        (entry_points,) = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
        text = wheel.read(entry_points).decode()
    assert "lutnas = lutnas.cli:main" in text
