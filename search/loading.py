"""Loading any predictor file: lutnas's own format or OFA's released weights (detected)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from search.errors import PredictorFormatError, SpaceMismatchError
from search.ofa_predictor import OFAAccuracyPredictor, ofa_predictor_from_blob
from search.predictor import PREDICTOR_KIND, LutnasPredictor, read_predictor_blob
from space import get_space

__all__ = ["AnyPredictor", "load_predictor", "predictor_and_label"]

AnyPredictor = LutnasPredictor | OFAAccuracyPredictor


def load_predictor(path: str | Path, space: str | None = None) -> AnyPredictor:
    """Load a lutnas predictor file or OFA's ``acc_predictor.pth``, whichever ``path`` holds.

    Args:
        path: the file.
        space: when given, the search space; a predictor for another space is refused.

    Raises:
        FileNotFoundError: no such file.
        PredictorFormatError: neither format.
        SpaceMismatchError: the predictor belongs to another space.
    """
    path = Path(path)
    # Both formats are plain tensors and containers: one safe read, never an unpickling fallback.
    blob: Any = read_predictor_blob(path)
    if isinstance(blob, Mapping) and blob.get("kind") == PREDICTOR_KIND:
        return LutnasPredictor.from_blob(blob, path, space)
    try:
        pred = ofa_predictor_from_blob(blob, path)
    except PredictorFormatError:
        raise PredictorFormatError(f"{path}: neither a lutnas predictor file nor OFA predictor weights") from None
    if space is not None and get_space(space).name != pred.space_name:
        raise SpaceMismatchError(
            f"OFA's predictor {path} is for space {pred.space_name!r}, but the search space is {get_space(space).name!r}"
        )
    return pred


def predictor_and_label(predictor: str | Path | Any) -> tuple[Any, str]:
    """A predictor given as a file (either format) or already loaded, and how messages name it.

    Raises:
        ValueError: no such file, or neither format.
    """
    if not isinstance(predictor, (str, Path)):
        return predictor, type(predictor).__name__
    if not Path(predictor).is_file():
        raise ValueError(f"predictor file not found: {predictor}")
    return load_predictor(predictor), str(predictor)
