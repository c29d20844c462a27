"""The content-addressed artifact cache: hits, misses, keys, corruption and concurrent writers."""

from __future__ import annotations

import hashlib
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

import profiler.artifacts as artifacts
from profiler.artifacts import ArtifactCache, artifact_key, sha256_hex
from profiler.export import export_block
from space import Block

BLOCK = Block.mbconv(7, 40, 40, 120, kernel=3, stride=1, skip=True, se=True, act="relu")
OTHER = Block.fixed("avgpool", 7, 960, 1, 960)


@pytest.fixture
def counting_export(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    calls: list[tuple[str, str]] = []

    def fake(block: Block, fmt: str, seed: int = 0, **precision: object) -> bytes:
        calls.append((block.key, fmt))
        return export_block(block, fmt, seed=seed, **precision)

    monkeypatch.setattr(artifacts, "export_block", fake)
    return calls


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_miss_then_hit(tmp_path: Path, counting_export: list, fmt: str) -> None:
    cache = ArtifactCache(tmp_path / "cache")
    assert cache.lookup(BLOCK, fmt) is None
    sha, data = cache.get_or_build(BLOCK, fmt)
    assert sha == hashlib.sha256(data).hexdigest() == sha256_hex(data)
    assert data == export_block(BLOCK, fmt)
    assert cache.blob_path(sha).read_bytes() == data
    assert cache.has_blob(sha) and cache.read_blob(sha) == data
    assert cache.get_or_build(BLOCK, fmt) == (sha, data)
    assert cache.lookup(BLOCK, fmt) == sha
    assert counting_export == [(BLOCK.key, fmt)]
    # A second cache object on the same folder (another process, another device) hits too.
    assert ArtifactCache(tmp_path / "cache").get_or_build(BLOCK, fmt) == (sha, data)
    assert len(counting_export) == 1


def test_key_covers_block_format_seed_and_exporter_version(monkeypatch: pytest.MonkeyPatch) -> None:
    keys = {
        artifact_key(BLOCK, "onnx"),
        artifact_key(BLOCK, "tflite"),
        artifact_key(BLOCK, "onnx", seed=1),
        artifact_key(OTHER, "onnx"),
    }
    assert len(keys) == 4
    before = artifact_key(BLOCK, "onnx")
    monkeypatch.setattr(artifacts, "exporter_version", lambda fmt, precision="fp32": "onnx-direct-999")
    assert artifact_key(BLOCK, "onnx") != before
    with pytest.raises(ValueError, match="model format must be one of onnx, tflite, pt2, got 'caffe'"):
        artifact_key(BLOCK, "caffe")


def test_seeds_do_not_share_artifacts(tmp_path: Path) -> None:
    a = ArtifactCache(tmp_path, seed=0).get_or_build(OTHER, "onnx")
    b = ArtifactCache(tmp_path, seed=1).get_or_build(BLOCK, "onnx")
    assert a[0] != b[0]
    assert ArtifactCache(tmp_path, seed=1).lookup(OTHER, "onnx") is None


def test_corrupt_blob_is_rebuilt(tmp_path: Path, counting_export: list) -> None:
    cache = ArtifactCache(tmp_path)
    sha, data = cache.get_or_build(BLOCK, "onnx")
    cache.blob_path(sha).write_bytes(data[:-10])
    with pytest.raises(KeyError, match="corrupt"):
        cache.read_blob(sha)
    assert cache.get_or_build(BLOCK, "onnx") == (sha, data)
    assert cache.read_blob(sha) == data
    assert len(counting_export) == 2


def test_put_blob_and_bad_sha(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path)
    sha = cache.put_blob(b"model bytes")
    assert cache.read_blob(sha) == b"model bytes"
    with pytest.raises(KeyError):
        cache.read_blob("0" * 64)
    with pytest.raises(ValueError, match="64 lowercase hex"):
        cache.blob_path("../etc/passwd")


def test_concurrent_processes_agree(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path / "shared")
    jobs = [(BLOCK, "onnx"), (BLOCK, "tflite")] * 3 + [(OTHER, "onnx")] * 2
    with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = list(pool.map(cache.get_or_build, *zip(*jobs)))
    by_job: dict[tuple[str, str], set[str]] = {}
    for (block, fmt), (sha, data) in zip(jobs, results):
        assert sha == sha256_hex(data)
        by_job.setdefault((block.key, fmt), set()).add(sha)
    assert all(len(shas) == 1 for shas in by_job.values())
    for (key, fmt), (sha,) in by_job.items():
        assert cache.read_blob(sha) == export_block(Block.from_key(key), fmt)
    assert not [p for p in (tmp_path / "shared").rglob("*") if p.name.endswith(".tmp")]


def test_precisions_are_cached_apart(tmp_path: Path, counting_export: list) -> None:
    fp32 = ArtifactCache(tmp_path / "cache").get_or_build(BLOCK, "onnx")
    int8 = ArtifactCache(tmp_path / "cache", precision="int8").get_or_build(BLOCK, "onnx")
    assert fp32[0] != int8[0]
    assert ArtifactCache(tmp_path / "cache", precision="int8").get_or_build(BLOCK, "onnx") == int8
    assert len(counting_export) == 2
