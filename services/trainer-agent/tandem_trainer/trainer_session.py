"""The trainer's side of one Attach session, independent of how training
is done (plain torch in :mod:`tandem_trainer.agent`, TRL in
:mod:`tandem_trainer.trl_integration`).

Everything happens on the caller's thread at *safe points*, between
training steps: pulling the next batch (in short long-poll slices),
acking, reporting weights, and serving the coordinator's SendWeights
commands, which the stream's reader thread only queues. Training and
broadcasting thus never touch the parameters at the same time, and a
broadcast always sends a committed policy version. A command that arrives
while a step trains waits for the next safe point; the coordinator's
deadline covers that, and right after each commit the session waits up to
``sync_grace_s`` for the SendWeights that the new WeightsReady triggers, so
in steady state every version is broadcast as soon as it exists.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional

from ._proto.tandem.v1 import trainer_service_pb2 as pb
from .attach_session import AttachSession, RunEndedInfo, Welcome
from .batch import Batch
from .checkpoint import CheckpointMeta
from .client import AckResult, TrainerClient
from .errors import AgentError, TandemRpcError
from .log import StructLogger, get_logger
from .weight_sender import SendCommand, SendResult, WeightSender


@dataclass(frozen=True)
class _Pending:
    command: SendCommand
    received_at: float


class RunEnded(Exception):
    """The run is over (complete, cancelled or failed): stop training."""

    def __init__(self, phase: str, message: str = "") -> None:
        super().__init__(f"run ended: {phase} {message}".strip())
        self.phase = phase


class TrainerSession:
    """One Attach session plus the step calls made under it."""

    def __init__(
        self,
        client: TrainerClient,
        sender: WeightSender,
        *,
        pull_slice_ms: int = 1000,
        sync_grace_s: float = 2.0,
        stop: Optional[threading.Event] = None,
        before_send: Optional[Callable[[SendCommand], None]] = None,
        on_sent: Optional[Callable[[SendResult], None]] = None,
        log: Optional[StructLogger] = None,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.sender = sender
        self.pull_slice_ms = pull_slice_ms
        self.sync_grace_s = sync_grace_s
        self.stop = stop or threading.Event()
        self._before_send = before_send
        self._on_sent = on_sent
        self._now = now
        self._log = log or get_logger("session")
        self._commands: "queue.Queue[_Pending]" = queue.Queue()
        self._session: Optional[AttachSession] = None
        #: Version of the committed weights the sender broadcasts.
        self.held_version = 0
        #: Whether any SendWeights arrived: then generators exist, and waiting
        #: for the next one after a commit is worth it.
        self.generators_seen = False
        self.syncs: list[SendResult] = []
        #: While False, SendWeights commands wait in the queue (multi-rank
        #: setups enable serving once every rank can join the broadcast).
        self.syncs_enabled = True

    # -- session ----------------------------------------------------------
    def attach(self, held_version: int) -> Welcome:
        """Opens a new Attach session for weights of ``held_version``."""
        self.close()
        self.held_version = held_version
        self._commands = queue.Queue()
        session = self.client.attach(
            held_version,
            on_send_weights=self._queue_command,
            on_run_ended=lambda _info: None,
            update_info_json=self.sender.update_info_json(),
        )
        self._session = session
        assert session.welcome is not None
        return session.welcome

    def _queue_command(self, msg: pb.SendWeights) -> None:
        self.generators_seen = True
        cmd = SendCommand(
            policy_version=int(msg.policy_version),
            sync_id=msg.sync_id,
            master_address=msg.master_address,
            master_port=int(msg.master_port),
            world_size=int(msg.world_size),
            deadline_ms=int(msg.deadline_ms),
            group_id=msg.group_id,
            forms_group=bool(msg.forms_group),
        )
        self._commands.put(_Pending(cmd, self._now()))

    def _check(self) -> AttachSession:
        """The live session, or the reason it is not."""
        s = self._session
        if s is None:
            raise TandemRpcError.from_exception(RuntimeError("no attach session"))
        if s.run_ended is not None:
            raise RunEnded(s.run_ended.phase, s.run_ended.message)
        if s.failed is not None:
            raise s.failed
        return s

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    # -- weight sync ------------------------------------------------------
    def serve_commands(self, wait_s: float = 0.0) -> int:
        """Serves queued SendWeights commands (waiting up to ``wait_s`` for a
        first one); returns how many were served."""
        served = 0
        timeout = wait_s
        while self.syncs_enabled:
            try:
                pending = self._commands.get(timeout=timeout) if timeout > 0 else self._commands.get_nowait()
            except queue.Empty:
                return served
            timeout = 0.0
            self._serve(pending)
            served += 1
        return served

    def _serve(self, pending: _Pending) -> None:
        cmd = pending.command
        session = self._session
        if cmd.deadline_ms > 0 and self._now() - pending.received_at > cmd.deadline_ms / 1000.0:
            # The coordinator has given up on this sync already.
            result = SendResult(self.held_version, False, "deadline passed before the trainer reached a safe point", 0.0, cmd.sync_id)
        else:
            if self._before_send is not None:
                self._before_send(cmd)
            result = self.sender.send(cmd, self.held_version)
        self.syncs.append(result)
        if self._on_sent is not None:
            self._on_sent(result)
        if session is None or not session.weights_sent(result.policy_version, result.ok, result.error, result.seconds, result.sync_id):
            self._log.warning("attach stream closed before WeightsSent could be sent", sync_id=cmd.sync_id)

    # -- steps ------------------------------------------------------------
    def pull(self, step: int, welcome: Welcome) -> Batch:
        """Pulls the batch of ``step``, serving weight syncs between long-poll
        slices. Raises RunEnded, or TandemRpcError for the reconnect loop."""
        while True:
            session = self._check()
            self.serve_commands()
            if self.stop.is_set():
                raise RunEnded("Stopped", "stop requested")
            try:
                result = self.client.pull_batch(
                    step,
                    self.pull_slice_ms,
                    expected_group_size=welcome.group_size,
                    max_trajectory_age_steps=welcome.max_trajectory_age_steps,
                )
            except TandemRpcError as err:
                if err.run_over or session.run_ended is not None:
                    raise RunEnded(err.reason or "ended", err.message) from err
                raise
            if result.state == "ready" and result.batch is not None:
                return result.batch
            if result.state == "run_ended":
                ended = session.run_ended
                raise RunEnded(ended.phase if ended else "ended", ended.message if ended else "")

    def ack(self, step: int) -> AckResult:
        """Acks ``step``; RunEnded when the run was closed meanwhile."""
        session = self._check()
        try:
            return self.client.ack_batch(step)
        except TandemRpcError as err:
            if err.run_over or session.run_ended is not None:
                raise RunEnded(err.reason or "ended", err.message) from err
            raise

    def commit(self, version: int) -> None:
        """The trainer now holds ``version``: report it, then give the
        coordinator a moment to ask for it."""
        self.held_version = version
        session = self._session
        if session is not None:
            # update_info went out with the hello of this session and the
            # coordinator keeps it; a new session (new control plane) resends it.
            session.weights_ready(version, "")
        self.serve_commands(self.sync_grace_s if self.generators_seen else 0.0)


def reconcile(
    session: TrainerSession, welcome: Welcome, version: int, pending: Optional[CheckpointMeta], where: str
) -> tuple[int, Optional[Batch]]:
    """Matches the weights we restored (``version``; ``pending`` when the
    checkpoint says which step produced them) to the control plane's next
    step. Returns the step to train next and, when the checkpoint already
    contains a step the control plane has not recorded (saved, then the ack
    was lost), that step's re-served batch: ack it, do not train it again.
    Anything else means the checkpoint is not this run's latest; training on
    would label weights with the wrong version, so it raises AgentError."""
    nxt = welcome.next_step
    if pending is not None and pending.trained_step >= 0 and nxt == pending.trained_step and version == nxt + 1:
        batch = session.pull(nxt, welcome)
        if sorted(batch.group_ids) != sorted(pending.trained_group_ids):
            raise AgentError(
                f"step {nxt} was re-served with other groups than those in the checkpoint; refusing to ack a batch "
                "these weights were not trained on"
            )
        return nxt + 1, batch
    if nxt != version:
        raise AgentError(
            f"the control plane's next step is {nxt} but the checkpoint in {where} holds policy version {version}: "
            "resume from this run's latest checkpoint"
        )
    return nxt, None


__all__ = ["RunEnded", "RunEndedInfo", "TrainerSession", "reconcile"]
