"""A wheel built once per session from the checkout's files, as a user's ``pip install .`` would."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def checkout_files() -> list[str]:
    """Files of the checkout (tracked and untracked, minus ignored): what a fresh clone plus local edits hold."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line for line in out.splitlines() if (REPO_ROOT / line).is_file()]


def top_level_packages() -> list[str]:
    """Folders at the repository root with an ``__init__.py``, except tests and benchmarks."""
    return sorted(
        p.name for p in REPO_ROOT.iterdir() if (p / "__init__.py").is_file() and p.name not in ("tests", "benchmarks")
    )


@pytest.fixture(scope="session")
def built_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Build from a copy so build/ and *.egg-info never land in the checkout (or hide a missing file).
    src = tmp_path_factory.mktemp("src")
    for name in checkout_files():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, src / name)
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(dist), str(src)],
        check=True,
        timeout=300,
    )
    (wheel,) = dist.glob("lutnas-*.whl")
    return wheel
