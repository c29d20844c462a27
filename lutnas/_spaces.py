"""Which search space a command works in: inferred from what it is given, explained when they disagree.

A command's inputs each fit some spaces at some resolutions: a LUT prices every block of a space
at the resolutions it covers fully, a predictor is trained for one space and its resolutions, an
OFA net.config has one space's channel widths. The command works in the one space they all fit;
``--space`` is needed only to choose among several, and a mismatch names every input's widths
and resolutions, and which inputs fit each space, so the user sees what would work.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lut.listing import coverage  # re-exported: commands import it from here

__all__ = [
    "SpaceSource", "choose_space", "coverage", "lut_source", "net_config_source", "predictor_source",
    "profile_resolutions", "store_space",
]

# The resolutions OFA's released LUTs hold. The ImageNet spaces sample 25 resolutions (128..224 step 4);
# `lutnas profile` times these five of them unless told otherwise, as a full LUT would take five times as long.
OFA_LUT_RESOLUTIONS = (160, 176, 192, 208, 224)


@dataclass(frozen=True)
class SpaceSource:
    """One input of a command and the spaces it fits.

    Attributes:
        label: how messages name it, e.g. ``LUT 'note10'`` or ``predictor pred.pt``.
        spaces: space name -> the resolutions the input covers there, ascending.
        partial: space name -> a note on resolutions begun but not complete (LUTs only).
    """

    label: str
    spaces: dict[str, tuple[int, ...]]
    partial: dict[str, str] = field(default_factory=dict)
    verb: str = "covers"  # how describe() joins the label and the spaces

    def fits(self, space: str) -> bool:
        """Whether the input belongs to ``space`` (a LUT begun there counts: its gaps are named when used)."""
        return space in self.spaces or space in self.partial

    def describe(self) -> str:
        """``LUT 'note10' covers ofa-mbv3-w1.2 at r=160..224 step 16`` and the like."""
        from space import describe_resolutions

        fits = [f"{name} at r={describe_resolutions(res)}" for name, res in self.spaces.items()]
        text = f"{self.label} {self.verb} {' and '.join(fits)}" if fits else f"{self.label} covers no space fully"
        notes = [f"{name} partly ({note})" for name, note in self.partial.items()]
        return text + (f" ({'; '.join(notes)})" if notes else "")


def lut_source(name: str, table: Mapping[str, float]) -> SpaceSource:
    """What a device's LUT fits: the spaces with fully covered resolutions, and partial ones as notes."""
    spaces: dict[str, list[int]] = {}
    partial: dict[str, list[str]] = {}
    for row in coverage(table):
        if row["complete"]:
            spaces.setdefault(row["space"], []).append(row["resolution"])
        else:
            partial.setdefault(row["space"], []).append(f"r={row['resolution']}: {row['blocks']} of {row['of']} blocks")
    return SpaceSource(f"LUT {name!r}", {k: tuple(v) for k, v in spaces.items()},
                       {k: ", ".join(v) for k, v in partial.items() if k not in spaces})


def predictor_source(label: str, predictor: Any) -> SpaceSource:
    """A predictor fits the space it was trained for, at its resolutions."""
    from space import get_space

    space = get_space(predictor.space_name)
    res = getattr(predictor, "resolutions", None) or space.resolutions
    return SpaceSource(f"predictor {label}", {space.name: tuple(sorted(int(r) for r in res))}, verb="is for")


def net_config_source(label: str, blocks: Sequence[Any]) -> SpaceSource:
    """An OFA net.config fits the spaces whose stem width its first conv has, at its resolution."""
    from space import get_space, list_spaces

    stem = blocks[0]
    fits = {name: (stem.in_hw,) for name in list_spaces() if get_space(name).first_conv_chs == stem.out_chs}
    if not fits:
        return SpaceSource(f"net.config {label} (stem width {stem.out_chs}, no registered space)", {})
    return SpaceSource(f"net.config {label}", fits, verb="is")


def choose_space(sources: Iterable[SpaceSource], given: str | None = None) -> str:
    """The space every source fits: ``given`` when set, else the only one (the default space among several).

    Raises:
        ValueError: an unknown ``given``; no space fits every source; or, in the chosen space, no
            resolution is covered by every source. The message names each source's spaces and
            resolutions and which sources fit each space.
    """
    from space import DEFAULT_SPACE, get_space, list_spaces

    sources = list(sources)
    if given is not None:
        name = get_space(given).name
        misfits = [s for s in sources if not s.fits(name)]
        if misfits:
            raise ValueError(f"--space {name} does not fit every input: {_explain(sources, name)}")
    else:
        common = [n for n in list_spaces() if all(s.fits(n) for s in sources)]
        if not common:
            raise ValueError(f"no search space fits every input: {_explain(sources)}")
        # Prefer a space every input covers fully, then the default space.
        full = [n for n in common if all(n in s.spaces for s in sources)] or common
        name = DEFAULT_SPACE if DEFAULT_SPACE in full else full[0]
    resolutions = [set(s.spaces[name]) for s in sources if s.spaces.get(name)]
    if resolutions and not set.intersection(*resolutions):
        listing = "; ".join(s.describe() for s in sources)
        raise ValueError(f"in {name}, no resolution is covered by every input: {listing}")
    return name


def _explain(sources: Sequence[SpaceSource], given: str | None = None) -> str:
    """Each input's spaces and resolutions, then which inputs fit each space (spaces no input fits are left
    out, unless it is the ``--space`` given)."""
    from space import list_spaces

    listing = "; ".join(s.describe() for s in sources)
    fit = []
    for name in list_spaces():
        who = [s.label for s in sources if s.fits(name)]
        if not who and name != given:
            continue
        fit.append(f"{name} fits {'every input' if len(who) == len(sources) else ', '.join(who) or 'none of them'}")
    return f"{listing}. Inputs of one width would work: {'; '.join(fit)}"


def profile_resolutions(name: str) -> tuple[int, ...]:
    """The resolutions ``lutnas profile`` times in a space by default: OFA's five LUT resolutions in a
    space that samples more than five (the ImageNet spaces), else every resolution of the space."""
    from space import get_space

    space = get_space(name)
    subset = tuple(r for r in OFA_LUT_RESOLUTIONS if r in space.resolutions)
    return subset if subset and len(space.resolutions) > len(subset) else tuple(space.resolutions)


def store_space(store: Any, stored: Mapping[str, Any], others: Sequence[SpaceSource], given: str | None) -> str:
    """:func:`choose_space` for the LUTs of ``stored`` (name -> StoredSetting) and ``others``; exit 2 on a mismatch."""
    from lutnas._common import EXIT_USAGE, fail

    sources = [lut_source(name, store.table(s.id)) for name, s in stored.items()]
    try:
        return choose_space([*sources, *others], given)
    except ValueError as err:
        fail(str(err), EXIT_USAGE)
