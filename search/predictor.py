"""lutnas's accuracy predictor: a small ensemble of kernel regressors over arch encodings.

Each ensemble member standardizes one encoding (:mod:`search.encoding`) of the subnets and
fits kernel ridge regression with the kernel ``variance * RBF(length_scale) + <x, x'>``: a
linear model (what ridge regression on OFA's encoding gets right) plus a smooth correction
for interactions between slots. The prediction is the members' mean. On DyNAS-T's
OFA-MobileNetV3 w1.0 data this ranks held-out subnets better than OFA's MLP recipe and
trains in about a second (see ``benchmarks/predictor_bench.py``).

The estimator follows scikit-learn's conventions: ``__init__`` stores its arguments, ``fit``
validates them and returns ``self``, learned state ends in ``_``, and ``score`` returns R².
``save``/``load`` use one file: a ``torch.save`` of tensors and JSON strings, read back with
``weights_only=True``; never a pickled object.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from search.data import AccuracyData
from search.encoding import ENCODINGS, get_encoding
from search.errors import NotFittedError, PredictorFormatError, SpaceMismatchError
from search.metrics import prediction_metrics
from space import DEFAULT_SPACE, AnySpace, SubnetBatch, get_space, list_spaces, space_from_dict, space_to_dict
from space.bounds import check_archive

__all__ = ["FORMAT_VERSION", "PREDICTOR_KIND", "LutnasPredictor", "SubnetsLike", "to_batch"]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1  # bump when the saved layout changes; load refuses other versions
PREDICTOR_KIND = "lutnas-accuracy-predictor"  # marks a lutnas predictor file

SubnetsLike = SubnetBatch | Sequence[Mapping[str, Any]]


def to_batch(subnets: SubnetsLike, space_name: str) -> Any:
    """A population of the space's family from a batch (passed through) or a sequence of arch dicts (validated)."""
    from search.genomes import as_batch

    return as_batch(subnets, space_name)


def _kernel(a: np.ndarray, b: np.ndarray, length_scale: float, variance: float) -> np.ndarray:
    """variance * RBF(a, b) + a . b (the Gram matrix, used to fit)."""
    ab = a @ b.T
    sq = (a * a).sum(axis=1)[:, None] + (b * b).sum(axis=1)[None, :] - 2.0 * ab
    return variance * np.exp(-0.5 * np.maximum(sq, 0.0) / (length_scale * length_scale)) + ab


def _apply_kernel(x: np.ndarray, train: dict[str, np.ndarray], length_scale: float, variance: float) -> np.ndarray:
    """``_kernel(x, train_x) @ alpha`` without the Gram matrix's linear part: that part is
    ``x @ (train_x.T @ alpha)``, a precomputed vector; the RBF part is built in place."""
    sq = x @ train["x"].T
    sq *= -2.0
    sq += (x * x).sum(axis=1)[:, None]
    sq += train["x_sq"][None, :]
    np.maximum(sq, 0.0, out=sq)
    sq *= -0.5 / (length_scale * length_scale)
    np.exp(sq, out=sq)
    return variance * (sq @ train["alpha"]) + x @ train["w_linear"]


