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

from collections.abc import Sequence
from typing import TYPE_CHECKING

from lut.errors import AmbiguousDeviceError, UnknownDeviceError

if TYPE_CHECKING:
    from lut.store import StoredSetting

__all__ = ["SELECTOR_KEYS", "parse_selector", "select_setting", "selector_for", "with_precision"]

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
        UnknownDeviceError: nothing matches; the message lists the known devices.
        AmbiguousDeviceError: several settings match; the message lists a selector for each.
        ValueError: a malformed selector.
    """
    if isinstance(ref, int) or ref.strip().isdigit():
        match = [s for s in settings if s.id == int(ref)]
        if not match:
            raise UnknownDeviceError(f"no device setting with id {int(ref)}; {_known(settings)}")
        return match[0]
    match = [s for s in settings if s.name == ref]
    if not match and ":" in ref:
        name, quals = parse_selector(ref)
        named = [s for s in settings if s.name == name]
        if not named:
            raise UnknownDeviceError(f"unknown device {name!r} in {ref!r}; {_known(settings)}")
        match = [s for s in named if _matches(s, quals)]
        if not match:
            listing = "; ".join(f"{selector_for(s, settings)} ({s.describe()})" for s in named)
            raise UnknownDeviceError(f"no setting of {name!r} matches {ref!r}; its settings: {listing}")
    if not match:
        raise UnknownDeviceError(f"unknown device {ref!r}; {_known(settings)}")
    if len(match) > 1:
        listing = "; ".join(f"{selector_for(s, settings)} ({s.describe()})" for s in match)
        raise AmbiguousDeviceError(f"device {ref!r} has {len(match)} settings, pick one: {listing}")
    return match[0]


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
