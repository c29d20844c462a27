"""Train and evaluate accuracy predictors from data files: ``lutnas predictor train|eval`` as library calls.

    from search.fitting import evaluate_predictor, train_predictor
    report = train_predictor(["evo.csv"], "pred.pt")
    evaluate_predictor("pred.pt", ["linas.csv"]).to_dict()["kendall"]

Each returns a report whose ``to_dict()`` is the command's ``--json`` document; its ``warnings`` are the
cautions the command prints (never in the JSON). Bad input raises ``ValueError`` with one line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "EXTRAPOLATION_MARGIN_PCT",
    "FEW_TRAINING_POINTS",
    "EvalReport",
    "TrainReport",
    "evaluate_predictor",
    "extrapolation",
    "load_data",
    "train_predictor",
]

# Below this many training subnets a predictor is flagged: on DyNAS-T's data, 30 subnets fit themselves exactly
# (train Kendall 1.000, RMSE 0.000%) but rank 361 held-out ones at Kendall 0.43; 362 reach above 0.6.
FEW_TRAINING_POINTS = 100
#: A predicted top-1 this many points above the best accuracy a predictor was trained on is an extrapolation:
#: a predictor fit on 78.8% at most predicted 89.7% for a search's pick, a number no measurement backs.
EXTRAPOLATION_MARGIN_PCT = 2.0


def load_data(paths: Sequence[str | Path], space: Any = None) -> Any:
    """The accuracy data of ``paths`` (DyNAS-T or ``arch,accuracy`` CSV files), merged (archs read in ``space``
    when given: see :func:`search.data.load_accuracy_data`).

    Raises:
        ValueError: no file, a missing file or a malformed one.
    """
    from search.data import load_accuracy_data

    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("data must name at least one file, got none")
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise ValueError(f"data file not found: {', '.join(missing)}")
    return load_accuracy_data(paths, space)


# -- train ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainReport:
    """A trained and saved predictor (``lutnas predictor train --json``)."""

    out: str
    space: str
    n: int
    resolutions: list[int]
    train_metrics: dict[str, Any]
    fit_seconds: float
    data_fingerprint: str
    space_note: str = field(default="", compare=False)  # how the space was chosen, for a reader
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"out": self.out, "space": self.space, "n": self.n, "resolutions": self.resolutions,
                "train_metrics": self.train_metrics, "fit_seconds": self.fit_seconds,
                "data_fingerprint": self.data_fingerprint}


def train_predictor(data: Sequence[str | Path], out: str | Path, *, space: str | None = None,
                    seed: int = 0) -> TrainReport:
    """Train lutnas's accuracy predictor on accuracy data files and save it to ``out``.

    Args:
        data: accuracy CSV files (DyNAS-T or ``arch,accuracy``).
        out: the predictor file to write.
        space: the data's search space (default: the data's space column, else inferred from its MACs,
            else the default space).
        seed: random seed.

    Raises:
        ValueError: bad data, or a ``space`` the data's space column contradicts.
        OSError: ``out`` cannot be written.
    """
    from search.predictor import LutnasPredictor

    accuracy = load_data(data, space)
    chosen, note = _training_space(accuracy, space)
    warnings = _foreign_resolutions(accuracy.resolutions, chosen)
    pred = LutnasPredictor(space=chosen, random_state=seed).fit_data(accuracy)
    pred.save(out)
    meta = pred.metadata()
    if meta["n_train"] < FEW_TRAINING_POINTS:
        warnings.append(f"fit on only {meta['n_train']} subnets: its train metrics are measured on those same "
                        "subnets and say little; check it on other data with 'lutnas predictor eval' (a few "
                        "hundred subnets or more make a useful predictor)")
    return TrainReport(out=str(out), space=meta["space"], n=meta["n_train"], resolutions=meta["resolutions"],
                       train_metrics=meta["train_metrics"], fit_seconds=meta["fit_seconds"],
                       data_fingerprint=meta["data_fingerprint"], space_note=note, warnings=tuple(warnings))


def _training_space(accuracy: Any, given: str | None) -> tuple[Any, str]:
    """The space to train in (a name, or a given space itself: a user's is registered nowhere) and how it was
    chosen."""
    from search.data import infer_space
    from space import DEFAULT_SPACE, get_space

    if given is not None:
        space = get_space(given)
        if accuracy.space is not None and space.name != accuracy.space:
            raise ValueError(f"--space {space.name} does not fit the data: its space column says {accuracy.space} "
                             f"({_space_words(accuracy.space)}); drop --space")
        return space, "given"
    inferred = infer_space(accuracy)
    if inferred is None:
        return get_space(DEFAULT_SPACE).name, "default; pass --space to change"
    return get_space(inferred).name, "the data's space column" if accuracy.space else "inferred from the data's MACs"


def _foreign_resolutions(resolutions: Sequence[int], name: Any) -> list[str]:
    """Data at sides the space never samples (digits data under the default space, say) is likely the wrong space."""
    from space import describe_resolutions, get_space

    space = get_space(name)
    if set(resolutions) <= set(space.resolutions):
        return []
    return [f"the data's resolutions {describe_resolutions(resolutions)} are not among {space.name}'s "
            f"({describe_resolutions(space.resolutions)}); if the data is of another space, pass --space"]


def _space_words(name: str) -> str:
    """``width 0.25, r=12, 16`` for messages."""
    from space import describe_resolutions, get_space

    space = get_space(name)
    return f"width {space.width_mult:g}, r={describe_resolutions(space.resolutions)}"


# -- eval ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EvalReport:
    """A predictor's rank correlation and RMSE on data (``lutnas predictor eval --json``)."""

    kendall: float
    spearman: float
    rmse: float
    n: int
    predictor: str = field(default="", compare=False)
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"kendall": self.kendall, "spearman": self.spearman, "rmse": self.rmse, "n": self.n}


