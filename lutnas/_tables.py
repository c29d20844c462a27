"""Summary tables that stay readable at 80 columns and in logs.

Rich shrinks columns to fit the console and then breaks header words mid-word ("devic e") or cuts cells
("bloc..."). Here a header wraps only between its words (each column is at least as wide as its longest
header word), and cells wrap between parts rather than being cut: nothing a user copies is lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.table import Table

from lutnas._text import literal

__all__ = ["block_key_cell", "summary_table"]


def summary_table(title: str, columns: Sequence[str], *, right: Sequence[str] = (), caption: str | None = None
                  ) -> Table:
    """A table whose headers wrap between words and whose cells fold rather than cut.

    Args:
        title: the title (outside text allowed: shown literally).
        columns: header texts (outside text allowed).
        right: headers of right-justified (numeric) columns.
        caption: a line under the table.
    """
    table = Table(title=literal(title), caption=caption)
    for col in columns:
        longest = max((len(word) for word in col.split()), default=1)
        table.add_column(literal(col), justify="right" if col in right else "left", overflow="fold",
                         min_width=longest)
    return table


def block_key_cell(key: str) -> Any:
    """A block key split into its fields with spaces, so a narrow column wraps it between fields."""
    return literal(key.replace("-", " "))
