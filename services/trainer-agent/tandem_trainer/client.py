"""The trainer-protocol client (tandem.v1.TrainerService), the Python
counterpart of the simulated trainer's RPC layer.

* :meth:`TrainerClient.attach` opens the Attach stream (hello -> Welcome),
  with callbacks for SendWeights and RunEnded.
* :meth:`TrainerClient.pull_batch` long-polls the batch of a step and
  decodes it into numpy arrays (:mod:`tandem_trainer.batch`).
* :meth:`TrainerClient.ack_batch` records the step as trained.
* :func:`run_with_reconnect` runs a session body again after retryable
  failures, with capped exponential backoff and jitter; see
  :mod:`tandem_trainer.errors` for which gRPC codes are retried and why.

The channel is created once and reused: grpc's own reconnect backoff is
aligned with ours (its default ceiling of 120 s would keep calls failing
long after a restarted control plane is back).
"""

from __future__ import annotations

import random as _random
import threading
import time
from dataclasses import dataclass
from typing import Callable, Literal, Optional, TypeVar

import grpc

from ._proto.tandem.v1 import trainer_service_pb2 as pb
from ._proto.tandem.v1 import trainer_service_pb2_grpc as pb_grpc
from .attach_session import AttachSession, RunEndedInfo, Welcome
from .backoff import BackoffPolicy, backoff_delay_s
from .channel_auth import open_channel
from .batch import Batch, decode_batch
from .errors import AgentError, TandemRpcError
from .log import StructLogger, get_logger

__all__ = ["AckResult", "AttachSession", "PullResult", "RunEndedInfo", "TrainerClient", "Welcome", "run_with_reconnect"]

T = TypeVar("T")


@dataclass(frozen=True)
class PullResult:
    """One PullBatch answer. ``batch`` is set when ``state == "ready"``."""

    state: Literal["ready", "not_ready", "run_ended"]
    batch: Optional[Batch]
    dropped_stale: int


@dataclass(frozen=True)
class AckResult:
    policy_version: int
    groups_trained: int
    duplicate: bool


class TrainerClient:
    """Calls of one trainer for one run over one gRPC channel."""

    def __init__(
        self,
        target: str,
        run_id: str,
        trainer_id: str,
        *,
        rpc_timeout_s: float = 10.0,
        max_receive_bytes: int = 256 * 1024 * 1024,
        reconnect: BackoffPolicy = BackoffPolicy(),
        channel: Optional[grpc.Channel] = None,
        log: Optional[StructLogger] = None,
        token: Optional[str] = None,
        tls: bool = False,
        ca_file: Optional[str] = None,
    ) -> None:
        self.run_id = run_id
        self.trainer_id = trainer_id
        self.rpc_timeout_s = rpc_timeout_s
        # token: the run's credential (TANDEM_RUN_TOKEN), sent on every call.
        self._channel = channel or open_channel(
            target,
            [
                ("grpc.max_receive_message_length", max_receive_bytes),
                ("grpc.initial_reconnect_backoff_ms", int(reconnect.initial_s * 1000)),
                ("grpc.min_reconnect_backoff_ms", int(reconnect.initial_s * 1000)),
                ("grpc.max_reconnect_backoff_ms", int(reconnect.max_s * 1000)),
            ],
            token=token,
            tls=tls,
            ca_file=ca_file,
        )
        self._stub = pb_grpc.TrainerServiceStub(self._channel)
        self._log = log or get_logger("client").child(run_id=run_id, trainer_id=trainer_id)
        #: Answered pulls and acks so far: the reconnect loop treats any
        #: progress as the end of an outage.
        self.progress = 0

    def attach(
        self,
        policy_version: int,
        *,
        on_send_weights: Callable[[pb.SendWeights], None],
        on_run_ended: Callable[[RunEndedInfo], None] = lambda _info: None,
        update_info_json: Optional[str] = None,
        simulated: bool = False,
        timeout_s: Optional[float] = None,
    ) -> AttachSession:
        """Opens the Attach stream and waits for the Welcome. With
        ``update_info_json`` a WeightsReady for ``policy_version`` follows
        the hello at once (see :meth:`AttachSession.open`)."""
        session = AttachSession(
            lambda requests: self._stub.Attach(requests),
            on_send_weights=on_send_weights,
            on_run_ended=on_run_ended,
            log=self._log,
        )
        hello = pb.TrainerHello(run_id=self.run_id, trainer_id=self.trainer_id, policy_version=policy_version, simulated=simulated)
        first = []
        if update_info_json is not None:
            first.append(pb.TrainerMessage(weights_ready=pb.WeightsReady(policy_version=policy_version, update_info_json=update_info_json)))
        session.open(hello, timeout_s if timeout_s is not None else self.rpc_timeout_s, first)
        return session

    def pull_batch(self, step: int, wait_ms: int, *, expected_group_size: int = 0, max_trajectory_age_steps: int = -1) -> PullResult:
        """Long-polls (up to ``wait_ms``) for the batch of ``step``."""
        request = pb.PullBatchRequest(run_id=self.run_id, step=step, wait_ms=max(0, wait_ms))
        try:
            response: pb.PullBatchResponse = self._stub.PullBatch(request, timeout=wait_ms / 1000.0 + self.rpc_timeout_s)
        except grpc.RpcError as err:
            raise TandemRpcError.from_exception(err) from None
        self.progress += 1
        if response.state == pb.BATCH_STATE_READY:
            if response.step != step:
                raise TandemRpcError(grpc.StatusCode.INTERNAL, f"asked for the batch of step {step}, got step {response.step}")
            batch = decode_batch(
                self.run_id,
                step,
                list(response.groups),
                reserved=response.reserved,
                dropped_stale=response.dropped_stale,
                expected_group_size=expected_group_size,
                max_trajectory_age_steps=max_trajectory_age_steps,
            )
            return PullResult("ready", batch, response.dropped_stale)
        if response.state == pb.BATCH_STATE_NOT_READY:
            return PullResult("not_ready", None, response.dropped_stale)
        if response.state == pb.BATCH_STATE_RUN_ENDED:
            return PullResult("run_ended", None, response.dropped_stale)
        raise TandemRpcError(grpc.StatusCode.INTERNAL, f"PullBatch answered unknown state {response.state} for step {step}")

    def ack_batch(self, step: int) -> AckResult:
        """Records the batch of ``step`` as trained (idempotent: a retry after
        a lost reply answers ``duplicate``)."""
        try:
            r: pb.AckBatchResponse = self._stub.AckBatch(pb.AckBatchRequest(run_id=self.run_id, step=step), timeout=self.rpc_timeout_s)
        except grpc.RpcError as err:
            raise TandemRpcError.from_exception(err) from None
        self.progress += 1
        return AckResult(int(r.policy_version), int(r.groups_trained), bool(r.duplicate))

    def close(self) -> None:
        self._channel.close()


