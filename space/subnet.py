"""Subnets: OFA's arch dict ``{"ks": [20], "e": [20], "d": [5], "r": int}`` as a value."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from space.bounds import quoted

__all__ = ["Subnet", "ArchLike"]

ArchLike = Mapping[str, Any]


@dataclass(frozen=True)
class Subnet:
    """One subnet: per-slot kernel ``ks`` and expand ``e``, per-stage depth ``d``, resolution ``r``.

    Slots beyond a stage's depth are carried as given but never affect what runs; compare
    subnets through ``SearchSpace.blocks`` or ``Genome.canonical`` (inactive slots zeroed).
    """

    ks: tuple[int, ...]
    e: tuple[int, ...]
    d: tuple[int, ...]
    r: int

    def to_arch(self) -> dict[str, Any]:
        """OFA's arch dict (plain lists and ints; JSON-serializable)."""
        return {"ks": list(self.ks), "e": list(self.e), "d": list(self.d), "r": self.r}

    def to_dict(self) -> dict[str, Any]:
        """Alias of :meth:`to_arch` for serializers."""
        return self.to_arch()

    @classmethod
    def parse(cls, arch: ArchLike | Subnet) -> Subnet:
        """Read an arch dict without checking it against a space (shapes and types only).

        Accepts ``r`` as an int or a one-element list and ignores a ``wid`` key (DyNAS-T writes both).

        Raises:
            ValueError: a field is missing or has the wrong type.
        """
        if isinstance(arch, Subnet):
            return arch
        if not isinstance(arch, Mapping):
            raise ValueError(f"a subnet must be a dict with keys ks, e, d, r; got {type(arch).__name__}")
        unknown = set(arch) - {"ks", "e", "d", "r", "wid"}
        if unknown:
            raise ValueError(f"subnet has unknown keys {sorted(unknown)}; expected ks, e, d, r (and optional wid)")
        missing = [k for k in ("ks", "e", "d", "r") if k not in arch]
        if missing:
            raise ValueError(f"subnet is missing {', '.join(missing)}; expected keys ks, e, d, r")
        r = arch["r"]
        if isinstance(r, Sequence) and not isinstance(r, str):
            if len(r) != 1:
                raise ValueError(f"subnet r must be an int or a one-element list, got {quoted(list(r))}")
            r = r[0]
        return cls(ks=_int_tuple("ks", arch["ks"]), e=_int_tuple("e", arch["e"]), d=_int_tuple("d", arch["d"]),
                   r=_as_int("r", r))


def _as_int(field: str, value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"subnet {field} must be an int, got {quoted(value)}")
    try:
        as_int = int(value)
    except (TypeError, ValueError, OverflowError) as err:  # OverflowError: inf (JSON's 1e309)
        raise ValueError(f"subnet {field} must be an int, got {quoted(value)}") from err
    if as_int != value:
        raise ValueError(f"subnet {field} must be an int, got {quoted(value)}")
    return as_int


def _int_tuple(field: str, values: Any) -> tuple[int, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise ValueError(f"subnet {field} must be a list of ints, got {quoted(values)}")
    return tuple(_as_int(f"{field}[{i}]", v) for i, v in enumerate(values))
