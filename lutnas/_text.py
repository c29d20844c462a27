"""The one way the CLI shows text it did not write itself: device names, agent names and hostnames, op
names, block keys and other file contents, exception messages.

Such text is shown literally: ``[/x]`` or ``[link=...]`` in a name is never read as rich markup (a stray closing
tag would crash the command), and control characters are written as escapes (``\\x1b``, ``\\u202e``) so a name
can neither move the cursor, retitle the terminal nor reorder what is shown around it. Ordinary unicode
('é', CJK, emoji) stays as it is.
"""

from __future__ import annotations

from rich.text import Text

# One escaping rule for the agent's log and the CLI's output: the agent may not import lutnas, so it lives there.
from agent._logtext import EscapingFormatter, escape_controls

__all__ = ["EscapingFormatter", "escape_controls", "literal"]


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
