"""Shared CLI plumbing: consoles, exit codes, JSON output, tokens, agent specs.

Every command prints human output (rich) on stderr and, with ``--json``, exactly one
JSON document on stdout. Exit codes: 0 ok, 1 the work failed, 2 bad usage or input.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console

__all__ = [
    "EXIT_OK",
    "EXIT_FAILED",
    "EXIT_USAGE",
    "AgentSpec",
    "err_console",
    "fail",
    "emit_json",
    "read_token",
    "parse_agent_spec",
    "parse_address",
    "parse_options",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

# Human output goes to stderr so stdout stays clean for --json consumers.
err_console = Console(stderr=True)


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    """Print a one-line error on stderr and exit with ``code``."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def emit_json(obj: Any) -> None:
    """Write one JSON document to stdout."""
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")
    sys.stdout.flush()


def _json_default(value: Any) -> Any:
    # numpy scalars and arrays, paths and dataclass-like objects.
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "to_dict"):
        return value.to_dict()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def read_token(token_file: Path | None) -> str | None:
    """The bearer token from ``--token-file`` or ``LUTNAS_TOKEN`` (None when neither is set)."""
    if token_file is not None:
        try:
            token = token_file.read_text().strip()
        except OSError as err:
            fail(f"cannot read --token-file {token_file}: {err.strerror}", EXIT_USAGE)
        if not token:
            fail(f"--token-file {token_file} is empty", EXIT_USAGE)
        return token
    token = os.environ.get("LUTNAS_TOKEN", "").strip()
    return token or None


@dataclass(frozen=True)
class AgentSpec:
    """One ``--agent NAME=HOST:PORT`` argument."""

    name: str  # device name the LUT rows are filed under
    address: str  # host:port


def parse_address(text: str) -> str:
    """Check ``HOST:PORT`` and return it unchanged; raise ValueError naming the bad value."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    return text


def parse_agent_spec(text: str) -> AgentSpec:
    """Parse ``NAME=HOST:PORT`` (or bare ``HOST:PORT``, named after the address)."""
    name, sep, address = text.partition("=")
    if not sep:
        name, address = text, text
    if not name:
        raise ValueError(f"--agent expects NAME=HOST:PORT, got {text!r}")
    return AgentSpec(name=name, address=parse_address(address))


def parse_options(texts: list[str]) -> dict[str, str]:
    """``--option KEY=VALUE`` arguments as a dict; raise ValueError naming a malformed one."""
    options = {}
    for text in texts:
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise ValueError(f"--option expects KEY=VALUE, got {text!r}")
        options[key] = value
    return options
