"""Readable names for device settings: ``cpu``, ``cpu:int8``, ``pi5:tflite:fp16``, ``cpu:threads=4``, or an id.

A device with several settings (one per runtime, precision, thread count, ...) needs more than its name.
A selector is the device name followed by ``:``-separated qualifiers, each narrowing the match:

- ``key=value`` names one field: ``runtime``, ``version`` (runtime version), ``threads``, ``precision``,
  ``format`` (model format) or ``delegate``;
- a bare word matches any of precision, runtime, model format or delegate (``int8``, ``tflite``, ``onnx``);
- ``4t`` means 4 threads.

A digit string is a setting id. A name that contains ``:`` still matches itself exactly.
"""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING

from lut.errors import AmbiguousDeviceError, UnknownDeviceError

if TYPE_CHECKING:
    from lut.store import StoredSetting

__all__ = ["SELECTOR_KEYS", "parse_selector", "resolve_all", "select_setting", "selector_for", "with_precision"]

#: ``key=value`` qualifiers and the DeviceSetting field each one names.
SELECTOR_KEYS: dict[str, str] = {
    "runtime": "runtime",
    "version": "runtime_version",
    "threads": "threads",
    "precision": "precision",
    "format": "model_format",
    "delegate": "delegate",
}
# Fields a bare qualifier may match, in the order they are tried when listing a setting's selector.
_BARE_FIELDS = ("precision", "runtime", "model_format", "delegate")


def parse_selector(text: str) -> tuple[str, list[tuple[str | None, str]]]:
    """Split ``NAME:q1:q2`` into the name and (field or None for a bare word, value) qualifiers.

    Raises:
        ValueError: an empty name or qualifier, or an unknown ``key=``.
    """
    name, *parts = text.split(":")
    if not name.strip():
        raise ValueError(f"device selector {text!r} has no device name; expected NAME[:QUALIFIER...], e.g. cpu:int8")
    quals: list[tuple[str | None, str]] = []
    for part in parts:
        key, eq, value = part.partition("=")
        if not part or (eq and not value):
            raise ValueError(f"device selector {text!r} has an empty qualifier")
        if not eq:
            if part[:-1].isdigit() and part.endswith("t"):
                quals.append(("threads", part[:-1]))
            else:
                quals.append((None, part))
        elif key in SELECTOR_KEYS:
            quals.append((SELECTOR_KEYS[key], value))
        else:
            raise ValueError(f"unknown selector key {key!r} in {text!r}; known: {', '.join(SELECTOR_KEYS)}")
    return name, quals


def _matches(stored: StoredSetting, quals: Sequence[tuple[str | None, str]]) -> bool:
    s = stored.setting
    for field, value in quals:
        fields = _BARE_FIELDS if field is None else (field,)
        if not any(str(getattr(s, f)) == value for f in fields):
            return False
    return True


def select_setting(settings: Sequence[StoredSetting], ref: str | int) -> StoredSetting:
    """The one setting ``ref`` names among ``settings``: an id, a device name, or a selector.

    Raises:
        UnknownDeviceError: nothing matches; the message lists the known devices and, for a near miss,
            says "did you mean ...".
        AmbiguousDeviceError: several settings match; the message lists a selector for each.
        ValueError: a malformed selector.
    """
    match = _candidates(settings, ref)
    if len(match) > 1:
        listing = "; ".join(f"{selector_for(s, settings)} ({s.describe()})" for s in match)
        raise AmbiguousDeviceError(f"device {ref!r} has {len(match)} settings, pick one: {listing}")
    return match[0]


def resolve_all(settings: Sequence[StoredSetting], refs: Sequence[str | int]) -> list[StoredSetting]:
    """The settings ``refs`` name together, one per ref.

    A ref that alone names several settings of a device is settled by the others: ``cpu:fp32`` beside
    ``cpu:int8`` is the fp32 setting that differs from the int8 one only in what the two selectors name
    (same runtime, threads, format), when exactly one such choice exists.

    Raises:
        UnknownDeviceError, AmbiguousDeviceError, ValueError: as :func:`select_setting`.
    """
    candidates = [_candidates(settings, ref) for ref in refs]
    if all(len(c) == 1 for c in candidates):
        return [c[0] for c in candidates]
    named = {v for ref in refs if isinstance(ref, str) and ":" in ref for _, v in parse_selector(ref)[1]}
    combos = [combo for combo in itertools.islice(itertools.product(*candidates), _MAX_COMBOS)
              if _alike(combo, named) and len({s.id for s in combo}) == len(combo)]
    if len(combos) == 1:
        return list(combos[0])
    ambiguous = next(i for i, c in enumerate(candidates) if len(c) > 1)
    return [select_setting(settings, refs[ambiguous])]  # raises, listing a selector for each


