"""``to_dict``/``from_dict`` for the supernet config dataclasses that checkpoints store."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any, Self

__all__ = ["ConfigDict"]


class ConfigDict:
    """Mixin for a frozen dataclass of plain values and tuples: a JSON-serializable dict (tuples as lists) and back."""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serializable dict."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Inverse of :meth:`to_dict`.

        Raises:
            ValueError: unknown keys.
        """
        fields = cls.__dataclass_fields__
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ValueError(f"supernet config keys must be among {sorted(fields)}, got {unknown}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})
