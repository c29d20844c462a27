"""The ``lutnas`` command line: a thin typer app assembled from lutnas.commands.*.

Each module in lutnas/commands/ owns one group of commands and exposes
``register(app)``; this file only wires them together and configures logging.
"""

from __future__ import annotations

import logging

import typer

from lutnas._text import EscapingFormatter
from lutnas.commands import agent_cmds, demo_cmds, lut_cmds, profile_cmds, report_cmds, search_cmds, supernet_cmds

__all__ = ["app", "main"]

app = typer.Typer(
    name="lutnas",
    help="Measure block latency on real devices, keep per-device LUTs, search OFA subnets under a latency budget.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for _module in (agent_cmds, lut_cmds, profile_cmds, search_cmds, supernet_cmds, report_cmds, demo_cmds):
    _module.register(app)


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages to stderr.")) -> None:
    # Module names help a debugging reader only; a user's warning reads "warning: ...".
    fmt = "%(levelname)s %(name)s: %(message)s" if verbose else "%(levelname)s: %(message)s"
    handler = logging.StreamHandler()  # stderr
    handler.setFormatter(EscapingFormatter(fmt))  # a logged name or message cannot move the cursor
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, handlers=[handler])
    logging.addLevelName(logging.WARNING, "warning" if not verbose else "WARNING")


def main() -> None:
    """Console-script entry point."""
    app()