# Combinations of candidates :func:`resolve_all` looks through (a few devices with a few settings each).
_MAX_COMBOS = 10_000
_FIELDS = ("runtime", "runtime_version", "threads", "precision", "model_format", "delegate")


def _alike(combo: Sequence[StoredSetting], named: set[str]) -> bool:
    """Settings of one device agree on every field except where a selector named the value."""
    for a, b in itertools.combinations(combo, 2):
        if a.name != b.name:
            continue
        for f in _FIELDS:
            va, vb = str(getattr(a.setting, f)), str(getattr(b.setting, f))
            if va != vb and va not in named and vb not in named:
                return False
    return True


def _candidates(settings: Sequence[StoredSetting], ref: str | int) -> list[StoredSetting]:
    """Every setting ``ref`` matches (at least one; else UnknownDeviceError with a hint)."""
    if isinstance(ref, int) or ref.strip().isdigit():
        match = [s for s in settings if s.id == int(ref)]
        if not match:
            raise UnknownDeviceError(f"no device setting with id {int(ref)}; {_known(settings)}")
        return match
    match = [s for s in settings if s.name == ref]
    if not match and ":" in ref:
        name, quals = parse_selector(ref)
        named = [s for s in settings if s.name == name]
        if not named:
            raise UnknownDeviceError(f"unknown device {name!r} in {ref!r}; {_known(settings)}{_hint(ref, settings)}")
        match = [s for s in named if _matches(s, quals)]
        if not match:
            listing = "; ".join(f"{selector_for(s, settings)} ({s.describe()})" for s in named)
            raise UnknownDeviceError(f"no setting of {name!r} matches {ref!r}; its settings: {listing}"
                                     f"{_hint(ref, settings)}")
    if not match:
        raise UnknownDeviceError(f"unknown device {ref!r}; {_known(settings)}{_hint(ref, settings)}")
    return match


def _hint(ref: str, settings: Sequence[StoredSetting]) -> str:
    """``; did you mean 'cpu:int8'?`` for a near miss of a name or selector ('' when nothing is close)."""
    words = {s.name for s in settings}
    for s in settings:
        words.add(selector_for(s, settings))
        words.update(f"{s.name}:{getattr(s.setting, f)}" for f in _BARE_FIELDS if getattr(s.setting, f))
    same_case = sorted(w for w in words if w.casefold() == ref.casefold())
    guesses = same_case or difflib.get_close_matches(ref, sorted(words), n=1, cutoff=0.6)
    return f"; did you mean {guesses[0]!r}?" if guesses else ""


def selector_for(stored: StoredSetting, settings: Sequence[StoredSetting]) -> str:
    """The shortest selector that names ``stored`` alone among ``settings`` (its id when none does)."""
    same = [s for s in settings if s.name == stored.name]
    if len(same) == 1:
        return stored.name
    s = stored.setting
    candidates: list[list[tuple[str | None, str]]] = [[(None, str(getattr(s, f)))] for f in _BARE_FIELDS]
    candidates += [[(None, s.runtime), (None, s.precision)], [(None, s.runtime), (None, s.precision), ("threads", str(s.threads))]]
    for quals in candidates:
        if any(not v for _, v in quals):
            continue
        if [o.id for o in same if _matches(o, quals)] == [stored.id]:
            return ":".join([stored.name] + [v if f is None else f"{_key(f)}={v}" for f, v in quals])
    return str(stored.id)


def with_precision(ref: str | int, precision: str | None) -> str | int:
    """``ref`` narrowed to ``precision`` (``--device cpu --precision int8`` is ``cpu:int8``); ids stay ids."""
    if precision is None or isinstance(ref, int) or ref.strip().isdigit():
        return ref
    return f"{ref}:{precision}"


def _key(field: str) -> str:
    return next(k for k, f in SELECTOR_KEYS.items() if f == field)


def _known(settings: Sequence[StoredSetting]) -> str:
    names = sorted({s.name for s in settings})
    return f"known devices: {', '.join(names)}" if names else "the store has no devices yet"
