"""One Attach stream: hello out, Welcome back, then commands in and
progress reports out (mirrors the simulated trainer's attach-session.ts).

gRPC Python's bidi stream takes a request *iterator*; ours is fed by a
queue so that any thread can send (the agent loop sends WeightsReady, the
weight sender WeightsSent). Responses are read on a daemon thread that
turns them into callbacks; callbacks run on that thread and must return
quickly (queue the work), or they would delay RunEnded and errors.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional

import grpc

from ._proto.tandem.v1 import trainer_service_pb2 as pb
from .errors import TandemRpcError
from .log import StructLogger


@dataclass(frozen=True)
class Welcome:
    """The control plane's answer to hello: where to start, run settings."""

    run_id: str
    next_step: int
    max_steps: int
    max_trajectory_age_steps: int
    batch_groups: int
    group_size: int


@dataclass(frozen=True)
class RunEndedInfo:
    phase: str
    message: str


_CLOSE = object()


class AttachSession:
    """An open Attach stream. Create with :meth:`open`."""

    def __init__(
        self,
        call_factory: Callable[[Iterator[pb.TrainerMessage]], Any],
        *,
        on_send_weights: Callable[[pb.SendWeights], None],
        on_run_ended: Callable[[RunEndedInfo], None],
        log: StructLogger,
    ) -> None:
        self._outbox: "queue.Queue[object]" = queue.Queue()
        self._call_factory = call_factory
        self._on_send_weights = on_send_weights
        self._on_run_ended = on_run_ended
        self._log = log
        self._welcomed = threading.Event()
        self._done = threading.Event()
        self._closed = False
        self._lock = threading.Lock()
        self.welcome: Optional[Welcome] = None
        self.failed: Optional[TandemRpcError] = None
        self.run_ended: Optional[RunEndedInfo] = None
        self._call: Any = None

    def _requests(self) -> Iterator[pb.TrainerMessage]:
        while True:
            item = self._outbox.get()
            if item is _CLOSE:
                return
            assert isinstance(item, pb.TrainerMessage)
            yield item

    def open(self, hello: pb.TrainerHello, timeout_s: float, first: Optional[list[pb.TrainerMessage]] = None) -> Welcome:
        """Says hello (plus ``first`` messages, sent right behind it: the
        control plane queues messages that arrive before the session is
        registered and handles them in order once it is, so a WeightsReady
        sent here is known before the coordinator's first sync looks for
        it), then waits for the Welcome. Raises TandemRpcError (the
        stream's status, or DEADLINE_EXCEEDED)."""
        self._outbox.put(pb.TrainerMessage(hello=hello))
        for m in first or []:
            self._outbox.put(m)
        self._call = self._call_factory(self._requests())
        threading.Thread(target=self._read, name="tandem-attach-reader", daemon=True).start()
        if not self._welcomed.wait(timeout_s) or self.welcome is None:
            failure = self.failed or TandemRpcError(
                grpc.StatusCode.DEADLINE_EXCEEDED, f"no welcome from the control plane within {timeout_s:.1f} s"
            )
            self.close()
            raise failure
        return self.welcome

    def _read(self) -> None:
        try:
            for message in self._call:
                self._dispatch(message)
            if not self._closed:
                # An OK end: the control plane shut down or ended the run.
                self._fail(TandemRpcError(grpc.StatusCode.UNAVAILABLE, "the control plane ended the attach stream"))
        except grpc.RpcError as err:
            if not self._closed:
                self._fail(TandemRpcError.from_exception(err))
        except Exception as err:  # a callback bug must not leave the session looking alive
            self._log.error("attach reader crashed", exc_info=True)
            self._fail(TandemRpcError(grpc.StatusCode.INTERNAL, f"attach reader crashed: {err}"))
        finally:
            self._done.set()
            self._welcomed.set()

    def _dispatch(self, message: pb.ControlMessage) -> None:
        kind = message.WhichOneof("kind")
        if kind == "welcome":
            if self.welcome is not None:
                self._log.warning("second welcome on one attach stream ignored")
                return
            w = message.welcome
            self.welcome = Welcome(
                run_id=w.run_id,
                next_step=int(w.next_step),
                max_steps=int(w.max_steps),
                max_trajectory_age_steps=int(w.max_trajectory_age_steps),
                batch_groups=int(w.batch_groups),
                group_size=int(w.group_size),
            )
            self._welcomed.set()
        elif kind == "send_weights":
            if self.welcome is None:
                self._log.warning("send_weights before welcome ignored")
                return
            self._on_send_weights(message.send_weights)
        elif kind == "run_ended":
            info = RunEndedInfo(message.run_ended.phase, message.run_ended.message)
            self._log.info("control plane ended the run", phase=info.phase, message=info.message)
            self.run_ended = info
            self._on_run_ended(info)

    def _fail(self, err: TandemRpcError) -> None:
        if self.failed is None and self.run_ended is None:
            self.failed = err
            self._log.debug("attach stream failed", code=err.code.name, message=err.message)

    @property
    def alive(self) -> bool:
        """Whether the stream can still carry the trainer on."""
        return not self._done.is_set() and not self._closed and self.run_ended is None

    def wait_done(self, timeout_s: float) -> bool:
        return self._done.wait(timeout_s)

    def send(self, message: pb.TrainerMessage) -> bool:
        """Queues a message if the stream is open; False when it is not."""
        with self._lock:
            if self._closed or self._done.is_set():
                return False
            self._outbox.put(message)
            return True

    def weights_ready(self, policy_version: int, update_info_json: str = "") -> bool:
        return self.send(pb.TrainerMessage(weights_ready=pb.WeightsReady(policy_version=policy_version, update_info_json=update_info_json)))

    def weights_sent(self, policy_version: int, ok: bool, error: str, seconds: float, sync_id: str) -> bool:
        return self.send(
            pb.TrainerMessage(
                weights_sent=pb.WeightsSent(policy_version=policy_version, ok=ok, error=error, seconds=seconds, sync_id=sync_id)
            )
        )

    def close(self, grace_s: float = 1.0) -> None:
        """Half-closes the stream, so that messages already queued (the last
        WeightsReady) still go out, waits up to ``grace_s`` for the server to
        end it, then cancels it (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._outbox.put(_CLOSE)
        if self._call is not None:
            self._done.wait(grace_s)
            self._call.cancel()
