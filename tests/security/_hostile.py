"""Hostile inputs the security tests build for themselves."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import torch

__all__ = ["Payload", "hostile_torch_file", "payload_is_live"]


class Payload:
    """An object whose unpickling runs a shell command that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def hostile_torch_file(path: Path, marker: Path, blob: dict | None = None) -> Path:
    """A torch file that looks like ``blob`` but runs ``touch marker`` when unpickled.

    The payload sits beside real tensors, so a loader that trusts the file's pickle runs it.
    """
    doc = dict(blob or {"state_dict": {"w": torch.zeros(2)}})
    doc["payload"] = Payload(marker)
    torch.save(doc, path)
    return path


def payload_is_live(marker: Path) -> bool:
    """Whether the payload really runs when unpickled (so a refusal proves something)."""
    pickle.loads(pickle.dumps(Payload(marker)))
    live = marker.exists()
    marker.unlink(missing_ok=True)
    return live
