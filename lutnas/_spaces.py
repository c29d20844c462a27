"""Which search space a command works in: :mod:`lut.spaces` decides; this turns its refusal into exit 2."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lut.spaces import (  # re-exported: commands import them from here
    OFA_LUT_RESOLUTIONS,
    SpaceSource,
    arch_source,
    choose_space,
    coverage,
    lut_source,
    net_config_source,
    predictor_source,
    profile_resolutions,
)

__all__ = [
    "OFA_LUT_RESOLUTIONS", "SpaceSource", "arch_source", "choose_space", "coverage", "lut_source",
    "net_config_source", "predictor_source", "profile_resolutions", "store_space",
]


def store_space(store: Any, stored: Mapping[str, Any], others: Sequence[SpaceSource], given: str | None) -> str:
    """:func:`choose_space` for the LUTs of ``stored`` (name -> StoredSetting) and ``others``; exit 2 on a mismatch."""
    from lutnas._common import EXIT_USAGE, fail

    sources = [lut_source(name, store.table(s.id)) for name, s in stored.items()]
    try:
        return choose_space([*sources, *others], given)
    except ValueError as err:
        fail(str(err), EXIT_USAGE)
