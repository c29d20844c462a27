"""A content-addressed on-disk cache of exported block models, shared by every device of a profile.

Layout under the cache directory::

    blobs/<sha[:2]>/<sha>       model bytes, named by the sha256 of those bytes
    index/<key[:2]>/<key>       the blob's sha256 (hex), named by the artifact key

The artifact key is the sha256 of the block key, the format, the exporter version (which names the precision
and its recipe), the weight seed and the int8 calibration folder, so a new exporter version never serves stale bytes. Every file is written to a temporary file in its final folder
and moved into place with ``os.replace``, so concurrent processes building the same artifact never see a
partial file; the last writer wins and all of them wrote valid bytes. A blob whose bytes no longer match
its name is treated as missing and rebuilt.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path

from space import Block

from .export import check_format, export_block, exporter_version

__all__ = ["ArtifactCache", "artifact_key", "sha256_hex"]

logger = logging.getLogger(__name__)

_HEX_LEN = 64


def sha256_hex(data: bytes) -> str:
    """Hex sha256 of ``data``: the name a blob has in the cache and in an agent's model cache."""
    return hashlib.sha256(data).hexdigest()


def artifact_key(block: Block, fmt: str, seed: int = 0, precision: str = "fp32", calib_dir: str | None = None) -> str:
    """Hex sha256 of (block key, format, exporter version, seed[, calibration folder]): the index key of one export.

    Raises:
        ValueError: ``fmt`` or ``precision`` is unknown.
    """
    parts = [block.key, check_format(fmt), exporter_version(fmt, precision), str(seed)]
    if calib_dir is not None and precision == "int8":
        parts.append(os.path.abspath(calib_dir))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ArtifactCache:
    """Exported models on disk, addressed by content and indexed by (block, format, exporter version, seed).

    Args:
        cache_dir: Root folder; created on first write.
        seed: Weight seed of the models this cache builds.
        precision: Precision of the models this cache builds (``profiler.quantize.PRECISIONS``).
        calib_dir: Image folder for int8 calibration (None: seeded inputs).
    """

    def __init__(self, cache_dir: str | os.PathLike[str], seed: int = 0, precision: str = "fp32",
                 calib_dir: str | None = None) -> None:
        self.cache_dir = cache_dir
        self.seed = seed
        self.precision = precision
        self.calib_dir = calib_dir

    def _key(self, block: Block, fmt: str) -> str:
        return artifact_key(block, fmt, self.seed, self.precision, self.calib_dir)

    # -- paths ----------------------------------------------------------------------------
    def blob_path(self, sha: str) -> Path:
        """Where the blob with hex sha256 ``sha`` lives (whether or not it exists)."""
        if len(sha) != _HEX_LEN or any(c not in "0123456789abcdef" for c in sha):
            raise ValueError(f"sha must be 64 lowercase hex digits, got {sha!r}")
        return Path(self.cache_dir) / "blobs" / sha[:2] / sha

    def _index_path(self, key: str) -> Path:
        return Path(self.cache_dir) / "index" / key[:2] / key

    # -- blobs ----------------------------------------------------------------------------
    def has_blob(self, sha: str) -> bool:
        """Whether a blob named ``sha`` is stored."""
        return self.blob_path(sha).is_file()

    def read_blob(self, sha: str) -> bytes:
        """The bytes of blob ``sha``, verified against their name.

        Raises:
            KeyError: No intact blob named ``sha`` is stored.
        """
        try:
            data = self.blob_path(sha).read_bytes()
        except FileNotFoundError:
            raise KeyError(f"no blob {sha} in artifact cache {self.cache_dir}") from None
        if sha256_hex(data) != sha:
            raise KeyError(f"blob {sha} in artifact cache {self.cache_dir} is corrupt")
        return data

    def put_blob(self, data: bytes) -> str:
        """Store ``data`` under its sha256 and return the hex digest."""
        sha = sha256_hex(data)
        path = self.blob_path(sha)
        if not path.is_file():
            _write_atomic(path, data)
        return sha

    # -- artifacts ------------------------------------------------------------------------
    def lookup(self, block: Block, fmt: str) -> str | None:
        """The sha256 of the cached export of ``block`` in ``fmt``, or None when it is not cached."""
        try:
            sha = self._index_path(self._key(block, fmt)).read_text().strip()
        except FileNotFoundError:
            return None
        if len(sha) != _HEX_LEN or not self.has_blob(sha):
            return None
        return sha

    def get(self, block: Block, fmt: str) -> tuple[str, bytes] | None:
        """(sha256, bytes) of the cached export of ``block`` in ``fmt``, or None on a miss."""
        sha = self.lookup(block, fmt)
        if sha is None:
            return None
        try:
            return sha, self.read_blob(sha)
        except KeyError:
            logger.warning("artifact cache: blob %s for %s (%s) is corrupt; rebuilding", sha, block.key, fmt)
            return None

    def get_or_build(self, block: Block, fmt: str) -> tuple[str, bytes]:
        """(sha256, bytes) of ``block`` exported to ``fmt``, from the cache or built and stored.

        Args:
            block: The block.
            fmt: One of :data:`profiler.export.FORMATS`.

        Returns:
            The hex sha256 of the model bytes and the bytes.

        Raises:
            ValueError: ``fmt`` is unknown.
        """
        hit = self.get(block, fmt)
        if hit is not None:
            logger.debug("artifact cache hit: %s (%s)", block.key, fmt)
            return hit
        data = export_block(block, fmt, seed=self.seed, precision=self.precision, calib_dir=self.calib_dir)
        sha = sha256_hex(data)
        path = self.blob_path(sha)
        if not path.is_file() or sha256_hex(path.read_bytes()) != sha:
            _write_atomic(path, data)
        _write_atomic(self._index_path(self._key(block, fmt)), sha.encode())
        logger.debug("artifact cache miss: built %s (%s %s), %d bytes, sha %s", block.key, fmt, self.precision,
                     len(data), sha[:12])
        return sha, data
