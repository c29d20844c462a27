"""How the commands call the library: one exit code per kind of failure (agents, supernet runs), Ctrl-C.

Bad input (a ValueError, a refused token, a model the agent refuses) exits 2; work that failed (an agent that
does not answer, a profile that could not finish) exits 1; each with one line, never a traceback.
"""

from __future__ import annotations

import logging
import re
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer

from lutnas._common import EXIT_FAILED, EXIT_USAGE, err_console, fail
from lutnas._text import literal

__all__ = ["ctrl_c_stops", "flag_errors", "library_call"]

logger = logging.getLogger(__name__)

# How often the Ctrl-C watcher looks for a press (the delay before a profile starts to stop).
_CTRL_C_POLL_S = 0.1
# Failures the library reports in one line that already says what and where.
_KNOWN = ("AgentError", "ProfileError", "ValidationError", "LutError", "RuntimeError", "OSError")


@contextmanager
def library_call() -> Iterator[None]:
    """Around one library call: exit 2 for bad input, 1 for failed work, with the error's one line."""
    from profiler.client import AgentAuthError

    try:
        yield
    except typer.Exit:
        raise
    except AgentAuthError as err:  # the token is the user's input
        hint = "" if "LUTNAS_TOKEN" in str(err) else " (check --token-file or LUTNAS_TOKEN)"
        fail(f"{err}{hint}", EXIT_USAGE)
    except ValueError as err:
        fail(str(err), EXIT_USAGE)
    except Exception as err:  # noqa: BLE001 - the input was checked: whatever else fails, the work failed
        logger.debug("the work failed", exc_info=True)
        known = any(c.__name__ in _KNOWN for c in type(err).__mro__)
        fail(str(err) if known else f"{type(err).__name__}: {err}", EXIT_FAILED)


@contextmanager
def flag_errors(ctx: typer.Context) -> Iterator[None]:
    """Around a supernet run: bad input (ValueError, a missing file) exits 2 and a failed run 1, each with one line
    in the flags' words."""
    from supernet.runs import RunError

    try:
        yield
    except RunError as err:
        fail(str(err), EXIT_FAILED)
    except (ValueError, FileNotFoundError) as err:
        fail(_in_flags(str(err), ctx), EXIT_USAGE)
    except OSError as err:
        fail(f"{type(err).__name__}: {err}", EXIT_FAILED)


def _in_flags(message: str, ctx: typer.Context) -> str:
    """A library message in the command's words: a leading argument name, or ``name=True``, becomes its flag."""
    flags = {opt[2:].replace("-", "_"): opt for param in ctx.command.params for opt in param.opts[:1]
             if opt.startswith("--")}
    message = re.sub(r"\b(\w+)=True\b", lambda m: flags.get(m.group(1), m.group(0)), message)
    return re.sub(r"^(\w+)\b", lambda m: flags.get(m.group(1), m.group(0)), message)


@contextmanager
def ctrl_c_stops() -> Iterator[threading.Event]:
    """An event Ctrl-C sets (the profile finishes its in-flight jobs and returns) instead of raising.

    The handler only records the press; a watcher thread prints the notice and sets the event. A handler runs on
    the main thread between two of its steps, maybe while that thread holds the event's lock (inside ``set`` or
    ``wait``) or is drawing on the console: taking either from the handler could block the thread that holds it.
    """
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():  # only the main thread receives signals
        yield stop
        return
    pressed: list[int] = []  # appending takes no lock, so the handler cannot block
    done = threading.Event()

    def on_sigint(signum: int, frame: Any) -> None:  # noqa: ARG001 - signal handler signature
        pressed.append(signum)

    def watch() -> None:
        while not done.wait(_CTRL_C_POLL_S):
            if pressed:
                err_console.print(literal(("stopping: finishing in-flight jobs; rerun to resume", "yellow")))
                stop.set()
                return

    previous = signal.signal(signal.SIGINT, on_sigint)
    watcher = threading.Thread(target=watch, name="lutnas-ctrl-c", daemon=True)
    watcher.start()
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)
        done.set()
        watcher.join()
