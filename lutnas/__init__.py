"""lutnas package."""

from typing import Any

__all__ = ["build_report", "report"]


def __getattr__(name: str) -> Any:
    # Loaded on first use, so ``import lutnas`` (and the command line) does not load the report's dependencies.
    if name in ("report", "build_report"):
        from report import build_report

        return build_report
    raise AttributeError(f"module 'lutnas' has no attribute {name!r}")
