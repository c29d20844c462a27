"""Which search space a piece of work is in: inferred from what it is given, explained when they disagree.

Each input fits some spaces at some resolutions: a LUT prices every block of a space at the
resolutions it covers fully (one device setting may hold several spaces), a predictor is trained for
one space and its resolutions, an OFA net.config is one family's network, an arch dict has one
family's shape and one resolution. The work is in the one space every input fits at a common
resolution; a space must be named (``--space``) only to choose among several, and a mismatch or an
ambiguity names every input's spaces and resolutions, so the user sees what would work.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from lut.listing import coverage  # re-exported: commands import it from here

__all__ = [
    "SpaceSource", "arch_source", "choose_space", "coverage", "lut_source", "net_config_source", "predictor_source",
    "profile_resolutions", "recorded_spaces",
]

logger = logging.getLogger(__name__)

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
    request: bool = False  # what is asked for (an arch): it picks among spaces, never makes a choice fail
    table: Mapping[str, float] | None = field(default=None, repr=False, compare=False)  # a LUT's rows
    arch: Any = field(default=None, repr=False, compare=False)  # a request's arch dict

    def with_space(self, space: Any) -> SpaceSource:
        """This LUT's (or arch's) source with ``space`` (a space file or one recorded in the store, not registered)
        checked too; other sources as they are."""
        if self.arch is not None:
            try:
                r = int(space.validate(self.arch).r)
            except ValueError:
                return self
            return replace(self, spaces={**self.spaces, space.name: (r,)})
        if self.table is None:
            return self
        spaces, partial = dict(self.spaces), dict(self.partial)
        rows = coverage(self.table, [space])
        done = tuple(row["resolution"] for row in rows if row["complete"])
        if done:
            spaces[space.name] = done
        elif rows:
            partial[space.name] = ", ".join(f"r={row['resolution']}: {row['blocks']} of {row['of']} blocks"
                                            for row in rows)
        return SpaceSource(self.label, spaces, partial, self.verb, self.request, self.table)

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


def lut_source(name: str, table: Mapping[str, float], recorded: Sequence[Any] = ()) -> SpaceSource:
    """What a device's LUT fits: the spaces with fully covered resolutions, and partial ones as notes.

    Args:
        name: the device's name, for messages.
        table: the LUT's rows (block key -> ms).
        recorded: users' spaces the store recorded with the LUT (:func:`recorded_spaces`), checked beside the
            registered ones (a user's space may share its stem with a registered one: that is no partial cover).
    """
    from space import get_space, list_spaces

    candidates = {n: get_space(n) for n in list_spaces()}
    candidates.update({s.name: s for s in recorded if s.name not in candidates})
    spaces: dict[str, list[int]] = {}
    partial: dict[str, list[str]] = {}
    rows = coverage(table, list(candidates.values()))
    for row in rows:
        if row["complete"]:
            spaces.setdefault(row["space"], []).append(row["resolution"])
    covered = {b.key for row in rows if row["complete"]
               for b in candidates[row["space"]].unique_blocks([row["resolution"]])}
    for row in rows:
        if not row["complete"] and not _only_shared(table, candidates[row["space"]], row["resolution"], covered):
            partial.setdefault(row["space"], []).append(f"r={row['resolution']}: {row['blocks']} of {row['of']} blocks")
    return SpaceSource(f"LUT {name!r}", {k: tuple(v) for k, v in spaces.items()},
                       {k: ", ".join(v) for k, v in partial.items() if k not in spaces}, table=table)


def _only_shared(table: Mapping[str, float], space: Any, resolution: int, covered: set[str]) -> bool:
    """Whether a begun resolution's priced blocks all belong to spaces the LUT covers fully (two digits-scale
    spaces share their stem, so a LUT of one has begun the other without holding anything of its own)."""
    need = {b.key for b in space.unique_blocks([resolution])}
    return bool(covered) and (need & set(table)) <= covered


def predictor_source(label: str, predictor: Any) -> SpaceSource:
    """A predictor fits the space it was trained for, at its resolutions."""
    from space import get_space

    space = get_space(getattr(predictor, "space", None) or predictor.space_name)  # a user's space: the object
    res = getattr(predictor, "resolutions", None) or space.resolutions
    return SpaceSource(f"predictor {label}", {space.name: tuple(sorted(int(r) for r in res))}, verb="is for")


def net_config_source(label: str, blocks: Sequence[Any]) -> SpaceSource:
    """An OFA net.config fits the spaces that can run every one of its blocks, at its resolution."""
    from space import get_space, list_spaces

    r = blocks[0].in_hw
    keys = {b.key for b in blocks}
    fits = {name: (r,) for name in list_spaces() if keys <= {b.key for b in get_space(name).unique_blocks(r)}}
    if not fits:
        return SpaceSource(f"net.config {label} (a subnet of no registered space)", {})
    return SpaceSource(f"net.config {label}", fits, verb="is")


def arch_source(label: str, arch: Any) -> SpaceSource:
    """An arch dict fits the spaces it is a valid subnet of (its family's shape and choices), at its ``r``."""
    from space import get_space, list_spaces

    fits = {}
    for name in list_spaces():
        try:
            fits[name] = (int(get_space(name).validate(arch).r),)
        except ValueError:
            continue
    return SpaceSource(label, fits, verb="is a subnet of", request=True, arch=arch)


def recorded_spaces(settings: Iterable[Any]) -> list[Any]:
    """The users' spaces (not registered) the stored settings' rows were profiled for, as the store recorded them
    (``LutStore.record_space``); a recorded document this lutnas cannot read is left out."""
    from space import list_spaces, space_from_dict

    registered = set(list_spaces())
    out: dict[str, Any] = {}
    for stored in settings:
        for name, doc in stored.recorded_spaces.items():
            if doc is None or name in registered or name in out:
                continue
            try:
                out[name] = space_from_dict(doc, source=f"space {name!r} recorded with {stored.describe()}")
            except ValueError as err:
                logger.warning("%s", err)
    return list(out.values())


def choose_space(sources: Iterable[SpaceSource], given: str | None = None, recorded: Sequence[Any] = ()) -> str:
    """The space every source fits at a common resolution: ``given`` when set, else the only one.

    Args:
        sources: the inputs.
        given: the ``--space`` asked for: a registered name, a recorded space's name or a space file.
        recorded: users' spaces the store recorded with the LUTs (:func:`recorded_spaces`): each input is
            checked against them too, and they are candidates beside the registered spaces.

    Returns:
        A registered or recorded space's name, or ``given`` when it is a space file's path.

    Raises:
        ValueError: an unknown ``given``; no space fits every source; in the chosen space, no resolution
            is covered by every source; or several spaces fit (the request does not tell which). The
            message names each source's spaces and resolutions and which sources fit each space.
    """
    from space import SPACE_FILE_SUFFIXES, get_space, list_spaces

    sources = list(sources)
    for space in recorded:
        sources = [s.with_space(space) for s in sources]
    registered = list_spaces()
    mine = [s.name for s in recorded if s.name not in registered]
    names = [*registered, *mine]
    if given is not None and given not in names:  # a space file: the inputs are checked against it too
        try:
            space = get_space(given)
        except ValueError as err:
            if not mine or str(given).lower().endswith(SPACE_FILE_SUFFIXES):  # a bad file: its own message
                raise
            raise ValueError(f"{err}; recorded with the LUTs: {', '.join(mine)}") from None
        sources = [s.with_space(space) for s in sources]
        _choose([s for s in sources if not s.request], space.name, list(dict.fromkeys([*names, space.name])))
        return given  # its path: the caller loads the space by it (its name may be registered nowhere)
    asked = [s for s in sources if s.request and s.spaces]
    if asked and given is None:
        try:
            return _choose([s for s in sources if not s.request or s.spaces], None, names)
        except _Ambiguous:
            raise
        except ValueError:
            pass  # the request fits no space the inputs cover: choose by the inputs, the reader names the gap
    return _choose([s for s in sources if not s.request], given, names)


class _Ambiguous(ValueError):
    """Several spaces fit every input."""


def _choose(sources: list[SpaceSource], given: str | None, names: Sequence[str]) -> str:
    from space import DEFAULT_SPACE, get_space

    if not sources and given is None:
        return DEFAULT_SPACE
    if given is not None:
        name = given if given in names else get_space(given).name
        misfits = [s for s in sources if not s.fits(name)]
        if misfits:
            raise ValueError(f"--space {name} does not fit every input: {_explain(sources, names, name)}")
        _check_common_resolution(sources, name)
        return name
    common = [n for n in names if all(s.fits(n) for s in sources)]
    if not common:
        raise ValueError(f"no search space fits every input: {_explain(sources, names)}")
    # Spaces every input covers fully, at a resolution they share.
    full = [n for n in common if all(n in s.spaces for s in sources) and _shared(sources, n)]
    if len(full) > 1:
        listing = "; ".join(s.describe() for s in sources)
        raise _Ambiguous(f"several spaces fit ({', '.join(full)}): {listing}; pass --space to choose one")
    name = full[0] if full else common[0]
    _check_common_resolution(sources, name)
    return name


def _shared(sources: Sequence[SpaceSource], name: str) -> set[int]:
    """Resolutions every source that lists some for ``name`` covers."""
    sets = [set(s.spaces[name]) for s in sources if s.spaces.get(name)]
    return set.intersection(*sets) if sets else {0}


def _check_common_resolution(sources: Sequence[SpaceSource], name: str) -> None:
    if not _shared(sources, name):
        listing = "; ".join(s.describe() for s in sources)
        raise ValueError(f"in {name}, no resolution is covered by every input: {listing}")


def _explain(sources: Sequence[SpaceSource], names: Sequence[str], given: str | None = None) -> str:
    """Each input's spaces and resolutions, then which inputs fit each space of ``names`` (spaces no input fits
    are left out, unless it is the ``--space`` given)."""
    listing = "; ".join(s.describe() for s in sources)
    fit = []
    for name in names:
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
