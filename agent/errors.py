"""The one exception a job raises to fail with a gRPC status name and a one-line reason."""

from __future__ import annotations

import re

__all__ = ["JobError", "JOB_ERROR_CODES", "MAX_ERROR_CHARS", "one_line", "bad_model_code", "out_of_memory"]

#: The longest error text a client gets back for a job: room for any reason, none for a file's contents.
MAX_ERROR_CHARS = 400

# How the runtimes word a failed allocation (onnxruntime's arena, torch's CPU allocator, C++).
_OUT_OF_MEMORY = re.compile(r"failed to allocate memory|can't allocate memory|bad_alloc|out of memory|alloc failed",
                            re.IGNORECASE)  # the last: protobuf's arena, parsing a model under the worker's cap

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
    """Collapse an error text to one line of at most ``limit`` characters; a longer one is cut and says so."""
    line = " ".join(str(text).split())
    if len(line) <= limit:
        return line
    note = f" ...[cut: {len(line)} chars in all]"
    return (line[: max(0, limit - len(note))] + note)[:limit]


def out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` says an allocation failed (the worker's cap, usually). Reads the whole message: the
    allocation failure sits past the point where :func:`one_line` cuts it."""
    return isinstance(err, MemoryError) or _OUT_OF_MEMORY.search(str(err)) is not None


def bad_model_code(err: BaseException) -> str:
    """The status for a runtime's refusal of a model: RESOURCE_EXHAUSTED when it ran out of memory
    (:func:`out_of_memory`), else INVALID_ARGUMENT."""
    return "RESOURCE_EXHAUSTED" if out_of_memory(err) else "INVALID_ARGUMENT"


class JobError(Exception):
    """A job failed for a reason the host should see.

    Args:
        code: A name from ``JOB_ERROR_CODES``.
        message: What went wrong, naming the bad value; collapsed to one line of at most ``MAX_ERROR_CHARS``.
    """

    def __init__(self, code: str, message: str) -> None:
        if code not in JOB_ERROR_CODES:
            raise ValueError(f"unknown job error code {code!r}; known: {', '.join(sorted(JOB_ERROR_CODES))}")
        self.code = code
        self.message = one_line(message, MAX_ERROR_CHARS)
        super().__init__(f"{code}: {self.message}")