#: Consecutive "your step is out of date" answers tolerated before giving up.
MAX_RESYNCS = 5


def run_with_reconnect(
    body: Callable[[], T],
    *,
    policy: BackoffPolicy,
    progress: Callable[[], int],
    stop: threading.Event,
    log: StructLogger,
    random: Callable[[], float] = _random.random,
    now: Callable[[], float] = time.monotonic,
    sleep: Optional[Callable[[float], None]] = None,
) -> Optional[T]:
    """Runs ``body`` (one attach session's worth of work) until it returns.

    Retryable failures (module doc of :mod:`tandem_trainer.errors`) are
    retried after a backoff delay; an answered call (``progress`` moved)
    ends an outage and resets the backoff, a Welcome alone does not (or a
    control plane that accepts Attach but fails every pull would be retried
    at the shortest delay forever). Out-of-date steps re-attach at once, up
    to :data:`MAX_RESYNCS` times in a row. Anything else propagates.
    Returns None when ``stop`` is set.
    """
    wait = sleep or (lambda s: stop.wait(s))
    attempt = 0
    resyncs = 0
    outage_since: Optional[float] = None
    while not stop.is_set():
        before = progress()
        try:
            return body()
        except TandemRpcError as err:
            if stop.is_set():
                return None
            if err.needs_resync and resyncs < MAX_RESYNCS:
                resyncs += 1
                log.warning("step out of date; attaching again for a fresh welcome", message=err.message, reason=err.reason)
                continue
            if err.replaced:
                raise AgentError(f"another trainer took over run: {err.message}") from err
            if not err.retryable:
                raise
            if progress() != before:
                outage_since, attempt, resyncs = None, 0, 0
            if outage_since is None:
                outage_since = now()
            down = now() - outage_since
            if down >= policy.give_up_after_s:
                raise AgentError(f"control plane unusable for {down:.0f} s: {err}") from err
            delay = backoff_delay_s(policy, attempt, random)
            attempt += 1
            log.warning("control plane unavailable; will reconnect", code=err.code.name, message=err.message, delay_s=round(delay, 3), attempt=attempt)
            wait(delay)
    return None
