"""Every ``lutnas`` command in the README parses: its command exists, and its flags and arguments are
ones that command accepts (click parses them exactly as a run would, without running it)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer
from typer.core import TyperGroup

from lutnas.cli import app

README = Path(__file__).resolve().parents[2] / "README.md"
# typer bundles its own click; its usage errors share this base with typer.BadParameter.
UsageError = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")


def _readme_commands() -> list[str]:
    """``lutnas ...`` command lines of the README's bash blocks (continuations joined)."""
    text = README.read_text()
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


COMMANDS = _readme_commands()


def test_the_readme_has_its_tour() -> None:
    assert len(COMMANDS) > 20 and any(c.startswith("lutnas search") for c in COMMANDS)


@pytest.mark.parametrize("line", COMMANDS)
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
