"""``extract_subnet``: :func:`supernet.runs.extract` with the profiler's ONNX and TFLite exporters.

The supernet package may not import the profiler (they are siblings), so the two meet here, one layer up.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from space import Subnet
    from supernet.runs import ExtractReport

__all__ = ["extract_subnet"]


def extract_subnet(
    checkpoint: str | os.PathLike[str],
    arch: Mapping[str, Any] | Subnet,
    out: str | os.PathLike[str],
    *,
    format: str | None = None,  # noqa: A002 - the command's --format
    dataset: str | None = None,
    calibrate: bool = True,
) -> ExtractReport:
    """Extract one subnet of a trained supernet as lutnas ``.pt``, ONNX or TFLite (``lutnas supernet extract``).

    ONNX and TFLite are written as the profiler exports LUT blocks, so the file times like the blocks it is made of.
    Arguments and errors as :func:`supernet.runs.extract`.
    """
    from supernet.runs import extract

    return extract(checkpoint, arch, out, format=format, dataset=dataset, calibrate=calibrate, exporter=_export)


def _export(module: Any, input_shape: Sequence[int], fmt: str) -> bytes:
    from profiler.export import export_module

    return export_module(module, input_shape, fmt)