class LutnasPredictor:
    """Kernel-ridge ensemble predicting top-1 accuracy (percent) of subnets.

    Args:
        space: the search space the training subnets come from (a registered name, a space file or a space).
        encodings: one encoding name per ensemble member (see :data:`search.encoding.ENCODINGS`).
        length_scales: the RBF length scale of each member, in standardized feature units.
        rbf_variance: weight of the RBF part of the kernel (the linear part has weight 1),
            relative to standardized accuracies.
        noise: the ridge term added to the kernel's diagonal.
        max_train_samples: fit on at most this many subnets (a random subset), bounding the
            cubic cost of the kernel solve.
        random_state: seed for the subset draw (int, None or a numpy Generator).

    Attributes (after fit):
        members_: per member, a dict of the standardization and the dual coefficients.
        y_mean_, y_scale_: the standardization of the accuracies.
        resolutions_: the resolutions seen in training.
        n_train_: subnets fitted.
        train_metrics_: Kendall, Spearman, RMSE and n on the training data.
        fit_seconds_: wall time of fit.
        data_fingerprint_, data_sources_: from the AccuracyData given to :meth:`fit_data`, else "".
        accuracy_precision_: the precision its training accuracies were measured at (fp32 unless the data says).
    """

    def __init__(
        self,
        space: str | AnySpace = DEFAULT_SPACE,
        encodings: tuple[str, ...] = ("ofa", "lutnas"),
        length_scales: tuple[float, ...] = (9.0, 12.0),
        rbf_variance: float = 0.05,
        noise: float = 1e-3,
        max_train_samples: int = 5000,
        random_state: int | np.random.Generator | None = None,
    ) -> None:
        self.space = space
        self.encodings = encodings
        self.length_scales = length_scales
        self.rbf_variance = rbf_variance
        self.noise = noise
        self.max_train_samples = max_train_samples
        self.random_state = random_state

    # -- scikit-learn plumbing -----------------------------------------------------------
    def get_params(self) -> dict[str, Any]:
        """The constructor arguments, by name."""
        return {name: getattr(self, name) for name in _PARAM_NAMES}

    def set_params(self, **params: Any) -> LutnasPredictor:
        """Set constructor arguments by name; ValueError for an unknown name."""
        for name, value in params.items():
            if name not in _PARAM_NAMES:
                raise ValueError(f"invalid parameter {name!r} for LutnasPredictor; valid: {', '.join(_PARAM_NAMES)}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"LutnasPredictor({args})"

    def _validate_params(self) -> None:
        get_space(self.space)  # ValueError for an unknown space
        if not isinstance(self.encodings, (tuple, list)) or not self.encodings:
            raise ValueError(f"'encodings' should be a non-empty tuple of names; got encodings={self.encodings!r}")
        for name in self.encodings:
            if name not in ENCODINGS:
                raise ValueError(f"unknown encoding {name!r} in 'encodings'; known: {', '.join(sorted(ENCODINGS))}")
        if len(self.length_scales) != len(self.encodings) or any(float(s) <= 0 for s in self.length_scales):
            raise ValueError(f"'length_scales' should hold one positive value per encoding ({len(self.encodings)}); "
                             f"got length_scales={self.length_scales!r}")
        if not self.rbf_variance >= 0:
            raise ValueError(f"'rbf_variance' should be >= 0; got rbf_variance={self.rbf_variance!r}")
        if not self.noise > 0:
            raise ValueError(f"'noise' should be > 0; got noise={self.noise!r}")
        if not (isinstance(self.max_train_samples, int) and self.max_train_samples >= 2):
            raise ValueError(f"'max_train_samples' should be an int >= 2; got {self.max_train_samples!r}")

    # -- fitting -------------------------------------------------------------------------
    def fit(self, X: SubnetsLike, y: np.ndarray) -> LutnasPredictor:
        """Fit to subnets ``X`` and their top-1 accuracies ``y`` (percent).

        Args:
            X: a SubnetBatch or a sequence of OFA arch dicts.
            y: accuracies in percent, shape (n,).

        Returns:
            self.

        Raises:
            ValueError: bad parameters, mismatched lengths, or fewer than 2 subnets.
        """
        start = time.perf_counter()
        self._validate_params()
        batch = to_batch(X, self.space)
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        if len(y) != len(batch):
            raise ValueError(f"X has {len(batch)} subnets but y has {len(y)} values")
        if len(y) < 2:
            raise ValueError(f"need at least 2 subnets to fit, got {len(y)}")
        if not np.all(np.isfinite(y)):
            raise ValueError("y holds non-finite accuracies")
        rng = np.random.default_rng(self.random_state)
        if len(y) > self.max_train_samples:
            keep = np.sort(rng.choice(len(y), self.max_train_samples, replace=False))
            batch, y = batch.take(keep), y[keep]
        self.y_mean_ = float(y.mean())
        self.y_scale_ = float(y.std()) or 1.0
        target = (y - self.y_mean_) / self.y_scale_
        members = []
        for name, length_scale in zip(self.encodings, self.length_scales):
            x = get_encoding(name, self.space)(batch).astype(np.float64)
            mean = x.mean(axis=0)
            scale = x.std(axis=0)
            scale[scale == 0] = 1.0
            xs = (x - mean) / scale
            gram = _kernel(xs, xs, float(length_scale), float(self.rbf_variance))
            gram[np.diag_indices_from(gram)] += float(self.noise)
            alpha = np.linalg.solve(gram, target)
            members.append({"encoding": name, "length_scale": float(length_scale), "mean": mean,
                            "scale": scale, "x": xs, "alpha": alpha})
        self.members_ = members
        self._encoders = {name: get_encoding(name, self.space) for name in self.encodings}
        self.resolutions_ = tuple(int(r) for r in np.unique(batch.r))
        self.n_train_ = len(y)
        # The accuracies it learned from: a prediction far above them is an extrapolation (see search.extrapolation).
        self.accuracy_range_ = (float(y.min()), float(y.max()))
        self.train_metrics_ = prediction_metrics(self.predict(batch), y)
        self.fit_seconds_ = time.perf_counter() - start
        self.data_fingerprint_ = getattr(self, "data_fingerprint_", "")
        self.data_sources_ = getattr(self, "data_sources_", ())
        self.accuracy_precision_ = getattr(self, "accuracy_precision_", "fp32")
        logger.debug("fitted %d subnets in %.2f s: %s", self.n_train_, self.fit_seconds_, self.train_metrics_)
        return self

    def fit_data(self, data: AccuracyData) -> LutnasPredictor:
        """Fit to an :class:`AccuracyData` set, recording its fingerprint and sources."""
        self.data_fingerprint_ = data.fingerprint
        self.data_sources_ = tuple(data.sources)
        self.accuracy_precision_ = data.precision
        return self.fit(data.to_batch(), data.accuracy_pct)

    # -- prediction ----------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "members_"):
            raise NotFittedError("this LutnasPredictor is not fitted yet; call fit or load first")

    def predict(self, X: SubnetsLike) -> np.ndarray:
        """Predicted top-1 accuracy (percent) of each subnet in ``X``, shape (n,).

        Raises:
            NotFittedError: before fit.
        """
        self._check_fitted()
        batch = to_batch(X, self.space)
        total = np.zeros(len(batch))
        for m, train in zip(self.members_, self._prediction_terms()):
            x = (self._encoders[m["encoding"]](batch).astype(np.float64) - m["mean"]) / m["scale"]
            total += _apply_kernel(x, train, m["length_scale"], float(self.rbf_variance))
        return self.y_mean_ + self.y_scale_ * total / len(self.members_)

    def _prediction_terms(self) -> list[dict[str, np.ndarray]]:
        """Per member, what prediction reuses: training norms and the linear part's weights
        (derived from the fitted state on first use, so saved files are unchanged)."""
        terms = getattr(self, "_terms", None)
        if terms is None or len(terms) != len(self.members_) or any(
                t["x"] is not m["x"] for t, m in zip(terms, self.members_)):
            terms = [{"x": m["x"], "alpha": m["alpha"], "x_sq": (m["x"] * m["x"]).sum(axis=1),
                      "w_linear": m["x"].T @ m["alpha"]} for m in self.members_]
            self._terms = terms
        return terms

    def predict_batch(self, batch: SubnetBatch) -> np.ndarray:
        """Same as :meth:`predict`; the interface the search calls."""
        return self.predict(batch)

    def score(self, X: SubnetsLike, y: np.ndarray) -> float:
        """R² of the predictions (rank metrics: :func:`search.metrics.prediction_metrics`)."""
        y = np.asarray(y, dtype=np.float64)
        pred = self.predict(X)
        ss_res = float(((y - pred) ** 2).sum())
        ss_tot = float(((y - y.mean()) ** 2).sum())
        return 1.0 - ss_res / ss_tot if ss_tot > 0 else 0.0

    # -- search interface ----------------------------------------------------------------
    @property
    def space_name(self) -> str:
        """The search space the predictor was trained for."""
        return get_space(self.space).name

    @property
    def resolutions(self) -> tuple[int, ...]:
        """Resolutions the predictor was trained on (the search keeps to these)."""
        self._check_fitted()
        return self.resolutions_

    # -- persistence ---------------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        """What a saved file records besides the weights."""
        self._check_fitted()
        space = get_space(self.space)
        return {
            "space": space.name,
            # A user's space is registered nowhere: its whole document travels with the file.
            "space_doc": None if space.name in list_spaces() else space_to_dict(space),
            "width_mult": space.width_mult,
            "encodings": list(self.encodings),
            "resolutions": list(self.resolutions_),
            "n_train": self.n_train_,
            "train_metrics": self.train_metrics_,
            "fit_seconds": self.fit_seconds_,
            "data_fingerprint": self.data_fingerprint_,
            "data_sources": list(self.data_sources_),
            "accuracy_precision": self.accuracy_precision_,  # what the predicted top-1 means: fp32 or int8
            "accuracy_range": list(self.accuracy_range_) if self.accuracy_range_ else None,
            "y_mean": self.y_mean_,
            "y_scale": self.y_scale_,
            "torch_version": torch.__version__,
        }

    def save(self, path: str | Path) -> Path:
        """Write the predictor to one file (parent folders are created).

        The file is a ``torch.save`` of ``{"kind", "format_version", "params_json",
        "metadata_json", "tensors"}``: JSON strings and tensors only.

        Returns:
            The path written.
        """
        self._check_fitted()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {}
        for i, m in enumerate(self.members_):
            for key in ("mean", "scale", "x", "alpha"):
                tensors[f"member{i}.{key}"] = torch.from_numpy(np.ascontiguousarray(m[key]))
        params = self.get_params()
        params["space"] = get_space(self.space).name  # a space file's path or a space: its name (and metadata's doc)
        params["random_state"] = params["random_state"] if isinstance(params["random_state"], int) else None
        params["encodings"] = list(params["encodings"])
        params["length_scales"] = [float(s) for s in params["length_scales"]]
        blob = {
            "kind": PREDICTOR_KIND,
            "format_version": FORMAT_VERSION,
            "params_json": json.dumps(params),
            "metadata_json": json.dumps(self.metadata()),
            "tensors": tensors,
        }
        torch.save(blob, path)
        logger.debug("saved predictor to %s", path)
        return path

    @classmethod
    def load(cls, path: str | Path, space: str | None = None) -> LutnasPredictor:
        """Read a predictor written by :meth:`save`.

        Args:
            path: the file.
            space: when given, the space the caller searches; a predictor trained for another
                space is refused.

        Raises:
            FileNotFoundError: no such file.
            PredictorFormatError: not a lutnas predictor file, or another format version.
            SpaceMismatchError: the predictor was trained for another space than ``space``.
        """
        blob = read_predictor_blob(path)
        return cls.from_blob(blob, path, space)

    @classmethod
    def from_blob(cls, blob: Mapping[str, Any], path: str | Path = "", space: str | None = None) -> LutnasPredictor:
        """Rebuild a predictor from a loaded file's contents (see :meth:`load`)."""
        version = blob.get("format_version")
        if version != FORMAT_VERSION:
            raise PredictorFormatError(
                f"{path}: predictor format_version {version!r} is not supported; expected {FORMAT_VERSION}"
            )
        try:
            params = json.loads(blob["params_json"])
            meta = json.loads(blob["metadata_json"])
            tensors = blob["tensors"]
            params["encodings"] = tuple(params["encodings"])
            params["length_scales"] = tuple(params["length_scales"])
            if meta.get("space_doc") is not None:  # a user's space, recorded whole
                params["space"] = space_from_dict(meta["space_doc"], source=f"predictor {path}'s space")
            pred = cls(**params)
            members = []
            for i, (name, length_scale) in enumerate(zip(pred.encodings, pred.length_scales)):
                members.append({"encoding": name, "length_scale": float(length_scale),
                                **{k: tensors[f"member{i}.{k}"].numpy() for k in ("mean", "scale", "x", "alpha")}})
        except (KeyError, TypeError, ValueError) as err:
            raise PredictorFormatError(f"{path}: damaged lutnas predictor file: {err}") from err
        if space is not None and get_space(space).name != meta["space"]:
            raise SpaceMismatchError(
                f"predictor {path} was trained for space {meta['space']!r}, but the search space is "
                f"{get_space(space).name!r}"
            )
        pred.members_ = members
        pred._encoders = {name: get_encoding(name, pred.space) for name in pred.encodings}
        for m in members:  # the encoding is derived from the space: a file of another space's shape is named
            width = pred._encoders[m["encoding"]].width
            if len(m["mean"]) != width:
                raise SpaceMismatchError(
                    f"predictor {path} holds a {len(m['mean'])}-float {m['encoding']!r} encoding, but space "
                    f"{meta['space']!r} encodes subnets in {width} floats; retrain it for this space"
                )
        pred.y_mean_ = float(meta["y_mean"])
        pred.y_scale_ = float(meta["y_scale"])
        pred.resolutions_ = tuple(int(r) for r in meta["resolutions"])
        pred.n_train_ = int(meta["n_train"])
        pred.train_metrics_ = dict(meta["train_metrics"])
        pred.fit_seconds_ = float(meta["fit_seconds"])
        pred.data_fingerprint_ = str(meta["data_fingerprint"])
        pred.data_sources_ = tuple(meta["data_sources"])
        pred.accuracy_precision_ = str(meta.get("accuracy_precision", "fp32"))  # files before it: fp32 data
        rng = meta.get("accuracy_range")  # files before it: unknown
        pred.accuracy_range_ = (float(rng[0]), float(rng[1])) if rng else None
        return pred


_PARAM_NAMES = ("space", "encodings", "length_scales", "rbf_variance", "noise", "max_train_samples", "random_state")


def read_predictor_blob(path: str | Path) -> Any:
    """The raw contents of a predictor file, loaded with ``torch.load(weights_only=True)``.

    Raises:
        FileNotFoundError: no such file.
        PredictorFormatError: not a file torch's safe loader reads.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"predictor file not found: {path}")
    try:
        check_archive(path)  # a zip bomb is refused before torch inflates anything
    except ValueError as err:
        raise PredictorFormatError(str(err)) from err
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for foreign, damaged or hostile files
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise PredictorFormatError(
            f"{path}: not a predictor file of plain tensors (lutnas never unpickles objects): {first}"
        ) from err
