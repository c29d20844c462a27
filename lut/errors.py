"""Errors raised by the lut package.

``LutError`` is the root; each subclass names one domain failure. Errors about bad
input (a malformed file, an unknown device) also subclass ``ValueError`` so callers
that only distinguish "bad input" from "the work failed" can catch that.
"""

from __future__ import annotations

__all__ = [
    "LutError",
    "StoreError",
    "StoreUnavailable",
    "SchemaVersionError",
    "UnknownDeviceError",
    "WorkFailedError",
    "AmbiguousDeviceError",
    "ImportFormatError",
    "MissingBlocksError",
    "CalibrationError",
    "CopyConflictError",
]


class LutError(Exception):
    """Root of every lut failure."""


class StoreError(LutError):
    """The store cannot be opened, is not a lutnas store, is damaged, or its server fails."""


class StoreUnavailable(StoreError):
    """The store cannot be reached right now (its server restarts, the network is cut, a lock is held too long):
    the same call may work when tried again."""


class SchemaVersionError(StoreError):
    """The store was written by a lutnas with a schema version this one cannot read."""


class UnknownDeviceError(LutError, ValueError):
    """No device setting matches the given name or id."""


class AmbiguousDeviceError(LutError, ValueError):
    """A device name matches several settings; the caller must pick one by id."""


class ImportFormatError(LutError, ValueError):
    """A file being imported is malformed; the message names the file and the line or key."""


class MissingBlocksError(LutError, KeyError, ValueError):
    """A subnet needs blocks the LUT does not have; the message names the missing keys.

    A ValueError too: asking a LUT for a resolution or subnet it does not cover is bad input.
    """

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class CalibrationError(LutError, ValueError):
    """A calibration cannot be fitted, read or applied."""


class CopyConflictError(LutError, ValueError):
    """A copy would overwrite a device setting the destination store already has."""


class WorkFailedError(LutError, RuntimeError):
    """A computation failed once its input had been checked (never bad input): the message is the
    work and the original error's type and text."""

    @classmethod
    def wrapping(cls, err: Exception, what: str) -> WorkFailedError:
        """The failure ``err`` (any error raised by the work) as one of these: ``{what} failed: {type}: {text}``."""
        return cls(f"{what} failed: {type(err).__name__}: {err}")
