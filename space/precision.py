"""Numeric precisions a model is built, timed or evaluated at: the one list every package checks against.

The exporters and the fleet (``profiler``), validation, and the supernet's accuracy runs all name precisions
from here; each may support fewer (``profiler.vocabulary`` says which runtime and format take which).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Literal

from space.choices import check_choice

__all__ = ["FP16", "FP32", "INT8", "PRECISIONS", "Precision", "check_precision"]

FP32 = "fp32"
FP16 = "fp16"
INT8 = "int8"
Precision = Literal["fp32", "fp16", "int8"]
#: Every precision lutnas knows, widest first.
PRECISIONS: tuple[str, ...] = (FP32, FP16, INT8)


def check_precision(precision: str, choices: Collection[str] = PRECISIONS, name: str = "precision") -> str:
    """Return ``precision`` if it is one of ``choices`` (default: all of :data:`PRECISIONS`).

    Raises:
        ValueError: ``"precision must be one of fp32, fp16, int8, got 'int4'"``.
    """
    return check_choice(name, precision, choices)
