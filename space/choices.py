"""One wording for a value outside its choices: ``"X must be one of a, b, c, got 'd'"``; one tolerance for
numeric choices."""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable
from typing import Any

__all__ = ["check_choice", "describe_choices", "matching_choice"]


def describe_choices(choices: Collection[str]) -> str:
    """``"a"`` or ``"one of a, b, c"``: the choices as a message names them."""
    names = list(choices)
    return names[0] if len(names) == 1 else "one of " + ", ".join(names)


def check_choice(name: str, value: str, choices: Collection[str]) -> str:
    """Return ``value`` if it is one of ``choices``.

    Args:
        name: What the value is, as the message names it (``"precision"``, ``"--format"``).
        value: The value given.
        choices: The values allowed, in the order the message lists them.

    Raises:
        ValueError: ``"<name> must be <choices>, got <value>"``.
    """
    if value not in choices:
        raise ValueError(f"{name} must be {describe_choices(choices)}, got {value!r}")
    return value


def matching_choice(value: Any, choices: Iterable[float]) -> float | None:
    """The first of ``choices`` equal to ``value``, compared with a tolerance (so 0.35 read from text matches).

    Returns:
        The choice, or None when none is equal or ``value`` is not a number (a bool is not).
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return next((c for c in choices if math.isclose(float(value), float(c), rel_tol=1e-9, abs_tol=1e-12)), None)
    return None
