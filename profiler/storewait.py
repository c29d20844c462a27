"""Riding out a shared store that goes away for a while (its server restarts, the network to it is cut).

A profiling host holds results it paid device time for: a store write that cannot reach the store is tried
again with growing pauses instead of ending the run, and only a store that stays away for ``wait_s`` (the
profile's ``store_wait_s``) stops the device, with what was stored kept for a rerun.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from lut.errors import StoreUnavailable

__all__ = ["keep_trying"]

log = logging.getLogger(__name__)
_T = TypeVar("_T")
_FIRST_PAUSE_S = 0.5
_MAX_PAUSE_S = 10.0


def keep_trying(call: Callable[[], _T], what: str, wait_s: float, stop: threading.Event | None = None) -> _T:
    """``call()``, tried again while the store is unavailable, for up to ``wait_s`` seconds.

    Args:
        call: One store call; it must be safe to repeat (its transaction either committed or did not).
        what: What the call does, for the warnings ("storing <block>").
        wait_s: How long to keep trying.
        stop: Give up at once when set (Ctrl-C); None: only ``wait_s`` ends the tries.

    Raises:
        StoreUnavailable: the store stayed away for ``wait_s`` (or ``stop`` was set).
        StoreError: any other store failure, at once.
    """
    deadline = time.monotonic() + wait_s
    pause = _FIRST_PAUSE_S
    while True:
        try:
            return call()
        except StoreUnavailable as err:
            if time.monotonic() + pause > deadline or (stop is not None and stop.is_set()):
                raise
            log.warning("%s: %s; trying again in %.1f s", what, err, pause)
        if stop is not None:
            stop.wait(pause)
        else:
            time.sleep(pause)
        pause = min(2 * pause, _MAX_PAUSE_S)
