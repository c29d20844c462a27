"""Every ``lutnas`` command in the README and the docs/ pages parses: its command exists, and its flags and
arguments are ones that command accepts (click parses them exactly as a run would, without running it); the
README's links to docs/ pages and the bundled files its tour names exist."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer
from typer.core import TyperGroup

from lutnas.cli import app

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").glob("*.md"))
# typer bundles its own click; its usage errors share this base with typer.BadParameter.
UsageError = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")


def _commands(page: Path) -> list[str]:
    """``lutnas ...`` command lines of a page's bash blocks (continuations joined)."""
    text = page.read_text()
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            for part in line.split("&&"):
                part = part.strip()
                if part.startswith("lutnas "):
                    lines.append(part)
    return lines


def _parse(argv: list[str]) -> typer.Context:
    """Parse ``argv`` as ``lutnas`` would, down to the leaf command; raises click's usage errors."""
    cmd = typer.main.get_command(app)
    ctx = cmd.make_context("lutnas", argv)
    while isinstance(cmd, TyperGroup):
        rest = [*getattr(ctx, "_protected_args", []), *ctx.args]
        name, sub, rest = cmd.resolve_command(ctx, rest)
        assert sub is not None, f"no command {name!r}"
        cmd = sub
        ctx = cmd.make_context(name, rest, parent=ctx)
    return ctx


COMMANDS = _commands(README)
PAGE_COMMANDS = [(page.name, line) for page in PAGES for line in _commands(page)]


def test_the_readme_has_its_tour_and_the_pages_their_commands() -> None:
    assert len(COMMANDS) > 15 and any(c.startswith("lutnas search") for c in COMMANDS)
    assert len(PAGE_COMMANDS) > 40 and {"agents.md", "few-shot.md", "precision.md"} <= {p for p, _ in PAGE_COMMANDS}


def test_the_readme_links_to_pages_and_files_that_exist() -> None:
    text = README.read_text()
    links = re.findall(r"\]\(((?:docs|benchmarks)/[^)#]+)", text)
    assert len(links) >= 10, links
    for link in links:
        assert (ROOT / link).is_file(), link
    bundled = set(re.findall(r"lutnas/data/mbnv3w10_\w+\*?\.csv", text))
    assert bundled, "the tour names the bundled accuracy files"
    for pattern in bundled:
        assert list(ROOT.glob(pattern)), pattern


@pytest.mark.parametrize("page", [README, *PAGES], ids=lambda p: p.name)
def test_relative_links_resolve(page: Path) -> None:
    for target in re.findall(r"\]\((?!https?://|#)([^)#\s]+)", page.read_text()):
        assert (page.parent / target).exists(), f"{page.name} links to {target}, which does not exist"


@pytest.mark.parametrize("line", [*COMMANDS, *(line for _, line in PAGE_COMMANDS)])
def test_readme_command_parses(line: str) -> None:
    ctx = _parse(shlex.split(line, comments=True)[1:])
    if ctx.command.name == "compare":  # compare takes extra arguments only as more devices
        assert not ctx.args, f"stray arguments {ctx.args}"


def test_the_parse_check_catches_a_bad_flag() -> None:
    with pytest.raises(UsageError, match="--devcie"):
        _parse(["search", "--db", "x.db", "--devcie", "pi"])
    with pytest.raises(UsageError, match="nosuch"):
        _parse(["lut", "nosuch"])
    with pytest.raises(UsageError, match="predictor"):
        _parse(["search", "--db", "x.db", "--device", "pi", "--latency-ms", "3"])