def evaluate_predictor(predictor: str | Path | Any, data: Sequence[str | Path]) -> EvalReport:
    """Rank correlation and RMSE of a predictor (a file in lutnas's or OFA's format, or a loaded one) on data.

    Raises:
        ValueError: a missing or malformed predictor or data file.
    """
    from search.data import infer_space
    from search.metrics import prediction_metrics

    accuracy = load_data(data)
    pred = _predictor(predictor)
    data_space = infer_space(accuracy)
    warnings = []
    if data_space is not None and data_space != pred.space_name:
        warnings.append(f"the data looks like {data_space} but the predictor is for {pred.space_name}")
    metrics = prediction_metrics(pred.predict_batch(accuracy.to_batch()), accuracy.accuracy_pct)
    return EvalReport(**metrics, predictor=str(predictor) if isinstance(predictor, (str, Path)) else "",
                      warnings=tuple(warnings))


def _predictor(predictor: str | Path | Any) -> Any:
    """A loaded predictor; a path is read (either format), a missing file is bad input."""
    from search.loading import load_predictor

    if not isinstance(predictor, (str, Path)):
        return predictor
    try:
        return load_predictor(predictor)
    except FileNotFoundError as err:
        raise ValueError(f"predictor file not found: {predictor}") from err


# -- extrapolation -------------------------------------------------------------------------------
def extrapolation(predictor: Any, predicted: Sequence[float]) -> dict[str, Any] | None:
    """How far ``predicted`` accuracies go above the best one ``predictor`` was trained on, when that is
    more than :data:`EXTRAPOLATION_MARGIN_PCT` points (None otherwise, or when its training range is unknown:
    OFA's predictor and files written before it was recorded).

    Returns:
        ``{"trained_max_pct", "predicted_max_pct", "warning"}``.
    """
    trained = getattr(predictor, "accuracy_range_", None)
    values = [float(v) for v in predicted]
    if not trained or not values:
        return None
    top, best = max(values), float(trained[1])
    if top <= best + EXTRAPOLATION_MARGIN_PCT:
        return None
    return {"trained_max_pct": best, "predicted_max_pct": top,
            "warning": f"the predictor was trained on accuracies up to {best:.1f}% and predicts {top:.1f}% here: "
                       "far outside its data, so those top-1 numbers are extrapolations; collect accuracies of "
                       "larger subnets (supernet collect) or treat the ranking, not the numbers, as the answer"}

