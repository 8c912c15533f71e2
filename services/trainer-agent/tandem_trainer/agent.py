"""The agent loop for a plain torch training step, the testable core of the
trainer pod:

    attach -> for each step: pull -> train_step(batch) -> checkpoint -> ack
           -> WeightsReady -> (serve SendWeights)

Exactly-once training across crashes rests on three facts: the checkpoint
is written before the ack (so it is never behind the control plane); an
un-acked batch is served again, unchanged, with ``reserved=true``; and on
restart the agent compares its checkpoint with the Welcome's ``next_step``:

* equal: continue (a batch pulled but not checkpointed is trained again:
  its groups were never acked, so nothing is trained twice in the ledger);
* one behind the checkpoint: the step was trained and saved but the ack was
  lost; the agent pulls the re-served batch, checks that its groups are the
  ones in the checkpoint, and acks it without training it again;
* anything else: the checkpoint does not belong to this point of the run
  (wrong directory, lost volume); the agent stops with a message instead of
  training weights under the wrong version.

Multi-process (DDP-style, every rank holds full parameters): rank 0 talks
to Tandem and tells the other ranks what to do next through a
:class:`Collective`; they run :meth:`TrainerAgent.follow`.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional, Protocol

import torch

from .batch import Batch
from .checkpoint import CheckpointMeta, CheckpointStore
from .client import TrainerClient, Welcome, run_with_reconnect
from .config import AgentConfig
from .errors import AgentError
from .log import get_logger
from .tiny_model import param_checksum
from .trainer_session import RunEnded, TrainerSession, reconcile
from .weight_sender import SendCommand, SendResult, WeightSender, transport_factory

TrainStep = Callable[[Batch], Optional[dict[str, Any]]]


@dataclass
class TrainingSetup:
    """What the user's entry point returns: the model, its optimizer and one
    optimizer step on a batch (``train_step`` may return metrics to log)."""

    model: torch.nn.Module
    optimizer: Optional[torch.optim.Optimizer]
    train_step: TrainStep
    #: Tensors to broadcast, in a fixed order; default ``model.named_parameters()``.
    named_tensors: Optional[Callable[[], Iterable[tuple[str, torch.Tensor]]]] = None

    def tensors(self) -> Iterable[tuple[str, torch.Tensor]]:
        if self.named_tensors is not None:
            return self.named_tensors()
        return ((n, p.detach()) for n, p in self.model.named_parameters())


class Collective(Protocol):
    """How rank 0 tells the other ranks what to do (one object per call)."""

    rank: int

    def broadcast_object(self, obj: Any) -> Any: ...


class SingleProcess:
    rank = 0

    def broadcast_object(self, obj: Any) -> Any:
        return obj


class TorchDistCollective:
    """Over the job's default torch.distributed group (set up by accelerate/torchrun)."""

    def __init__(self) -> None:
        import torch.distributed as dist

        self._dist = dist
        self.rank = dist.get_rank()

    def broadcast_object(self, obj: Any) -> Any:
        box = [obj]
        self._dist.broadcast_object_list(box, src=0)
        return box[0]


@dataclass
class AgentReport:
    outcome: str
    policy_version: int
    steps_trained: list[int] = field(default_factory=list)
    resumed_from: Optional[int] = None
    syncs_ok: int = 0
    syncs_failed: int = 0


