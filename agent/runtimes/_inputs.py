"""Random input tensors for timing: shapes from the job or the model, values from a fixed seed."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from agent.errors import JobError
from agent.runtimes import InputSpec

__all__ = ["DTYPES", "resolve_shape", "random_tensor", "match_specs"]

# dtypes a job may ask for, by numpy name.
DTYPES = frozenset({"float32", "float16", "float64", "int8", "uint8", "int16", "int32", "int64", "bool"})


def match_specs(model_names: Sequence[str], specs: Sequence[InputSpec]) -> list[InputSpec | None]:
    """Pair each model input with the job's spec for it (by name, else by position).

    Raises:
        JobError: INVALID_ARGUMENT when the job names an input the model lacks or gives too many.
    """
    if len(specs) > len(model_names):
        raise JobError("INVALID_ARGUMENT", f"job gives {len(specs)} inputs; the model has {len(model_names)}: {list(model_names)}")
    named = {s.name: s for s in specs if s.name}
    unknown = sorted(set(named) - set(model_names))
    if unknown:
        raise JobError("INVALID_ARGUMENT", f"unknown input name(s) {unknown}; the model's inputs: {list(model_names)}")
    out: list[InputSpec | None] = []
    for i, name in enumerate(model_names):
        if name in named:
            out.append(named[name])
        elif i < len(specs) and not specs[i].name:
            out.append(specs[i])
        else:
            out.append(None)
    return out


def resolve_shape(name: str, declared: Sequence[object], spec: InputSpec | None) -> tuple[int, ...]:
    """The shape to feed: the job's if given, else the model's declared one (must be static).

    Raises:
        JobError: INVALID_ARGUMENT when a dimension is dynamic and the job gave no shape.
    """
    if spec is not None and spec.shape:
        return tuple(int(d) for d in spec.shape)
    dims = []
    for d in declared:
        if not isinstance(d, (int, np.integer)) or int(d) < 1:
            raise JobError("INVALID_ARGUMENT", f"input {name!r} has dynamic shape {list(declared)}; give its shape in the job")
        dims.append(int(d))
    return tuple(dims)


def random_tensor(shape: Sequence[int], dtype: str | np.dtype, rng: np.random.Generator, max_bytes: int) -> np.ndarray:
    """A tensor of ``shape`` filled with values typical for ``dtype``.

    Raises:
        JobError: INVALID_ARGUMENT for a bad dtype; RESOURCE_EXHAUSTED above ``max_bytes``.
    """
    try:
        dt = np.dtype(dtype)
    except TypeError as err:
        raise JobError("INVALID_ARGUMENT", f"unsupported dtype {dtype!r}; known: {', '.join(sorted(DTYPES))}") from err
    nbytes = int(np.prod(shape, dtype=np.float64)) * dt.itemsize
    if nbytes > max_bytes:
        raise JobError("RESOURCE_EXHAUSTED", f"input of shape {list(shape)} {dt.name} needs {nbytes} bytes; limit {max_bytes}")
    if dt.kind == "f":
        return rng.standard_normal(size=tuple(shape), dtype=np.float32).astype(dt, copy=False)
    if dt.kind == "b":
        return rng.integers(0, 2, size=tuple(shape)).astype(bool)
    info = np.iinfo(dt)
    # Small magnitudes: index-like inputs (embeddings, gathers) stay in range.
    return rng.integers(max(info.min, -8), min(info.max, 8) + 1, size=tuple(shape)).astype(dt)
