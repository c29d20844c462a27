"""Find installed packages and their versions without importing them."""

from __future__ import annotations

import importlib.util
from importlib import metadata

__all__ = ["installed_version"]


def installed_version(module: str, *dists: str) -> str | None:
    """The version of the first of ``dists`` that is installed, if ``module`` is importable; else None."""
    try:
        if importlib.util.find_spec(module) is None:
            return None
    except (ImportError, ValueError):
        return None
    for dist in dists or (module,):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return "unknown"
