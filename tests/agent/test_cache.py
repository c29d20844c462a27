"""The content-addressed model cache."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from agent.cache import ModelCache, sha256_hex


def test_put_get_and_lru_eviction(tmp_path: Path) -> None:
    cache = ModelCache(tmp_path, limit_bytes=250)
    a, a_path = cache.put(b"a" * 100)
    b, b_path = cache.put(b"b" * 100)
    assert a == sha256_hex(b"a" * 100)
    # Recency is the file's mtime: date both back (b newer than a) instead of waiting for the clock.
    now = time.time()
    os.utime(a_path, (now - 20, now - 20))
    os.utime(b_path, (now - 10, now - 10))
    cache = ModelCache(tmp_path, limit_bytes=250)
    assert cache.get(a) is not None  # a is now more recent than b
    c, _ = cache.put(b"c" * 100)
    assert cache.has(a) and cache.has(c) and not cache.has(b)
    assert cache.total_bytes == 200
    with pytest.raises(ValueError, match="cache limit"):
        cache.put(b"x" * 300)


def test_reopen_keeps_blobs(tmp_path: Path) -> None:
    sha, path = ModelCache(tmp_path, 1000).put(b"model")
    again = ModelCache(tmp_path, 1000)
    assert again.has(sha) and again.get(sha) == path
    assert not any(p.name.startswith(".incoming") for p in tmp_path.rglob("*"))
    os.remove(path)
    assert again.get(sha) is None  # removed behind its back: forgotten, not an error
