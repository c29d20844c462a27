"""Safe YAML loading with line numbers for error messages (never ``yaml.load`` with a full loader).

A LUT file is bounded before it is parsed (:mod:`space._yaml`, shared with space files): at most
``MAX_YAML_BYTES``, no anchors or aliases (``&name``/``*name``), which a LUT never needs and which let
a few hundred bytes name millions of values, and no deep nesting.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from lut.errors import ImportFormatError
from space._yaml import YamlFileError, load_yaml, read_yaml_text, safe_loader

__all__ = ["MAX_YAML_BYTES", "load_yaml_mapping", "key_line", "SafeLoader", "SafeDumper"]

# The C loader/dumper when libyaml is available: same safety, ~10x faster.
SafeLoader = safe_loader()
SafeDumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

# The largest LUT files seen: nsganetv2's i7-8700K LUT, 0.55 MB; an OFA file per resolution, ~0.1 MB.
# 16 MiB is 30x that, and still small enough for PyYAML to hold in memory.
MAX_YAML_BYTES = 16 << 20


def load_yaml_mapping(path: Path) -> tuple[dict[str, Any], str]:
    """The top-level mapping of a YAML file and its text.

    Raises:
        ImportFormatError: unreadable file, too large, anchors or aliases, YAML syntax error (with its line),
            or not a mapping.
    """
    try:
        text = read_yaml_text(path, MAX_YAML_BYTES, str(path), "a LUT yaml file")
        fast = _parse_lut_layout(text)
        if fast is not None:
            return fast, text
        data = load_yaml(text, str(path), "a LUT file")
    except YamlFileError as err:
        raise ImportFormatError(str(err)) from err
    if not isinstance(data, dict):
        raise ImportFormatError(f"{path}: line 1: expected a mapping of block keys, got {type(data).__name__}")
    return data, text


def key_line(text: str, key: Any) -> int | None:
    """The 1-based line where top-level ``key`` is defined in ``text`` (None if not found)."""
    try:
        node = yaml.compose(text, Loader=SafeLoader)
    except yaml.YAMLError:
        return None
    if not isinstance(node, yaml.MappingNode):
        return None
    for key_node, _ in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == str(key):
            return key_node.start_mark.line + 1
    return None


# The layout every LUT file seen so far uses: "key:" then "  field: number" lines. Numbers are
# matched only in forms YAML 1.1 reads the same way (no octal, no underscores, signed exponents).
_KEY_LINE = re.compile(r"^([A-Za-z][\w:.\-]*):$")
_FIELD_LINE = re.compile(r"^  ([a-z_0-9]+): (\S+)$")
_INT = re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$")
_FLOAT = re.compile(r"^[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+][0-9]+)?$")


def _parse_lut_layout(text: str) -> dict[str, Any] | None:
    """Parse the common LUT layout ~20x faster than PyYAML; None when the text strays from it.

    Anything unusual (comments, flow style, quoting, special floats, odd numbers) returns None so
    the caller falls back to the YAML loader, which gives the same result or a located error.
    """
    out: dict[str, Any] = {}
    current: dict[str, Any] | None = None
    for line in text.splitlines():
        if m := _FIELD_LINE.match(line):
            if current is None:
                return None
            value = m.group(2)
            if _INT.match(value):
                current[m.group(1)] = int(value)
            elif _FLOAT.match(value):
                current[m.group(1)] = float(value)
            else:
                return None
        elif m := _KEY_LINE.match(line):
            if m.group(1) in out:
                return None  # let YAML decide what a repeated key means
            current = out[m.group(1)] = {}
        else:
            return None
    return out or None
