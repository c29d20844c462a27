"""Model bytes for the agents: the profiler's exporters run ahead in a process pool into the content-addressed
artifact cache (:class:`CachedExports`), or a caller's export function for synthetic runtimes (:class:`FnExports`)."""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import threading
import time
from collections.abc import Callable, Sequence

from profiler.artifacts import ArtifactCache
from profiler.export import export_pool
from space import Block

from .settings import ProfileSettings, default_cache_dir

__all__ = ["CachedExports", "ExportError", "ExportFn", "Exports", "FnExports"]

ExportFn = Callable[[Block, str, int], bytes]


class ExportError(Exception):
    """A block could not be exported at the profile's format and precision; that block fails, the profile goes on."""


def _export_to_cache(cache: ArtifactCache, block: Block, fmt: str) -> tuple[str, float]:
    """Pool task: export ``block`` into the cache; (sha256, seconds spent)."""
    start = time.perf_counter()
    sha, _ = cache.get_or_build(block, fmt)
    return sha, time.perf_counter() - start


class CachedExports:
    """The profiler's exporters, run ahead in a process pool into the content-addressed artifact cache;
    agents ask for a block's hash, and its bytes only when they upload them."""

    def __init__(self, settings: ProfileSettings, blocks: Sequence[Block]) -> None:
        self.fmt = settings.model_format
        cache_dir = settings.cache_dir or default_cache_dir()
        self.cache = ArtifactCache(cache_dir, seed=settings.seed, precision=settings.precision,
                                   calib_dir=settings.calib_dir)
        self.export_s = 0.0
        self.exported = 0
        self._lock = threading.Lock()
        self._futures: dict[Block, cf.Future[tuple[str, float]]] = {}
        self._pool: cf.ProcessPoolExecutor | None = None
        if blocks:
            self._pool = export_pool(settings.export_workers)
            for block in blocks:
                if self.cache.lookup(block, self.fmt) is None:
                    self._futures[block] = self._pool.submit(_export_to_cache, self.cache, block, self.fmt)

    def sha(self, block: Block) -> str:
        """sha256 of ``block``'s model, waiting for its export if it is still running."""
        future = self._futures.get(block)
        if future is not None:
            try:
                _, seconds = future.result()
            except Exception as err:  # the pool re-raises the export's own error here
                with self._lock:
                    self._futures.pop(block, None)
                raise ExportError(self._export_failure(err)) from err
            with self._lock:
                if self._futures.pop(block, None) is not None:
                    self.export_s += seconds
                    self.exported += 1
        sha = self.cache.lookup(block, self.fmt)
        if sha is not None:
            return sha
        try:
            return self.cache.get_or_build(block, self.fmt)[0]
        except Exception as err:  # a block this format and precision cannot be exported as
            raise ExportError(self._export_failure(err)) from err

    def _export_failure(self, err: Exception) -> str:
        return f"export as {self.fmt} {self.cache.precision} failed: {type(err).__name__}: {err}"

    def data(self, block: Block, sha: str) -> bytes:
        """The model bytes of ``block`` (whose hash :meth:`sha` gave)."""
        try:
            return self.cache.read_blob(sha)
        except KeyError:  # removed or corrupted since: build it again
            return self.cache.get_or_build(block, self.fmt)[1]

    def size(self, sha: str) -> int:
        """Bytes of blob ``sha`` (for the upload-saved tally), without reading it."""
        return self.cache.blob_path(sha).stat().st_size

    def ready_hashes(self) -> dict[str, Block]:
        """sha256 → block for exports that are finished (used to batch HasModels)."""
        out = {}
        with self._lock:
            pending = list(self._futures.items())
        for block, future in pending:
            if future.done() and future.exception() is None:
                out[future.result()[0]] = block
        return out

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)


class FnExports:
    """A caller's export function (block, format, seed) -> bytes, e.g. for synthetic runtimes; each block's
    bytes are built once and kept in memory."""

    def __init__(self, settings: ProfileSettings, export_fn: ExportFn) -> None:
        self.fmt = settings.model_format
        self.seed = settings.seed
        self.export_fn = export_fn
        self.export_s = 0.0
        self.exported = 0
        self._lock = threading.Lock()
        self._built: dict[Block, tuple[str, bytes]] = {}
        self._sizes: dict[str, int] = {}

    def _build(self, block: Block) -> tuple[str, bytes]:
        with self._lock:
            hit = self._built.get(block)
        if hit is None:
            data = self.export_fn(block, self.fmt, self.seed)
            hit = (hashlib.sha256(data).hexdigest(), data)
            with self._lock:
                self._built[block] = hit
                self._sizes[hit[0]] = len(data)
        return hit

    def sha(self, block: Block) -> str:
        return self._build(block)[0]

    def data(self, block: Block, sha: str) -> bytes:
        return self._build(block)[1]

    def size(self, sha: str) -> int:
        return self._sizes[sha]

    def ready_hashes(self) -> dict[str, Block]:
        return {}  # built on demand: nothing is ready ahead of its job

    def close(self) -> None:
        pass


Exports = CachedExports | FnExports
