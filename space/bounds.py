"""Bounds on what a file or text from outside may cost before it is expanded.

Everything here reads only sizes and structure, never the expanded content: the nesting depth of
JSON text (Python's parser recurses once per level, and a few thousand levels end in a
RecursionError), the inflated sizes of a zip archive's members as its central directory declares
them (torch's reader allocates each member's declared size and inflates it whole), and the length
of a value quoted in an error message. Standard library only: ``search`` and ``supernet`` both
check their torch files here, and neither may import the other.
"""

from __future__ import annotations

import json
import re
import reprlib
import zipfile
from pathlib import Path
from typing import Any

__all__ = [
    "MAX_ARCHIVE_INFLATION",
    "MAX_ARCHIVE_MEMBER_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_QUOTED_CHARS",
    "check_archive",
    "loads_json",
    "quoted",
]

# OFA's net.config nests 4 levels and an arch dict 2; nothing lutnas reads needs more than a few.
MAX_JSON_DEPTH = 64
# One member of a torch archive is one tensor's storage (or the pickle naming them). The largest seen:
# 5.1 MB (the 1280x1000 classifier of OFA's MobileNetV3 w1.0); ResNet50's 2048x1000 classifier is 8 MB.
MAX_ARCHIVE_MEMBER_BYTES = 1 << 30
# torch.save stores members uncompressed (inflated / on-disk size 1.0 for every checkpoint and predictor
# measured); 16x leaves room for a file re-packed with deflate. The floor lets small files of mostly
# zeros through: a file may always expand to 64 MiB.
MAX_ARCHIVE_INFLATION = 16
_ARCHIVE_FLOOR_BYTES = 64 << 20
# Error messages quote at most this much of a value from a file.
MAX_QUOTED_CHARS = 200

_ZIP_MAGIC = b"PK\x03\x04"  # what torch.load looks for to read a file as an archive
_JSON_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')  # strings (skipped whole) and brackets
_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = MAX_QUOTED_CHARS
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 8
_REPR.maxlevel = 3


def quoted(value: Any, limit: int = MAX_QUOTED_CHARS) -> str:
    """``repr(value)`` for an error message, at most ``limit`` characters (cut with an ellipsis).

    Containers are summarized (reprlib) so a huge value is never rendered whole first.
    """
    text = _REPR.repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def loads_json(text: str) -> Any:
    """``json.loads(text)`` after checking that arrays and objects nest at most ``MAX_JSON_DEPTH`` deep.

    Raises:
        json.JSONDecodeError: not JSON, or nested deeper (its position is the first bracket too deep).
    """
    depth = 0
    for match in _JSON_TOKENS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise json.JSONDecodeError(f"arrays and objects nested deeper than {MAX_JSON_DEPTH} levels",
                                           text, match.start())
        elif token in "]}":
            depth -= 1
    return json.loads(text)


def check_archive(path: str | Path) -> None:
    """Refuse a zip archive (as torch writes) whose members would inflate past the caps.

    Reads the central directory only; nothing is inflated. Files that are not zip archives pass.

    Raises:
        ValueError: a member declares more than ``MAX_ARCHIVE_MEMBER_BYTES``, all members together more
            than ``MAX_ARCHIVE_INFLATION`` times the file's size (or 64 MiB), or the directory is unreadable.
    """
    path = Path(path)
    with path.open("rb") as fh:
        if fh.read(len(_ZIP_MAGIC)) != _ZIP_MAGIC:
            return
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, NotImplementedError) as err:
        raise ValueError(f"{path}: not a readable zip archive ({err})") from err
    for info in members:
        if info.file_size > MAX_ARCHIVE_MEMBER_BYTES:
            raise ValueError(f"{path}: member {quoted(info.filename)} would inflate to {info.file_size} bytes, "
                             f"more than the {MAX_ARCHIVE_MEMBER_BYTES} one member may hold")
    total = sum(info.file_size for info in members)
    budget = max(MAX_ARCHIVE_INFLATION * path.stat().st_size, _ARCHIVE_FLOOR_BYTES)
    if total > budget:
        raise ValueError(f"{path}: its members would inflate to {total} bytes, more than {budget} "
                         f"({MAX_ARCHIVE_INFLATION}x the file's size, at least {_ARCHIVE_FLOOR_BYTES})")
