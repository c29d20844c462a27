"""Reading arch dicts and OFA's keyword form into per-slot lists checked against a supernet's choices."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from space import Subnet

__all__ = ["ArchChoices", "IntOrList", "resolve_arch", "sample_arch"]

IntOrList = int | Sequence[int]


@dataclass(frozen=True)
class ArchChoices:
    """The values a supernet (or a training phase) allows."""

    ks: tuple[int, ...]  # kernel sizes
    e: tuple[float, ...]  # expand ratios
    d: tuple[int, ...]  # stage depths
    n_stages: int  # elastic stages
    max_depth: int  # blocks per stage

    @property
    def n_slots(self) -> int:
        """Block slots (stages × max depth)."""
        return self.n_stages * self.max_depth


def _broadcast(field: str, value: Any, n: int) -> list[Any]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [value] * n
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        values = list(value)
        if len(values) != n:
            raise ValueError(f"arch {field} must have {n} values, got {len(values)}")
        return values
    raise ValueError(f"arch {field} must be an int or a list of {n} ints, got {value!r}")


def _check(field: str, values: list[Any], allowed: Sequence[Any], slots: Sequence[int] | None = None) -> None:
    for i, v in enumerate(values):
        if slots is not None and i not in slots:
            continue
        if v not in allowed:
            raise ValueError(f"arch {field}[{i}]={v!r} is not a valid choice; valid: {sorted(allowed)}")


def resolve_arch(
    choices: ArchChoices,
    arch: Mapping[str, Any] | Subnet | None = None,
    ks: IntOrList | None = None,
    e: IntOrList | None = None,
    d: IntOrList | None = None,
    r: int | None = None,
) -> tuple[list[int] | None, list[float] | None, list[int] | None, int | None]:
    """Merge an arch dict and keyword values into per-slot lists, checked against ``choices``.

    Values left as ``None`` mean "keep the current setting". Slots beyond a stage's depth are not
    checked (they do not run).

    Returns:
        ``(ks, e, d, r)``: lists of ``n_slots``, ``n_slots`` and ``n_stages`` values, or ``None``.

    Raises:
        ValueError: a field has the wrong length or a value outside ``choices``.
    """
    if arch is not None:
        sub = Subnet.parse(arch) if not isinstance(arch, Mapping) or "r" in arch else None
        if sub is not None:
            ks, e, d, r = sub.ks, sub.e, sub.d, sub.r
        else:
            unknown = set(arch) - {"ks", "e", "d", "r", "wid"}
            if unknown:
                raise ValueError(f"arch has unknown keys {sorted(unknown)}; expected ks, e, d, r")
            ks, e, d = arch.get("ks", ks), arch.get("e", e), arch.get("d", d)
    ks_list = _broadcast("ks", ks, choices.n_slots) if ks is not None else None
    e_list = _broadcast("e", e, choices.n_slots) if e is not None else None
    d_list = _broadcast("d", d, choices.n_stages) if d is not None else None
    if d_list is not None:
        _check("d", d_list, choices.d)
        active = [s * choices.max_depth + j for s, depth in enumerate(d_list) for j in range(depth)]
    else:
        active = None
    if ks_list is not None:
        _check("ks", ks_list, choices.ks, active)
    if e_list is not None:
        _check("e", e_list, choices.e, active)
    if r is not None and (isinstance(r, bool) or int(r) != r or r <= 0):
        raise ValueError(f"arch r must be a positive int, got {r!r}")
    return ks_list, e_list, d_list, (int(r) if r is not None else None)


def sample_arch(
    choices: ArchChoices, rng: np.random.Generator, resolutions: Sequence[int] | None = None
) -> dict[str, Any]:
    """Draw one arch uniformly per slot (OFA's sampling): ``{"ks", "e", "d"}`` and ``"r"`` if resolutions given."""
    ks = [int(v) for v in rng.choice(np.asarray(choices.ks), size=choices.n_slots)]
    e_values = rng.choice(np.asarray(choices.e), size=choices.n_slots)
    e = [int(v) if float(v).is_integer() else float(v) for v in e_values]
    d = [int(v) for v in rng.choice(np.asarray(choices.d), size=choices.n_stages)]
    arch: dict[str, Any] = {"ks": ks, "e": e, "d": d}
    if resolutions:
        arch["r"] = int(rng.choice(np.asarray(resolutions)))
    return arch