class TrainerAgent:
    """Drives training from Tandem batches. Create, then :meth:`run` (rank 0)
    or :meth:`follow` (other ranks)."""

    def __init__(
        self,
        config: AgentConfig,
        setup: TrainingSetup,
        *,
        client: Optional[TrainerClient] = None,
        sender: Optional[WeightSender] = None,
        collective: Optional[Collective] = None,
        stop: Optional[threading.Event] = None,
    ) -> None:
        self.config = config
        self.setup = setup
        self.stop = stop or threading.Event()
        self.collective: Collective = collective or SingleProcess()
        self.log = get_logger("agent").child(run_id=config.run_id, trainer_id=config.trainer_id)
        self.checkpoints = CheckpointStore(config.checkpoint_dir)
        self._client = client
        self._sender = sender
        self.version = 0
        self._pending: Optional[CheckpointMeta] = None
        self.report = AgentReport("running", 0)
        self._step_log = open(config.step_log, "a", buffering=1) if config.step_log else None

    # -- rank 0 -------------------------------------------------------------
    def run(self) -> AgentReport:
        """Trains until the run's last step is acked, the run ends, or stop."""
        meta = self.checkpoints.load(self.setup.model, self.setup.optimizer)
        if meta is not None:
            if meta.run_id != self.config.run_id:
                raise AgentError(f"checkpoint in {self.config.checkpoint_dir} belongs to run {meta.run_id}, not {self.config.run_id}")
            self.version = meta.policy_version
            self._pending = meta if meta.trained_step >= 0 else None
            self.report.resumed_from = meta.policy_version
            self.log.info("resumed from checkpoint", policy_version=meta.policy_version, trained_step=meta.trained_step)
            self._event("resumed", policy_version=meta.policy_version, trained_step=meta.trained_step)
        client = self._client or TrainerClient(
            self.config.server,
            self.config.run_id,
            self.config.trainer_id,
            rpc_timeout_s=self.config.rpc_timeout_s,
            reconnect=self.config.reconnect,
            token=self.config.token or None,
            tls=self.config.tls,
            ca_file=self.config.ca_file or None,
        )
        sender = self._sender or WeightSender(
            self.setup.tensors,
            transport_factory(self.config.transfer_backend, self.config.transfer_local_address),
            buffer_size_bytes=self.config.transfer_buffer_bytes,
            num_buffers=self.config.transfer_num_buffers,
        )
        session = TrainerSession(
            client,
            sender,
            pull_slice_ms=self.config.pull_slice_ms,
            sync_grace_s=self.config.sync_grace_s,
            stop=self.stop,
            before_send=self._before_send,
            on_sent=self._on_sent,
            log=self.log,
        )
        try:
            outcome = run_with_reconnect(
                lambda: self._one_session(session),
                policy=self.config.reconnect,
                progress=lambda: client.progress,
                stop=self.stop,
                log=self.log,
                random=random.random,
            )
            self.report.outcome = outcome or "stopped"
        finally:
            session.close()
            sender.abort()
            if self._client is None:
                client.close()
            self.collective.broadcast_object(("end", None))
            if self._step_log:
                self._step_log.close()
        self.report.policy_version = self.version
        self.log.info("agent done", outcome=self.report.outcome, policy_version=self.version)
        return self.report

    def _one_session(self, session: TrainerSession) -> str:
        welcome = session.attach(self.version)
        self.log.info(
            "attached",
            next_step=welcome.next_step,
            max_steps=welcome.max_steps,
            k=welcome.max_trajectory_age_steps,
            batch_groups=welcome.batch_groups,
            group_size=welcome.group_size,
        )
        try:
            step = self._reconcile(session, welcome)
            while step < welcome.max_steps:
                batch = session.pull(step, welcome)
                self._train(session, batch)
                step += 1
            return "finished"
        except RunEnded as ended:
            self.log.info("run ended", phase=ended.phase)
            return "stopped" if self.stop.is_set() else "run_ended"

    def _reconcile(self, session: TrainerSession, welcome: Welcome) -> int:
        """Matches our checkpoint to the control plane's next step (module doc)."""
        step, saved_batch = reconcile(session, welcome, self.version, self._pending, self.config.checkpoint_dir)
        if saved_batch is not None:
            self.log.info("step was trained and saved but not acked; acking it now", step=saved_batch.step)
            self._commit(session, saved_batch.step, saved_batch, retrained=False, metrics={})
        self._pending = None
        return step

    def _train(self, session: TrainerSession, batch: Batch) -> None:
        step = batch.step
        self.collective.broadcast_object(("train", batch))
        started = time.monotonic()
        metrics = self.setup.train_step(batch) or {}
        train_s = time.monotonic() - started
        # Checkpoint first: after a crash the checkpoint is never behind the ledger.
        self._pending = CheckpointMeta(self.config.run_id, step + 1, step, tuple(batch.group_ids))
        self.checkpoints.save(self._pending, self.setup.model, self.setup.optimizer)
        self.version = step + 1
        self._commit(session, step, batch, retrained=True, metrics={**metrics, "train_s": round(train_s, 4)})

    def _commit(self, session: TrainerSession, step: int, batch: Batch, *, retrained: bool, metrics: dict[str, Any]) -> None:
        ack = session.ack(step)
        self._pending = None
        self.report.steps_trained.append(step)
        self._event(
            "step",
            step=step,
            policy_version=step + 1,
            reserved=batch.reserved,
            trained_now=retrained,
            duplicate_ack=ack.duplicate,
            groups=batch.group_ids,
            rewards=[[t.reward for t in g.trajectories] for g in batch.groups],
            unscored=[[t.unscored for t in g.trajectories] for g in batch.groups],
            ages=batch.ages(),
            tokens=batch.num_tokens,
            texts=[[t.text for t in g.trajectories] for g in batch.groups] if self.config.step_log_texts else None,
            prompts=[g.prompt_text for g in batch.groups] if self.config.step_log_texts else None,
            sha256=param_checksum(self.setup.tensors()) if self._step_log else None,
            **metrics,
        )
        self.log.info("step committed", step=step, groups=len(batch.groups), reserved=batch.reserved, duplicate=ack.duplicate)
        session.commit(step + 1)

    def _before_send(self, cmd: SendCommand) -> None:
        self.collective.broadcast_object(("sync", cmd.sync_id))

    def _on_sent(self, result: SendResult) -> None:
        if result.ok:
            self.report.syncs_ok += 1
        else:
            self.report.syncs_failed += 1
        self._event(
            "weights_sent",
            policy_version=result.policy_version,
            sync_id=result.sync_id,
            ok=result.ok,
            error=result.error,
            seconds=round(result.seconds, 4),
            group_formed=result.group_formed,
            bytes=result.bytes_sent,
        )

    def _event(self, event: str, **fields: Any) -> None:
        if self._step_log:
            self._step_log.write(json.dumps({"event": event, "pid": os.getpid(), **fields}) + "\n")

    # -- other ranks ----------------------------------------------------------
    def follow(self) -> None:
        """Runs rank 0's decisions on this rank until it says "end"."""
        while True:
            action, arg = self.collective.broadcast_object(None)
            if action == "train":
                self.setup.train_step(arg)
                self.log.info("step trained as a follower", step=arg.step, rank=self.collective.rank)
            elif action == "sync":
                # FSDP-style models gather full tensors collectively: join in.
                for _ in self.setup.tensors():
                    pass
            elif action == "end":
                return
