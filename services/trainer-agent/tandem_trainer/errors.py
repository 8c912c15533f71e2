"""Errors of the trainer protocol, and which of them are worth retrying.

One type, :class:`TandemRpcError`, normalises whatever a gRPC call raised
(``grpc.RpcError``) into a status code, a message and the control plane's
stable ``tandem-error-reason`` trailer, so that callers branch on data, not
on message text. The retry rationale mirrors the simulated trainer
(services/simulator/src/trainer/trainer-rpc.ts):

Retried (reconnect with capped exponential backoff and jitter):
  * UNAVAILABLE: the control plane is restarting, failing over, or not up yet.
  * DEADLINE_EXCEEDED: our own deadline on a call to a slow or stuck server.
  * ABORTED: a lost race on the server; trying again is correct. Except
    reason TRAINER_REPLACED: another trainer attached to the run and took it
    over; reconnecting would knock that one off, so we stop.
  * CANCELLED that we did not ask for: a server shutting down mid-call.

Re-attached (a fresh Welcome says which step is next), not backed off:
  * FAILED_PRECONDITION with reason STEP_ALREADY_TRAINED or STEP_AHEAD: our
    idea of the next step is out of date.

Run over (stop cleanly): FAILED_PRECONDITION with RUN_NOT_OPEN / RUN_COMPLETE.

Not retried (the same request fails the same way): INVALID_ARGUMENT,
NOT_FOUND (unknown run), other FAILED_PRECONDITION, RESOURCE_EXHAUSTED (on a
client it means a batch larger than the receive limit), PERMISSION_DENIED,
UNAUTHENTICATED, UNIMPLEMENTED, INTERNAL, UNKNOWN.
"""

from __future__ import annotations

from typing import Optional

import grpc

#: Trailer with the control plane's stable reason (packages/common errors.ts).
REASON_TRAILER = "tandem-error-reason"

STEP_ALREADY_TRAINED = "STEP_ALREADY_TRAINED"
STEP_AHEAD = "STEP_AHEAD"
RUN_NOT_OPEN = "RUN_NOT_OPEN"
RUN_COMPLETE = "RUN_COMPLETE"
BATCH_NOT_SERVED = "BATCH_NOT_SERVED"
TRAINER_REPLACED = "TRAINER_REPLACED"

_RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.CANCELLED,
    }
)


class TandemRpcError(Exception):
    """A failed trainer-protocol call (or attach stream), normalised."""

    def __init__(self, code: grpc.StatusCode, message: str, reason: Optional[str] = None) -> None:
        super().__init__(f"{code.name}: {message}" + (f" ({reason})" if reason else ""))
        self.code = code
        self.message = message
        self.reason = reason

    @classmethod
    def from_exception(cls, err: BaseException) -> "TandemRpcError":
        """Normalises anything a grpc call raised; non-gRPC errors become UNKNOWN."""
        if isinstance(err, TandemRpcError):
            return err
        if isinstance(err, grpc.RpcError) and hasattr(err, "code"):
            call = err  # a grpc.Call as well as an RpcError
            code = call.code() if callable(getattr(call, "code", None)) else grpc.StatusCode.UNKNOWN
            details = call.details() if callable(getattr(call, "details", None)) else str(err)
            reason = None
            trailers = call.trailing_metadata() if callable(getattr(call, "trailing_metadata", None)) else None
            for key, value in trailers or ():
                if key == REASON_TRAILER:
                    reason = value.decode() if isinstance(value, bytes) else str(value)
            return cls(code or grpc.StatusCode.UNKNOWN, details or "", reason)
        return cls(grpc.StatusCode.UNKNOWN, f"{type(err).__name__}: {err}")

    @property
    def replaced(self) -> bool:
        """Another trainer attached to the run and replaced this one."""
        return self.reason == TRAINER_REPLACED

    @property
    def retryable(self) -> bool:
        """Whether to reconnect (with backoff) and try again; see the module doc."""
        return self.code in _RETRYABLE and not self.replaced

    @property
    def needs_resync(self) -> bool:
        """Our next step is out of date: attach again for a fresh Welcome."""
        return self.code == grpc.StatusCode.FAILED_PRECONDITION and self.reason in (STEP_ALREADY_TRAINED, STEP_AHEAD)

    @property
    def run_over(self) -> bool:
        """The run is closed (complete, cancelled or failed)."""
        return self.code == grpc.StatusCode.FAILED_PRECONDITION and self.reason in (RUN_NOT_OPEN, RUN_COMPLETE)


class AgentError(Exception):
    """A condition the agent cannot fix by retrying; the message says what to do."""
