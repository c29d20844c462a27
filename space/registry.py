"""The space registry: names → factories, filled once at import and never changed after."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable

from space.search_space import SearchSpace, make_divisible

__all__ = ["get_space", "list_spaces", "DEFAULT_SPACE"]

DEFAULT_SPACE = "ofa-mbv3-w1.2"

# OFA-MobileNetV3 base widths: stem, first block, five stages, final expand, feature mix.
_BASE_WIDTHS = (16, 16, 24, 40, 80, 112, 160, 960, 1280)


def _ofa_mbv3(name: str, width_mult: float, n_classes: int = 1000,
              resolutions: tuple[int, ...] | None = None) -> SearchSpace:
    w = [make_divisible(base * width_mult, 8) for base in _BASE_WIDTHS]
    extra = {} if resolutions is None else {"resolutions": resolutions}
    return SearchSpace(
        name=name,
        width_mult=width_mult,
        first_conv_chs=w[0],
        first_block_chs=w[1],
        stage_chs=tuple(w[2:7]),
        final_expand_chs=w[7],
        feature_mix_chs=w[8],
        n_classes=n_classes,
        **extra,
    )


_FACTORIES: dict[str, Callable[[], SearchSpace]] = {
    # The small supernet `lutnas supernet train --dataset digits` trains (supernet.presets.DIGITS_PRESET):
    # width 0.25, scikit-learn's 10 digit classes, 12 and 16 px inputs.
    "ofa-mbv3-w0.25": lambda: _ofa_mbv3("ofa-mbv3-w0.25", 0.25, n_classes=10, resolutions=(12, 16)),
    # OFA's released ImageNet supernets.
    "ofa-mbv3-w1.0": lambda: _ofa_mbv3("ofa-mbv3-w1.0", 1.0),
    "ofa-mbv3-w1.2": lambda: _ofa_mbv3("ofa-mbv3-w1.2", 1.2),
}


def list_spaces(pattern: str = "*") -> list[str]:
    """Registered space names matching a glob ``pattern``."""
    return sorted(n for n in _FACTORIES if fnmatch.fnmatch(n, pattern))


def get_space(name: str | SearchSpace) -> SearchSpace:
    """The search space called ``name`` (a SearchSpace passes through).

    Raises:
        ValueError: unknown name; the message lists the known ones.
    """
    if isinstance(name, SearchSpace):
        return name
    try:
        factory = _FACTORIES[name]
    except KeyError:
        raise ValueError(f"unknown space {name!r}; known: {', '.join(list_spaces())}") from None
    return factory()
