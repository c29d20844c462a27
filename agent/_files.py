"""Writing a secret's file (a token, a TLS key): created exclusively, or replaced by a rename, never through a symlink."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["create_file", "replace_file"]


def create_file(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` holding ``data`` with ``mode`` whatever the umask; refuse any existing entry there,
    a symlink included.

    Raises:
        FileExistsError: something is at ``path`` already.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags, mode)
    with os.fdopen(fd, "wb") as fh:
        os.fchmod(fh.fileno(), mode)  # whatever the umask
        fh.write(data)


def replace_file(path: Path, data: bytes, mode: int) -> None:
    """Put ``data`` at ``path`` via a new file beside it and a rename: a symlink there is replaced, never followed."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # O_EXCL, mode 0600
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), mode)
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
