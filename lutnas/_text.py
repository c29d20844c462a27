"""The one way the CLI shows text it did not write itself: device names, agent names and hostnames, op
names, block keys and other file contents, exception messages.

Such text is shown literally: ``[/x]`` or ``[link=...]`` in a name is never read as rich markup (a stray closing
tag would crash the command), and control characters are written as escapes (``\\x1b``, ``\\u202e``) so a name
can neither move the cursor, retitle the terminal nor reorder what is shown around it. Ordinary unicode
('é', CJK, emoji) stays as it is.
"""

from __future__ import annotations

import logging
import re
import unicodedata

from rich.text import Text

__all__ = ["EscapingFormatter", "escape_controls", "literal"]

# Categories a terminal does not show as a glyph: C0/C1 controls and DEL (Cc), format characters such as the
# bidi overrides U+202E and U+2066 or zero-width spaces (Cf), lone surrogates left by undecodable bytes (Cs),
# and the line and paragraph separators (Zl, Zp). Other spaces, private-use and unassigned characters print.
_HIDDEN = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Everything but printable ASCII is a candidate; the category decides (most candidates are letters).
_CANDIDATE = re.compile(r"[^ -~]")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char.isprintable() or unicodedata.category(char) not in _HIDDEN:
        return char
    if char in _SHORT:
        return _SHORT[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def escape_controls(text: object) -> str:
    """``str(text)`` with every control, format and separator character written as a Python-style escape.

    Args:
        text: Anything; it is turned into a string first.

    Returns:
        The string with ESC as ``\\x1b``, BEL as ``\\x07``, a newline as ``\\n``, U+202E as ``\\u202e``, and so on;
        one line that a terminal shows as it reads.
    """
    value = str(text)
    return value if value.isprintable() else _CANDIDATE.sub(_escape, value)


def literal(*parts: object) -> Text:
    """A rich ``Text`` showing ``parts`` one after the other, literally (no markup), controls escaped.

    Args:
        *parts: Each a value (shown as ``str(value)``), a ``(value, style)`` pair to show it in a rich style
            such as ``"yellow"``, or a ``Text`` made by this function (kept as it is).

    Returns:
        The text, for ``console.print``, table cells, headers and titles, and progress or status lines.

    Example:
        ``literal(("warning:", "yellow"), " ", message)``
    """
    out = Text()
    for part in parts:
        if isinstance(part, Text):
            out.append(part)
        elif isinstance(part, tuple) and len(part) == 2 and isinstance(part[1], str):
            out.append(escape_controls(part[0]), style=part[1] or None)
        else:
            out.append(escape_controls(part))
    return out


class EscapingFormatter(logging.Formatter):
    """A log formatter whose lines show names and messages literally: controls in the message escaped; a
    traceback (``--verbose``) keeps its line breaks, each line escaped."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        record.message = escape_controls(record.message)
        return super().formatMessage(record)

    def formatException(self, ei) -> str:  # noqa: N802 - logging's name
        return "\n".join(escape_controls(line) for line in super().formatException(ei).split("\n"))

    def formatStack(self, stack_info: str) -> str:  # noqa: N802 - logging's name
        return "\n".join(escape_controls(line) for line in stack_info.split("\n"))
