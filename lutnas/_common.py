"""Shared CLI plumbing: consoles, exit codes, JSON output, tokens, agent specs.

Every command prints human output (rich) on stderr and, with ``--json``, exactly one
JSON document on stdout. Exit codes: 0 ok, 1 the work failed, 2 bad usage or input.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console

from lutnas._text import literal

__all__ = [
    "EXIT_OK",
    "EXIT_FAILED",
    "EXIT_USAGE",
    "err_console",
    "fail",
    "warn",
    "note",
    "work_failed",
    "emit_json",
    "read_token",
    "parse_options",
    "parse_resolutions",
    "resolution_option",
    "library_errors",
    "split_names",
    "device_names",
    "parse_floats",
    "show",
    "tell",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

# Human output goes to stderr so stdout stays clean for --json consumers.
err_console = Console(stderr=True)

logger = logging.getLogger(__name__)


def fail(message: object, code: int = EXIT_FAILED) -> NoReturn:
    """Print a one-line error on stderr and exit with ``code``; the message is shown literally, controls
    escaped (it often quotes names, file contents or an exception's text)."""
    err_console.print(literal(("error:", "bold red"), " ", message), soft_wrap=True)
    raise typer.Exit(code)


def warn(message: object) -> None:
    """Print ``warning: message`` on stderr, the message shown literally (see :mod:`lutnas._text`)."""
    err_console.print(literal(("warning:", "yellow"), " ", message), soft_wrap=True)


def note(message: object) -> None:
    """Print ``note: message`` on stderr, the message shown literally (see :mod:`lutnas._text`)."""
    err_console.print(literal(("note:", "yellow"), " ", message), soft_wrap=True)


@contextmanager
def work_failed(what: str) -> Iterator[None]:
    """Around the work itself, once its input has been checked: any error exits 1 (the work failed) with
    one line, never 2 (bad usage), which only the checks of the input may give; ``--verbose`` logs the traceback."""
    try:
        yield
    except typer.Exit:  # a failure the work already reported (fail() inside the block)
        raise
    except Exception as err:  # noqa: BLE001 - whatever the cause, the work failed; the input was checked before
        logger.debug("%s failed", what, exc_info=True)
        fail(f"{what} failed: {type(err).__name__}: {err}", EXIT_FAILED)


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


def parse_options(texts: list[str]) -> dict[str, str]:
    """``--option KEY=VALUE`` arguments as a dict; raise ValueError naming a malformed one."""
    options = {}
    for text in texts:
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise ValueError(f"--option expects KEY=VALUE, got {text!r}")
        options[key] = value
    return options


def parse_resolutions(text: str) -> tuple[int, ...]:
    """``"160,176,192"`` or ``"128-224:4"`` (start-stop:step, inclusive) → a tuple of ints."""
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part:
                span, _, step = part.partition(":")
                lo, _, hi = span.partition("-")
                out.extend(range(int(lo), int(hi) + 1, int(step or 4)))
            else:
                out.append(int(part))
        except ValueError:
            raise ValueError(f"--resolutions expects ints like 160,176 or a range 128-224:4, got {text!r}") from None
    from space.search_space import MAX_RESOLUTION, MIN_RESOLUTION

    if not out or any(r < MIN_RESOLUTION or r > MAX_RESOLUTION for r in out):
        raise ValueError(f"--resolutions must list resolutions in [{MIN_RESOLUTION}, {MAX_RESOLUTION}], got {text!r}")
    return tuple(dict.fromkeys(out))


def resolution_option(texts: list[str] | None) -> tuple[int, ...]:
    """Every ``--resolutions`` value (each a list or range; the option may repeat) as one tuple; () when none."""
    return tuple(dict.fromkeys(r for text in texts or [] for r in parse_resolutions(text)))


@contextmanager
def library_errors(what: str) -> Iterator[None]:
    """Around one library call: bad input (a ValueError, a LutError: flags, files, a store that is not one)
    exits 2; the work failing once its input was checked, or a file it cannot read or write, exits 1; each
    with one line."""
    from lut.errors import LutError, WorkFailedError
    from search.errors import SearchFailedError

    with work_failed(what):
        try:
            yield
        except (SearchFailedError, WorkFailedError) as err:  # their message says what failed already
            fail(str(err), EXIT_FAILED)
        except (LutError, ValueError) as err:
            fail(str(err), EXIT_USAGE)
        except OSError as err:
            where = f": {err.filename}" if err.filename else ""
            fail(f"{what} failed: {err.strerror or err}{where}", EXIT_FAILED)


def split_names(values: list[str]) -> list[str]:
    """Repeated options, each of which may be a comma list (``--device A --device B`` or ``--devices A,B``)."""
    return [n for item in values for n in item.split(",") if n]


def device_names(device: list[str], extra: list[str]) -> list[str]:
    """``--device`` values and the names the old spelling ``--devices A B`` leaves among a command's extra
    arguments (``extra``, each may be a comma list); exit 2 naming an unknown option found there."""
    bad = [a for a in extra if a.startswith("-")]
    if bad:
        fail(f"unknown option(s) {bad}", EXIT_USAGE)
    return split_names([*device, *extra])


def parse_floats(text: str, message: str) -> list[float]:
    """``"10,15,20"`` as floats; exit 2 with ``message`` when a value is not a number or none is given."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values:
        fail(message, EXIT_USAGE)
    return values


def tell(report: Any) -> None:
    """A report's lines for a reader, on stderr: its notes, its warnings, a predictor's extrapolation warning."""
    for line in getattr(report, "notes", ()):
        note(line)
    for line in getattr(report, "warnings", ()):
        warn(line)
    if getattr(report, "extrapolation", None) is not None:
        warn(report.extrapolation["warning"])


def show(report: Any, json_out: bool, render: Callable[..., None], *args: Any) -> None:
    """With ``--json`` the report's ``to_dict()`` on stdout, else ``render(report, *args)`` on stderr."""
    if json_out:
        emit_json(report.to_dict())
    else:
        render(report, *args)
