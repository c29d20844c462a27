"""The options several commands share, declared once with their help texts, and the checks of their values.

Typer reads an option's declaration from the parameter's default, so one ``typer.Option`` object serves every
command that names it: ``db: str = DB``.
"""

from __future__ import annotations

import math
from typing import Any

import typer

from lutnas._common import EXIT_USAGE, fail

__all__ = [
    "CONNECT_TIMEOUT",
    "DB",
    "GENERATIONS",
    "JSON",
    "OLD_TIMEOUT",
    "RUNTIME_OPTION",
    "SETTING_PRECISION",
    "TLS_CA",
    "TOKEN_FILE",
    "connect_timeout",
]

DB: Any = typer.Option(..., "--db", help="The LUT store: a SQLite file or postgresql://user@host:port/db.")
JSON: Any = typer.Option(False, "--json", help="Print one JSON document on stdout.")

# Reaching agents (profile, validate, devices, time).
TOKEN_FILE: Any = typer.Option(None, "--token-file", help="File holding the bearer token (else $LUTNAS_TOKEN).")
TLS_CA: Any = typer.Option(None, "--tls-ca", help="PEM CA or self-signed certificate to trust (enables TLS).")
CONNECT_TIMEOUT: Any = typer.Option(
    None, "--connect-timeout-s", show_default=False,
    help="How long to keep trying an agent that does not answer, seconds (default 10; one that refuses "
    "connections, i.e. is not running, is given up after 1 s unless this is set).")
OLD_TIMEOUT: Any = typer.Option(None, "--timeout-s", hidden=True)  # the old spelling of --connect-timeout-s
RUNTIME_OPTION: Any = typer.Option([], "--option", help="Runtime option KEY=VALUE (e.g. device=cuda); repeatable.")

# Naming a device's setting and searching (lut predict, validate; compare, report).
SETTING_PRECISION: Any = typer.Option(None, "--precision", help="The device's setting at this precision (fp32, fp16, "
                                      "int8); same as the selector NAME:PRECISION.")
GENERATIONS: Any = typer.Option(None, "--generations", min=0,
                                help="With --predictor: generations per search (default OFA's 500).")


def connect_timeout(value: float | None, old: float | None = None) -> float | None:
    """``--connect-timeout-s`` (or its old spelling ``old``) checked: None (the defaults) or a finite number > 0;
    else exit 2."""
    value = old if old is not None else value
    if value is not None and (not math.isfinite(value) or value <= 0):
        fail(f"--connect-timeout-s must be a finite number > 0, got {value!r}", EXIT_USAGE)
    return value
