"""The one exception a job raises to fail with a gRPC status name and a one-line reason."""

from __future__ import annotations

__all__ = ["JobError", "JOB_ERROR_CODES", "one_line"]

# Status names a job-level error may carry (the names of grpc.StatusCode members).
JOB_ERROR_CODES = frozenset(
    {
        "INVALID_ARGUMENT",
        "FAILED_PRECONDITION",
        "NOT_FOUND",
        "RESOURCE_EXHAUSTED",
        "DEADLINE_EXCEEDED",
        "ABORTED",
        "INTERNAL",
        "UNIMPLEMENTED",
    }
)


def one_line(text: object, limit: int = 300) -> str:
    """Collapse an error text to one line of at most ``limit`` characters."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


class JobError(Exception):
    """A job failed for a reason the host should see.

    Args:
        code: A name from ``JOB_ERROR_CODES``.
        message: What went wrong, naming the bad value; collapsed to one line.
    """

    def __init__(self, code: str, message: str) -> None:
        if code not in JOB_ERROR_CODES:
            raise ValueError(f"unknown job error code {code!r}; known: {', '.join(sorted(JOB_ERROR_CODES))}")
        self.code = code
        self.message = one_line(message)
        super().__init__(f"{code}: {self.message}")
