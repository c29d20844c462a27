"""A content-addressed, size-capped (LRU) store of model blobs on disk.

Blobs live at ``<root>/<sha[:2]>/<sha>``. Recency is the file's mtime, touched on every use, so
the order survives restarts. Writes go to a temporary file and are renamed into place, so a
crash never leaves a truncated blob under a valid hash.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import threading
from pathlib import Path

__all__ = ["ModelCache", "is_sha256", "sha256_hex"]

log = logging.getLogger(__name__)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def is_sha256(text: str) -> bool:
    """Whether ``text`` is a lowercase hex sha256 digest."""
    return bool(_SHA256.match(text))


def sha256_hex(data: bytes) -> str:
    """The lowercase hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


class ModelCache:
    """Model blobs by sha256, evicting the least recently used above ``limit_bytes``.

    Args:
        root: Directory to keep blobs in (created).
        limit_bytes: Size cap of all blobs together.
    """

    def __init__(self, root: Path, limit_bytes: int) -> None:
        self.root = Path(root)
        self.limit_bytes = int(limit_bytes)
        self._lock = threading.Lock()
        self.root.mkdir(parents=True, exist_ok=True)
        self._sizes: dict[str, int] = {}
        self._used: dict[str, float] = {}
        for path in self.root.glob("??/*"):
            if is_sha256(path.name):
                st = path.stat()
                self._sizes[path.name] = st.st_size
                self._used[path.name] = st.st_mtime
        self._evict()

    def _path(self, sha: str) -> Path:
        return self.root / sha[:2] / sha

    @property
    def total_bytes(self) -> int:
        """Bytes held now."""
        with self._lock:
            return sum(self._sizes.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._sizes)

    def has(self, sha: str) -> bool:
        """Whether the blob is held (does not count as a use)."""
        with self._lock:
            if sha not in self._sizes:
                return False
            if not self._path(sha).is_file():
                # Removed behind our back: forget it, so the host uploads it again.
                self._sizes.pop(sha)
                self._used.pop(sha, None)
                return False
            return True

    def get(self, sha: str) -> Path | None:
        """The blob's path, marking it used; None when absent."""
        with self._lock:
            if sha not in self._sizes:
                return None
            path = self._path(sha)
            self._touch(sha, path)
            return path if sha in self._sizes else None

    def put(self, data: bytes) -> tuple[str, Path]:
        """Store ``data`` (once) and return its sha256 and path.

        Raises:
            ValueError: the blob alone exceeds the cache's size cap.
        """
        if len(data) > self.limit_bytes:
            raise ValueError(f"model of {len(data)} bytes exceeds the agent's cache limit of {self.limit_bytes} bytes")
        sha = sha256_hex(data)
        path = self._path(sha)
        with self._lock:
            if sha in self._sizes:
                self._touch(sha, path)
                return sha, path
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".incoming-")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                os.replace(tmp, path)
            except OSError:
                Path(tmp).unlink(missing_ok=True)
                raise
            self._sizes[sha] = len(data)
            self._touch(sha, path)
            self._evict(keep=sha)
        return sha, path

    def _touch(self, sha: str, path: Path) -> None:
        try:
            os.utime(path)
            self._used[sha] = path.stat().st_mtime
        except OSError:
            # Removed behind our back: forget it, the host will upload it again.
            self._sizes.pop(sha, None)
            self._used.pop(sha, None)

    def _evict(self, keep: str | None = None) -> None:
        total = sum(self._sizes.values())
        for sha in sorted(self._used, key=self._used.__getitem__):
            if total <= self.limit_bytes:
                break
            if sha == keep:
                continue
            self._path(sha).unlink(missing_ok=True)
            total -= self._sizes.pop(sha)
            self._used.pop(sha)
            log.info("evicted model %s from the cache", sha[:12])
