"""Errors raised by the search package."""

from __future__ import annotations

__all__ = [
    "BudgetOutOfRangeError",
    "InfeasibleSearchError",
    "NotFittedError",
    "PredictorFormatError",
    "SearchError",
    "SearchFailedError",
    "SpaceMismatchError",
]


class SearchError(Exception):
    """Base class of the search package's domain errors."""


class BudgetOutOfRangeError(SearchError, ValueError):
    """A constraint's limit lies outside what any subnet can reach (too tight or never binding)."""


class InfeasibleSearchError(SearchError):
    """No subnet meeting every constraint at once could be found."""


class SpaceMismatchError(SearchError, ValueError):
    """A predictor or LUT belongs to another search space than the one requested."""


class PredictorFormatError(SearchError, ValueError):
    """A predictor file is not a lutnas predictor or OFA predictor weights, or has another format version."""


class NotFittedError(SearchError, AttributeError):
    """A predictor was used before ``fit`` (or ``load``)."""


class SearchFailedError(SearchError, RuntimeError):
    """The search itself failed once its input had been checked (never bad input): the message is the
    work and the original error's type and text."""

    @classmethod
    def wrapping(cls, err: Exception, what: str) -> SearchFailedError:
        """The failure ``err`` (any error raised by the work) as one of these: ``{what} failed: {type}: {text}``."""
        return cls(f"{what} failed: {type(err).__name__}: {err}")
