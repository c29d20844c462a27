"""The agent's log shows text from outside literally: job ids, option values, model and op names in errors.

A control character in such text (ESC, BEL, a newline) would reach the operator's terminal or journal as
a command or as a forged log line; here each is written as a Python-style escape (``\\x1b``, ``\\x07``,
``\\n``). Ordinary unicode stays as it is.
"""

from __future__ import annotations

import logging
import re
import unicodedata

__all__ = ["EscapingFormatter", "escape_controls"]

# Not shown as a glyph: C0/C1 controls and DEL (Cc), format characters such as bidi overrides (Cf),
# lone surrogates from undecodable bytes (Cs), line and paragraph separators (Zl, Zp).
_HIDDEN = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_NOT_PRINTABLE_ASCII = re.compile(r"[^ -~]")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char.isprintable() or unicodedata.category(char) not in _HIDDEN:
        return char
    if char in _SHORT:
        return _SHORT[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def escape_controls(text: object) -> str:
    """``str(text)`` with control, format and separator characters written as escapes (ESC as ``\\x1b``)."""
    value = str(text)
    return value if value.isprintable() else _NOT_PRINTABLE_ASCII.sub(_escape, value)


class EscapingFormatter(logging.Formatter):
    """A formatter whose message part is escaped; a traceback keeps its line breaks, each line escaped."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        record.message = escape_controls(record.message)
        return super().formatMessage(record)

    def formatException(self, ei) -> str:  # noqa: N802 - logging's name
        return "\n".join(escape_controls(line) for line in super().formatException(ei).split("\n"))

    def formatStack(self, stack_info: str) -> str:  # noqa: N802 - logging's name
        return "\n".join(escape_controls(line) for line in stack_info.split("\n"))
