"""One wording for a value outside its choices: ``"X must be one of a, b, c, got 'd'"``."""

from __future__ import annotations

from collections.abc import Collection

__all__ = ["check_choice", "describe_choices"]


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
