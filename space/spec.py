"""Spaces as data: build a search space from a space file (JSON, YAML, or TOML on Python 3.11+) or a dict.

The built-in spaces are such files (``space/data/*.json``), loaded by the same path as a user's own, so
there is one way a space comes to be. JSON because ``space`` is standard library only and must load on
boards with Python 3.10, where ``tomllib`` does not exist; a TOML file works where it does, and a YAML
file where PyYAML is installed (every host install; it is read bounded, as LUT files are: :mod:`space._yaml`).

Two shapes of space (``"kind"``), with widths given at multiplier 1.0 and rounded as OFA rounds them
(``make_divisible(width * width_mult, 8)``):

``"mbconv"`` (OFA's MobileNetV3 and ProxylessNAS)::

    {"name": "my-space", "kind": "mbconv", "family": "ofa-mbv3", "width_mult": 1.0, "n_classes": 1000,
     "resolutions": {"from": 128, "to": 224, "step": 4},            # or a list
     "choices": {"ks": [3, 5, 7], "e": [3, 4, 6], "d": [2, 3, 4]},
     "stem": {"first_conv": {"width": 16, "act": "h_swish"},
              "first_block": {"width": 16, "act": "relu"}},          # optional "skip": true|false
     "stages": [{"width": 24, "stride": 2, "act": "relu", "se": false}, ...],   # optional "slots": n
     "head": {"final_expand": {"width": 960, "act": "h_swish"},
              "feature_mix": {"width": 1280}}}                       # leave it out: the classifier pools

``"resnet"`` (OFA's ResNet50)::

    {"name": "my-resnet", "kind": "resnet", "family": "ofa-resnet50", "width_mult": 1.0, "n_classes": 1000,
     "resolutions": [160, 192, 224], "act": "relu",
     "choices": {"d": [0, 1, 2], "e": [0.2, 0.25, 0.35], "w": [0.65, 0.8, 1.0]},
     "stem": {"width": 64},
     "stages": [{"width": 256, "base_depth": 2, "stride": 1}, ...]}

A bad file gets one ``ValueError`` line naming the file and the field.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from space.block import ACTIVATIONS
from space.bounds import MAX_QUOTED_CHARS, loads_json, quoted
from space.resnet_space import ResNetSpace
from space.search_space import MAX_RESOLUTION, MIN_RESOLUTION, SearchSpace, make_divisible

__all__ = ["SPACE_FILE_SUFFIXES", "SPACE_KINDS", "AnySpace", "load_space_file", "space_from_dict", "space_to_dict"]

AnySpace = SearchSpace | ResNetSpace
#: The shapes of space a file may declare.
SPACE_KINDS: tuple[str, ...] = ("mbconv", "resnet")
#: What a space file's name ends with (any case): ``get_space`` reads such a name as a path, not a space's name.
SPACE_FILE_SUFFIXES: tuple[str, ...] = (".json", ".toml", ".yaml", ".yml")
_MAX_SPACE_FILE_BYTES = 1 << 20  # a space file is a few hundred lines


def load_space_file(path: str | Path) -> AnySpace:
    """The space a file declares (``.json``, ``.yaml``/``.yml``; ``.toml`` where Python has ``tomllib``).

    Raises:
        ValueError: unreadable, too large, not JSON/YAML/TOML, or a field is missing or wrong (the message
            names it).
    """
    path = Path(path)
    source = f"space file {path}"
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        return space_from_dict(_read_yaml(path, source), source=source)
    try:
        if path.stat().st_size > _MAX_SPACE_FILE_BYTES:
            raise ValueError(f"{source}: larger than {_MAX_SPACE_FILE_BYTES} bytes")
        text = path.read_text()
    except OSError as err:
        raise ValueError(f"cannot read space file {path}: {err.strerror}") from err
    except UnicodeDecodeError as err:
        raise ValueError(f"{source}: not UTF-8 text") from err
    if suffix == ".toml":
        try:
            import tomllib
        except ModuleNotFoundError:
            raise ValueError(f"{source}: TOML needs Python 3.11+; write it as JSON") from None
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise ValueError(f"{source}: not TOML ({err})") from err
    else:
        try:
            doc = loads_json(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"{source}: not JSON (line {err.lineno}: {err.msg})") from err
    return space_from_dict(doc, source=source)


def _read_yaml(path: Path, source: str) -> Any:
    """The document of a YAML space file, bounded before it is built (size, anchors, nesting)."""
    from space._yaml import load_yaml, read_yaml_text

    text = read_yaml_text(path, _MAX_SPACE_FILE_BYTES, source, "a space file")
    try:
        return load_yaml(text, source, "a space file")
    except ModuleNotFoundError:
        raise ValueError(f"{source}: YAML needs PyYAML (pip install pyyaml); write it as JSON") from None


def space_from_dict(doc: Any, source: str = "space") -> AnySpace:
    """The space a parsed space file declares.

    Raises:
        ValueError: ``"<source>: <field> must be ..., got ..."`` for the first bad field.
    """
    r = _Reader(source)
    doc = r.mapping("(top level)", doc)
    kind = r.choice("kind", doc.get("kind"), SPACE_KINDS)
    build = _build_mbconv if kind == "mbconv" else _build_resnet
    known = _MBCONV_KEYS if kind == "mbconv" else _RESNET_KEYS
    r.known("(top level)", doc, known)
    return build(r, doc)


def space_to_dict(space: AnySpace) -> dict[str, Any]:
    """The space file document that builds ``space`` (``space_from_dict(space_to_dict(s)) == s``), JSON-ready.

    A LUT store and a predictor file record a user's space this way, so it is found again without its file.

    Raises:
        ValueError: a space built in code without its widths at multiplier 1.0 (not from a space file).
    """
    common = {"name": space.name, "family": space.family, "width_mult": space.width_mult,
              "n_classes": space.n_classes, "resolutions": list(space.resolutions)}
    if isinstance(space, ResNetSpace):
        return {**common, "kind": "resnet", "act": space.act,
                "choices": {"d": list(space.depth_choices), "e": list(space.expand_choices),
                            "w": list(space.width_choices)},
                "stem": {"width": space.stem_chs},
                "stages": [{"width": w, "base_depth": n, "stride": s}
                           for w, n, s in zip(space.stage_chs, space.base_depths, space.stage_strides)]}
    n = space.n_stages
    if len(space.base_widths) not in (n + 3, n + 4):
        raise ValueError(f"space {space.name!r} has no widths at multiplier 1.0 (base_widths); build it from a "
                         "space file to record it")
    conv, first, *rest = space.base_widths
    stages = [{"width": rest[i], "stride": space.stage_strides[i], "act": space.stage_acts[i],
               "se": space.stage_se[i]} for i in range(n)]
    for i, slots in enumerate(space.stage_slots):
        stages[i]["slots"] = slots
    first_block: dict[str, Any] = {"width": first, "act": space.first_block_act}
    if space.first_block_skip is not None:
        first_block["skip"] = space.first_block_skip
    head: dict[str, Any] = {"final_expand": {"width": rest[n], "act": space.head_act}}
    if space.feature_mix_chs:
        head["feature_mix"] = {"width": rest[n + 1]}
    return {**common, "kind": "mbconv",
            "choices": {"ks": list(space.ks_choices), "e": list(space.expand_choices), "d": list(space.depth_choices)},
            "stem": {"first_conv": {"width": conv, "act": space.stem_act}, "first_block": first_block},
            "stages": stages, "head": head}


_COMMON_KEYS = ("name", "kind", "family", "width_mult", "n_classes", "resolutions", "choices", "stem", "stages")
_MBCONV_KEYS = (*_COMMON_KEYS, "head")
_RESNET_KEYS = (*_COMMON_KEYS, "act")


class _Reader:
    """Field checks that name the field: ``space file x.json: stages[2].width must be a positive int, got 0``."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, field: str, expected: str, value: Any) -> ValueError:
        return ValueError(f"{self.source}: {field} must be {expected}, got {quoted(value)}")

    def mapping(self, field: str, value: Any) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(field, "an object", value)
        return value

    def known(self, field: str, value: Mapping[str, Any], keys: Sequence[str]) -> None:
        unknown = sorted(map(str, set(value) - set(keys)))  # str: a YAML key may be a number
        if unknown:
            where = "" if field == "(top level)" else f"{field}."
            name = unknown[0] if len(unknown[0]) <= MAX_QUOTED_CHARS else quoted(unknown[0])
            raise ValueError(f"{self.source}: unknown field {where}{name}; valid: {', '.join(keys)}")

    def get(self, field: str, doc: Mapping[str, Any], key: str, check: Callable[[str, Any], Any],
            default: Any = ...) -> Any:
        name = key if field == "(top level)" else f"{field}.{key}"
        if key not in doc:
            if default is ...:
                raise ValueError(f"{self.source}: missing field {name}")
            return default
        return check(name, doc[key])

    def text(self, field: str, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(field, "a non-empty string", value)
        return value

    def positive_int(self, field: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self.fail(field, "a positive int", value)
        return value

    def positive_number(self, field: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise self.fail(field, "a positive number", value)
        return float(value)

    def flag(self, field: str, value: Any) -> bool:
        if not isinstance(value, bool):
            raise self.fail(field, "true or false", value)
        return value

    def choice(self, field: str, value: Any, choices: Sequence[str]) -> str:
        if value not in choices:
            raise self.fail(field, "one of " + ", ".join(map(str, choices)), value)
        return value

    def act(self, field: str, value: Any) -> str:
        return self.choice(field, value, [a for a in ACTIVATIONS if a != "none"])

    def numbers(self, field: str, value: Any, check: Callable[[str, Any], Any]) -> tuple[Any, ...]:
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not value:
            raise self.fail(field, "a non-empty list", value)
        out = tuple(check(f"{field}[{i}]", v) for i, v in enumerate(value))
        if len(set(out)) != len(out):
            raise self.fail(field, "a list without repeats", list(value))
        return tuple(sorted(out))

    def resolutions(self, field: str, value: Any) -> tuple[int, ...]:
        if isinstance(value, Mapping):
            self.known(field, value, ("from", "to", "step"))
            lo = self.get(field, value, "from", self.positive_int)
            hi = self.get(field, value, "to", self.positive_int)
            step = self.get(field, value, "step", self.positive_int, 1)
            value = list(range(lo, hi + 1, step))
        res = self.numbers(field, value, self.positive_int)
        bad = [v for v in res if not MIN_RESOLUTION <= v <= MAX_RESOLUTION]
        if bad:
            raise self.fail(field, f"resolutions in [{MIN_RESOLUTION}, {MAX_RESOLUTION}]", bad)
        return res

    def stages(self, field: str, value: Any) -> list[Mapping[str, Any]]:
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not value:
            raise self.fail(field, "a non-empty list of stages", value)
        return [self.mapping(f"{field}[{i}]", v) for i, v in enumerate(value)]


def _width(width: int, mult: float) -> int:
    return make_divisible(width * mult, 8)


def _build_mbconv(r: _Reader, doc: Mapping[str, Any]) -> SearchSpace:
    top = "(top level)"
    name = r.get(top, doc, "name", r.text)
    mult = r.get(top, doc, "width_mult", r.positive_number, 1.0)
    choices = r.get(top, doc, "choices", r.mapping)
    r.known("choices", choices, ("ks", "e", "d"))
    ks = r.get("choices", choices, "ks", lambda f, v: r.numbers(f, v, _odd(r)))
    e = r.get("choices", choices, "e", lambda f, v: r.numbers(f, v, r.positive_number))
    d = r.get("choices", choices, "d", lambda f, v: r.numbers(f, v, r.positive_int))
    stem = r.get(top, doc, "stem", r.mapping)
    r.known("stem", stem, ("first_conv", "first_block"))
    conv = r.get("stem", stem, "first_conv", r.mapping)
    r.known("stem.first_conv", conv, ("width", "act"))
    first = r.get("stem", stem, "first_block", r.mapping)
    r.known("stem.first_block", first, ("width", "act", "skip"))
    stages = r.get(top, doc, "stages", r.stages)
    for i, st in enumerate(stages):
        r.known(f"stages[{i}]", st, ("width", "stride", "act", "se", "slots"))
    head = r.get(top, doc, "head", r.mapping)
    r.known("head", head, ("final_expand", "feature_mix"))
    final = r.get("head", head, "final_expand", r.mapping)
    r.known("head.final_expand", final, ("width", "act"))
    mix = r.get("head", head, "feature_mix", r.mapping, None)
    if mix is not None:
        r.known("head.feature_mix", mix, ("width",))
    slots = tuple(r.get(f"stages[{i}]", st, "slots", r.positive_int, max(d)) for i, st in enumerate(stages))
    base = [conv.get("width"), first.get("width"), *(st.get("width") for st in stages), final.get("width")]
    return SearchSpace(
        base_widths=tuple(base + ([mix.get("width")] if mix is not None else [])),
        name=name,
        family=r.get(top, doc, "family", r.text, name),
        width_mult=mult,
        first_conv_chs=_width(r.get("stem.first_conv", conv, "width", r.positive_int), mult),
        stem_act=r.get("stem.first_conv", conv, "act", r.act),
        first_block_chs=_width(r.get("stem.first_block", first, "width", r.positive_int), mult),
        first_block_act=r.get("stem.first_block", first, "act", r.act),
        first_block_skip=r.get("stem.first_block", first, "skip", r.flag, None),
        stage_chs=tuple(_width(r.get(f"stages[{i}]", st, "width", r.positive_int), mult)
                        for i, st in enumerate(stages)),
        stage_strides=tuple(r.get(f"stages[{i}]", st, "stride", lambda f, v: r.choice(f, v, (1, 2)))
                            for i, st in enumerate(stages)),
        stage_acts=tuple(r.get(f"stages[{i}]", st, "act", r.act) for i, st in enumerate(stages)),
        stage_se=tuple(r.get(f"stages[{i}]", st, "se", r.flag, False) for i, st in enumerate(stages)),
        stage_slots=() if all(n == max(d) for n in slots) else slots,
        final_expand_chs=_width(r.get("head.final_expand", final, "width", r.positive_int), mult),
        head_act=r.get("head.final_expand", final, "act", r.act),
        feature_mix_chs=0 if mix is None else _width(r.get("head.feature_mix", mix, "width", r.positive_int), mult),
        n_classes=r.get(top, doc, "n_classes", r.positive_int, 1000),
        ks_choices=ks,
        expand_choices=tuple(int(v) if float(v).is_integer() else v for v in e),
        depth_choices=d,
        resolutions=r.get(top, doc, "resolutions", r.resolutions),
    )


def _odd(r: _Reader) -> Callable[[str, Any], int]:
    def check(field: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1 or value % 2 == 0:
            raise r.fail(field, "an odd positive int", value)
        return value
    return check


def _non_negative_int(r: _Reader) -> Callable[[str, Any], int]:
    def check(field: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise r.fail(field, "an int >= 0", value)
        return value
    return check


def _build_resnet(r: _Reader, doc: Mapping[str, Any]) -> ResNetSpace:
    top = "(top level)"
    name = r.get(top, doc, "name", r.text)
    choices = r.get(top, doc, "choices", r.mapping)
    r.known("choices", choices, ("d", "e", "w"))
    stem = r.get(top, doc, "stem", r.mapping)
    r.known("stem", stem, ("width",))
    stages = r.get(top, doc, "stages", r.stages)
    for i, st in enumerate(stages):
        r.known(f"stages[{i}]", st, ("width", "base_depth", "stride"))
    return ResNetSpace(
        name=name,
        family=r.get(top, doc, "family", r.text, name),
        width_mult=r.get(top, doc, "width_mult", r.positive_number, 1.0),
        stem_chs=r.get("stem", stem, "width", r.positive_int),
        stage_chs=tuple(r.get(f"stages[{i}]", st, "width", r.positive_int) for i, st in enumerate(stages)),
        base_depths=tuple(r.get(f"stages[{i}]", st, "base_depth", r.positive_int) for i, st in enumerate(stages)),
        stage_strides=tuple(r.get(f"stages[{i}]", st, "stride", lambda f, v: r.choice(f, v, (1, 2)))
                            for i, st in enumerate(stages)),
        width_choices=r.get("choices", choices, "w", lambda f, v: r.numbers(f, v, r.positive_number)),
        expand_choices=r.get("choices", choices, "e", lambda f, v: r.numbers(f, v, r.positive_number)),
        depth_choices=r.get("choices", choices, "d", lambda f, v: r.numbers(f, v, _non_negative_int(r))),
        n_classes=r.get(top, doc, "n_classes", r.positive_int, 1000),
        act=r.get(top, doc, "act", r.act, "relu"),
        resolutions=r.get(top, doc, "resolutions", r.resolutions),
    )
