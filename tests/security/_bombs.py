"""Small files that expand into huge ones: a YAML alias bomb and a zip bomb, built in well under a second."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

__all__ = ["yaml_alias_bomb", "zip_bomb"]

_CHUNK = 64 << 20


def yaml_alias_bomb(path: Path, key: str, fan: int = 10, levels: int = 7) -> Path:
    """A "billion laughs" LUT file: ``key``'s value names ``fan ** levels`` strings through nested aliases."""
    parts = [f"&l0 [{', '.join(['lol'] * fan)}]"]
    parts += [f"&l{i} [{', '.join([f'*l{i - 1}'] * fan)}]" for i in range(1, levels)]
    path.write_text(f"{key}: [{', '.join(parts)}]\n")
    return path


def zip_bomb(path: Path, inflated_bytes: int, member: str = "archive/data.pkl",
             others: dict[str, bytes] | None = None) -> Path:
    """A zip whose deflated ``member`` inflates to ``inflated_bytes`` zero bytes (< 4 GiB), after ``others`` (stored).

    Deflating that much takes seconds, so the stream is one fully flushed 64 MiB block repeated: after
    a full flush the compressor starts afresh and writes the same bytes for the same input.
    """
    if inflated_bytes % _CHUNK or not 0 < inflated_bytes < 1 << 32:
        raise ValueError(f"inflated_bytes must be a multiple of 64 MiB below 4 GiB, got {inflated_bytes}")
    zeros = bytes(_CHUNK)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = deflate.compress(zeros) + deflate.flush(zlib.Z_FULL_FLUSH)
    n = inflated_bytes // _CHUNK
    crc = 0
    for _ in range(n):
        crc = zlib.crc32(zeros, crc)
    entries = [(name, 0, zlib.crc32(data), data, len(data)) for name, data in (others or {}).items()]
    entries.append((member, 8, crc, block * n + deflate.flush(zlib.Z_FINISH), inflated_bytes))
    body, central = b"", b""
    for name, method, crc, data, size in entries:
        # Signature, versions, flags, method (0 stored, 8 deflate), time, date, CRC, compressed and
        # inflated sizes, name and extra lengths (APPNOTE.TXT 4.3.7 and 4.3.12).
        raw = name.encode()
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0x21, crc, len(data), size,
                               len(raw), 0, 0, 0, 0, 0, len(body)) + raw
        body += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0x21, crc, len(data), size, len(raw), 0)
        body += raw + data
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), len(central), len(body), 0)
    path.write_bytes(body + central + end)
    return path
