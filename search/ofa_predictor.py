"""OFA's accuracy predictor: its MLP, its 128-float encoding, and loading its released weights.

OFA's network is ``Sequential(Linear(128, 400), ReLU, Linear(400, 400), ReLU, Linear(400, 400),
ReLU, Linear(400, 1))`` (state-dict keys ``0.*, 2.*, 4.*, 6.*``) over :class:`OFAEncoding`,
and it outputs top-1 accuracy as a fraction. :class:`OFAAccuracyPredictor` wraps such a
network for the search: ``predict_batch`` returns percent, like every lutnas predictor.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn

from search.encoding import OFA_R_BINS, OFA_R_MIN, OFAEncoding
from search.errors import PredictorFormatError
from search.predictor import read_predictor_blob
from space import SearchSpace, SubnetBatch, get_space

__all__ = [
    "OFA_HIDDEN",
    "OFA_STATE_KEYS",
    "OFAAccuracyPredictor",
    "build_ofa_mlp",
    "is_ofa_state_dict",
    "load_ofa_predictor",
    "ofa_predictor_from_blob",
]

OFA_HIDDEN = 400  # width of OFA's three hidden layers
OFA_STATE_KEYS = ("0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias", "6.weight", "6.bias")
OFA_PREDICTOR_SPACE = "ofa-mbv3-w1.2"  # OFA's released predictor is for the w1.2 supernet


def build_ofa_mlp(n_features: int = 128, hidden: int = OFA_HIDDEN, n_layers: int = 3) -> nn.Sequential:
    """OFA's predictor network (untrained); layer indices match OFA's state-dict keys."""
    layers: list[nn.Module] = []
    width = n_features
    for _ in range(n_layers):
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


def is_ofa_state_dict(obj: object) -> bool:
    """True when ``obj`` is a state dict with exactly OFA's predictor keys and shapes."""
    if not isinstance(obj, Mapping) or set(obj) != set(OFA_STATE_KEYS):
        return False
    w0 = obj["0.weight"]
    return isinstance(w0, torch.Tensor) and w0.ndim == 2 and obj["6.weight"].shape[0] == 1


class OFAAccuracyPredictor:
    """An OFA-format predictor (OFA's encoding + MLP), ready for batched search.

    Args:
        state_dict: OFA's state dict (keys ``0.*, 2.*, 4.*, 6.*``).
        space: the search space the weights were trained for (OFA's release: w1.2).
        resolutions: the resolutions the predictor is trusted at (default: the space's
            resolutions inside the encoding's 112..239).
        source: where the weights came from, for messages.

    Attributes:
        space_name: the search space's name.
        encoding: ``"ofa"``.
        resolutions: see Args.
    """

    encoding = "ofa"

    def __init__(self, state_dict: Mapping[str, torch.Tensor], space: SearchSpace | str = OFA_PREDICTOR_SPACE,
                 resolutions: tuple[int, ...] | None = None, source: str = "") -> None:
        if not is_ofa_state_dict(state_dict):
            raise PredictorFormatError(
                f"not an OFA predictor state dict: expected keys {list(OFA_STATE_KEYS)}, got {sorted(state_dict)[:8]}"
            )
        self.space = get_space(space)
        self.space_name = self.space.name
        top = OFA_R_MIN + 16 * OFA_R_BINS - 1
        self.resolutions = tuple(resolutions) if resolutions is not None else tuple(
            r for r in self.space.resolutions if OFA_R_MIN <= r <= top)
        self.source = source
        self._encoder = OFAEncoding(self.space)
        n_in = state_dict["0.weight"].shape[1]
        if n_in != self._encoder.width:
            raise PredictorFormatError(f"OFA predictor expects {n_in} inputs, the OFA encoding has {self._encoder.width}")
        # Transposed float32 numpy copies: a 100-row forward pass is cheapest as plain numpy
        # matmuls (the search runs them with BLAS limited to one thread).
        self._weights = [
            (state_dict[f"{i}.weight"].detach().float().numpy().T.copy(),
             state_dict[f"{i}.bias"].detach().float().numpy().copy())
            for i in (0, 2, 4, 6)
        ]
        self._state = {k: v.detach().clone() for k, v in state_dict.items()}

    def module(self) -> nn.Sequential:
        """A torch copy of the network with the weights loaded."""
        net = build_ofa_mlp(int(self._weights[0][0].shape[0]), int(self._weights[0][0].shape[1]),
                            len(self._weights) - 1)
        net.load_state_dict(self._state)
        net.eval()
        return net

    def predict_fraction(self, features: np.ndarray) -> np.ndarray:
        """The network's raw output (accuracy as a fraction) for encoded subnets (n, 128)."""
        h = np.asarray(features, dtype=np.float32)
        last = len(self._weights) - 1
        for i, (w, b) in enumerate(self._weights):
            h = h @ w
            h += b
            if i < last:
                np.maximum(h, 0.0, out=h)
        return h[:, 0].astype(np.float64)

    def predict_batch(self, batch: SubnetBatch) -> np.ndarray:
        """Predicted top-1 accuracy (percent) of every subnet in ``batch``, shape (n,).

        Raises:
            ValueError: a resolution outside the bins OFA's network was trained with.
        """
        r = np.asarray(batch.r)
        top = OFA_R_MIN + 16 * OFA_R_BINS - 1
        if r.size and (r.min() < OFA_R_MIN or r.max() > top):
            bad = sorted({int(v) for v in r[(r < OFA_R_MIN) | (r > top)]})
            raise ValueError(f"resolutions {bad} are outside OFA's predictor range [{OFA_R_MIN}, {top}]")
        return 100.0 * self.predict_fraction(self._encoder(batch))

    def __repr__(self) -> str:
        return f"OFAAccuracyPredictor(space={self.space_name!r}, source={self.source!r})"


def load_ofa_predictor(path: str | Path, space: SearchSpace | str = OFA_PREDICTOR_SPACE) -> OFAAccuracyPredictor:
    """Load OFA's released predictor weights (e.g. ``acc_predictor.pth``).

    Args:
        path: the ``.pth`` file: a plain state dict, read with ``torch.load(weights_only=True)``
            (tensors and containers only; a file that needs more is refused, never unpickled).
        space: the space the weights were trained for (OFA's release: ``ofa-mbv3-w1.2``).

    Raises:
        FileNotFoundError: no such file.
        PredictorFormatError: the file is not OFA's predictor state dict.
    """
    return ofa_predictor_from_blob(read_predictor_blob(path), path, space)


def ofa_predictor_from_blob(
    blob: object, path: str | Path, space: SearchSpace | str = OFA_PREDICTOR_SPACE
) -> OFAAccuracyPredictor:
    """OFA's predictor from a safely loaded file's contents: a state dict, bare or under ``"state_dict"``.

    Raises:
        PredictorFormatError: the contents are not OFA's predictor state dict.
    """
    if isinstance(blob, Mapping) and isinstance(blob.get("state_dict"), Mapping):
        blob = blob["state_dict"]
    if not is_ofa_state_dict(blob):
        raise PredictorFormatError(f"{path}: not OFA predictor weights (expected keys {list(OFA_STATE_KEYS)})")
    return OFAAccuracyPredictor(blob, space=space, source=str(path))

