"""The space registry: the built-in spaces (``space/data/*.json``), read once and never changed after.

Each built-in space is a space file like a user's own (:mod:`space.spec`); ``get_space`` also takes the
path of such a file.
"""

from __future__ import annotations

import fnmatch
import functools
from importlib import resources
from pathlib import Path

from space.resnet_space import ResNetSpace
from space.search_space import SearchSpace
from space.spec import SPACE_FILE_SUFFIXES, AnySpace, load_space_file, space_from_dict

__all__ = ["get_space", "list_spaces", "DEFAULT_SPACE", "SPACE_FILE_SUFFIXES"]

DEFAULT_SPACE = "ofa-mbv3-w1.2"


@functools.lru_cache(maxsize=1)
def _builtin() -> dict[str, AnySpace]:
    """Every built-in space by name (read once: the registry never changes after it is first asked)."""
    import json

    out: dict[str, AnySpace] = {}
    for entry in sorted(resources.files("space").joinpath("data").iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".json"):
            space = space_from_dict(json.loads(entry.read_text()), source=f"built-in space {entry.name}")
            out[space.name] = space
    return out


def list_spaces(pattern: str = "*") -> list[str]:
    """Registered space names matching a glob ``pattern``."""
    return sorted(n for n in _builtin() if fnmatch.fnmatch(n, pattern))


def get_space(name: str | Path | AnySpace) -> AnySpace:
    """The search space called ``name``, or declared in the space file at that path (a space passes through).

    Raises:
        ValueError: unknown name (the message lists the known ones) or a bad space file (naming the field).
    """
    if isinstance(name, (SearchSpace, ResNetSpace)):
        return name
    if isinstance(name, Path) or str(name).lower().endswith(SPACE_FILE_SUFFIXES):
        return load_space_file(name)
    try:
        return _builtin()[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown space {name!r}; known: {', '.join(list_spaces())}") from None
