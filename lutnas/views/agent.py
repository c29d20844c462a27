"""How ``lutnas agent cert|token``, ``lutnas devices`` and ``lutnas time`` show their results on stderr."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table

from lutnas._common import err_console
from lutnas._text import literal

__all__ = ["render_cert", "render_devices", "render_timing", "render_token"]


def render_cert(pair: Any) -> None:
    """Where the pair went, its fingerprint, and the agent's and hosts' flags that use it."""
    lines = [
        f"wrote {pair.cert} and {pair.key} (valid until {pair.not_after}) for {', '.join(pair.names)}",
        f"SHA-256 fingerprint: {pair.fingerprint}",
        f"agent: lutnas agent serve --host 0.0.0.0 --tls-cert {pair.cert} --tls-key {pair.key} --token-file TOKEN",
        f"hosts: copy {pair.cert.name} (check its fingerprint) and pass --tls-ca {pair.cert.name}",
    ]
    for line in lines:  # no emoji codes: a fingerprint's ":cd:" is not a CD
        err_console.print(literal(line), soft_wrap=True)


def render_token(path: Path) -> None:
    err_console.print(literal(f"wrote a new token to {path} (mode 600); start the agent with --token-file {path} and "
                              f"give hosts the same file (--token-file {path}) or its text in LUTNAS_TOKEN"),
                      soft_wrap=True)


def render_devices(report: Any) -> None:
    """One column per device (ten facts side by side would not fit a terminal); every fact is the agent's word,
    shown as it reads, never as markup. Then the agents that did not answer."""
    table = Table(title="lutnas agents")
    table.add_column("")
    for row in report.devices:
        table.add_column(literal(row["address"]), overflow="fold")
    for label, values in report.facts():
        table.add_row(label, *map(literal, values))
    err_console.print(table)
    for f in report.errors:
        err_console.print(literal(("error:", "bold red"), " ", f["error"]), soft_wrap=True)


def render_timing(report: Any, model: str) -> None:
    """Two columns, which fit narrow terminals (phones over ssh) where ten columns would be cut; the runtime's name
    and version and the stop reason are the agent's word."""
    table = Table(title=literal(f"{model} on {report.device}"))
    table.add_column("statistic")
    table.add_column("value", justify="right")
    for key, value in report.summary():
        table.add_row(key, literal(value))
    err_console.print(table)
