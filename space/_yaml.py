"""Bounded YAML reading for the files a user hands lutnas (space files here, LUT files in ``lut``).

A YAML file is bounded before anything is built from it: at most ``max_bytes`` are read, and one pass
over the parser's events (which builds no values) refuses anchors and aliases (``&name``/``*name``:
a few hundred bytes of nested aliases name millions of values) and nesting deeper than
``MAX_YAML_DEPTH``. Only then does PyYAML's safe loader build the document. Error messages are one
line and quote at most ``MAX_QUOTED_CHARS`` of anything from the file.

PyYAML is imported inside the functions: ``space`` loads on boards without it, and only a YAML file
needs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from space.bounds import MAX_JSON_DEPTH, MAX_QUOTED_CHARS

__all__ = ["MAX_YAML_DEPTH", "YamlFileError", "load_yaml", "read_yaml_text", "safe_loader"]

# Nothing lutnas reads nests deeper than a few levels (a LUT file 2, a space file 4); JSON's cap holds for YAML.
MAX_YAML_DEPTH = MAX_JSON_DEPTH


class YamlFileError(ValueError):
    """A YAML file that cannot be read, is too large, is not YAML, or uses what a lutnas file never needs.

    Attributes:
        line: the 1-based line of the problem, or None where unknown.
    """

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


def safe_loader() -> type:
    """PyYAML's safe loader, the C one where libyaml is built in (the same safety, ~10x faster).

    Raises:
        ModuleNotFoundError: PyYAML is not installed.
    """
    import yaml

    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml_text(path: str | Path, max_bytes: int, label: str, what: str) -> str:
    """The text of a YAML file of at most ``max_bytes`` (no more is read).

    Args:
        path: the file.
        max_bytes: the most it may hold.
        label: how messages name the file (its path, ``space file x.yaml``).
        what: what the file is, for the size message (``a LUT yaml file``).

    Raises:
        YamlFileError: unreadable, larger than ``max_bytes``, or not UTF-8 text.
    """
    try:
        with Path(path).open("rb") as fh:
            raw = fh.read(max_bytes + 1)
    except OSError as err:
        raise YamlFileError(f"{label}: cannot read ({err.strerror})") from err
    if len(raw) > max_bytes:
        raise YamlFileError(f"{label}: larger than {max_bytes} bytes, the most {what} may hold")
    try:
        return raw.decode()
    except UnicodeDecodeError as err:
        raise YamlFileError(f"{label}: not a text file ({err.reason})") from err


def load_yaml(text: str, label: str, what: str) -> Any:
    """The document in ``text``, built by the safe loader once the events pass finds nothing to refuse.

    Args:
        text: the YAML text.
        label: how messages name the file.
        what: what the file is, for the anchor message (``a LUT file``, ``a space file``).

    Raises:
        YamlFileError: ``<label>: line N: ...`` for anchors or aliases, nesting deeper than ``MAX_YAML_DEPTH``,
            or a YAML syntax error.
        ModuleNotFoundError: PyYAML is not installed.
    """
    import yaml

    _check_events(text, label, what)
    try:
        return yaml.load(text, Loader=safe_loader())  # noqa: S506 - SafeLoader/CSafeLoader only
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        where = f"line {line}" if line is not None else "unknown line"
        raise YamlFileError(f"{label}: {where}: YAML syntax error ({_cut(problem)})", line) from err
    except RecursionError as err:  # the pure-Python loader recurses per level; the events pass bounds it first
        raise YamlFileError(f"{label}: nested deeper than {MAX_YAML_DEPTH} levels") from err


def _check_events(text: str, label: str, what: str) -> None:
    """Stop at the first anchor or alias, or at nesting deeper than ``MAX_YAML_DEPTH``, reading parser events only.

    A syntax error ends the pass quietly: the loader reports it, with its line.
    """
    import yaml

    depth = 0
    try:
        for event in yaml.parse(text, Loader=safe_loader()):
            line = event.start_mark.line + 1
            if getattr(event, "anchor", None) is not None:  # set on anchored nodes and on aliases
                raise YamlFileError(f"{label}: line {line}: YAML anchors and aliases (&name, *name) are not "
                                    f"allowed in {what}", line)
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_YAML_DEPTH:
                    raise YamlFileError(f"{label}: line {line}: nested deeper than {MAX_YAML_DEPTH} levels", line)
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.YAMLError:
        return


def _cut(text: str, limit: int = MAX_QUOTED_CHARS) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis (PyYAML's problem texts quote the file)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
