"""Bearer-token authentication for the agent, as a gRPC server interceptor.

Every call must carry ``authorization: Bearer <token>`` metadata; the standard health service is
exempt so that load balancers and ``grpc_health_probe`` work without secrets. The token is
compared in constant time.
"""

from __future__ import annotations

import hmac
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

from agent._files import create_file, replace_file

__all__ = ["BearerTokenInterceptor", "EXEMPT_METHOD_PREFIXES", "create_token_file", "generate_token", "write_token_file"]

EXEMPT_METHOD_PREFIXES = ("/grpc.health.v1.Health/",)
_SCHEME = "bearer "


def generate_token() -> str:
    """A fresh random token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def write_token_file(path: Path, token: str) -> Path:
    """Write ``token`` to ``path`` readable by its owner only, creating parent directories."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    os.chmod(path, 0o600)
    return path


def create_token_file(path: Path, overwrite: bool = False) -> Path:
    """Write a fresh token to a new file at ``path`` that only its owner may read (mode 0600).

    The file is created exclusively and a symlink there is never followed; with ``overwrite`` a new file is
    renamed over an existing one.

    Raises:
        ValueError: ``path`` exists and ``overwrite`` is not set.
    """
    path = Path(path)
    data = (generate_token() + "\n").encode()
    if overwrite:
        replace_file(path, data, 0o600)
        return path
    try:
        create_file(path, data, 0o600)
    except FileExistsError:
        raise ValueError(f"--out must name a new file, got {str(path)!r}, which exists (--force replaces it)") from None
    return path


def _denier(handler: grpc.RpcMethodHandler, reason: str) -> grpc.RpcMethodHandler:
    """A handler of the same shape as ``handler`` that aborts with UNAUTHENTICATED."""

    def abort(_request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(grpc.StatusCode.UNAUTHENTICATED, reason)

    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(abort)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(abort)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(abort)
    return grpc.unary_unary_rpc_method_handler(abort)


class BearerTokenInterceptor(grpc.ServerInterceptor):
    """Rejects calls without the right bearer token (health checks excepted).

    Args:
        token: The shared secret.
    """

    def __init__(self, token: str) -> None:
        self.token = token
        self._expected = token.encode()

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        method = handler_call_details.method or ""
        if method.startswith(EXEMPT_METHOD_PREFIXES):
            return continuation(handler_call_details)
        header = ""
        for key, value in handler_call_details.invocation_metadata or ():
            if key == "authorization":
                header = value if isinstance(value, str) else value.decode("latin-1")
                break
        if not header:
            reason = "missing 'authorization: Bearer <token>' metadata (see --token-file or LUTNAS_TOKEN)"
        elif not header[: len(_SCHEME)].lower() == _SCHEME:
            reason = "authorization metadata must be 'Bearer <token>'"
        elif hmac.compare_digest(header[len(_SCHEME) :].strip().encode(), self._expected):
            return continuation(handler_call_details)
        else:
            reason = "invalid token"
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        return _denier(handler, reason)
