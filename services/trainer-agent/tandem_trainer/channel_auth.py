"""The trainer's credentials on the wire: its run's token on every call, and TLS.

The control plane (with authentication on) gives every run a token; its
trainer presents it as ``authorization: Bearer <token>`` metadata on each
TrainerService call, streams included, so a trainer of one run cannot pull
another run's batches or report its weights. An interceptor rather than
gRPC call credentials: those are refused on plain-text channels, and a
loopback control plane may run without TLS.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import grpc


class _ClientCallDetails(grpc.ClientCallDetails):  # type: ignore[misc]
    def __init__(self, base: Any, metadata: Sequence[tuple[str, str]]) -> None:
        self.method = base.method
        self.timeout = base.timeout
        self.metadata = metadata
        self.credentials = base.credentials
        self.wait_for_ready = getattr(base, "wait_for_ready", None)
        self.compression = getattr(base, "compression", None)


class BearerTokenInterceptor(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[misc]
    grpc.UnaryStreamClientInterceptor,  # type: ignore[misc]
    grpc.StreamUnaryClientInterceptor,  # type: ignore[misc]
    grpc.StreamStreamClientInterceptor,  # type: ignore[misc]
):
    """Adds ``authorization: Bearer <token>`` to every call."""

    def __init__(self, token: str) -> None:
        self._header = ("authorization", f"Bearer {token}")

    def __repr__(self) -> str:  # never show the token
        return "BearerTokenInterceptor(<redacted>)"

    def _details(self, details: Any) -> _ClientCallDetails:
        metadata = [m for m in (details.metadata or []) if m[0] != "authorization"]
        metadata.append(self._header)
        return _ClientCallDetails(details, metadata)

    def intercept_unary_unary(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation: Callable[..., Any], details: Any, request_iterator: Any) -> Any:
        return continuation(self._details(details), request_iterator)

    def intercept_stream_stream(self, continuation: Callable[..., Any], details: Any, request_iterator: Any) -> Any:
        return continuation(self._details(details), request_iterator)


def open_channel(
    target: str,
    options: Sequence[tuple[str, Any]],
    *,
    token: Optional[str] = None,
    tls: bool = False,
    ca_file: Optional[str] = None,
) -> grpc.Channel:
    """A channel to ``target``: TLS when ``tls`` or ``ca_file`` (verified against
    ``ca_file``, or the system roots), plain text otherwise; with ``token``,
    every call carries it."""
    if tls or ca_file:
        root = None
        if ca_file:
            with open(ca_file, "rb") as f:
                root = f.read()
        channel = grpc.secure_channel(target, grpc.ssl_channel_credentials(root_certificates=root), options=list(options))
    else:
        channel = grpc.insecure_channel(target, options=list(options))
    if token:
        channel = grpc.intercept_channel(channel, BearerTokenInterceptor(token))
    return channel
