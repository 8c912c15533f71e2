"""The TRL-independent half of the TRL layer: Tandem batches as TRL rollout
samples, the batch-shape rule, and the step feeder that acks a step only
when the next one is asked for (i.e. after TRL's optimizer step, callbacks
and checkpoint save). Imported by :mod:`tandem_trainer.trl_integration`;
tested without TRL.
"""

from __future__ import annotations

import json
import os
import random
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from .attach_session import Welcome
from .batch import Batch, Group
from .checkpoint import CheckpointMeta
from .backoff import BackoffPolicy
from .client import run_with_reconnect
from .errors import TandemRpcError
from .log import StructLogger, get_logger
from .trainer_session import RunEnded, TrainerSession, reconcile

#: Written next to each TRL checkpoint: which Tandem step produced it.
SIDECAR = "tandem.json"


def group_id_number(group_id: str) -> int:
    """TRL keys groups by int (``RolloutSample.group_id``); Tandem ids are
    strings (numeric in practice). Stable for non-numeric ids too."""
    return int(group_id) if group_id.isdigit() else zlib.crc32(group_id.encode())


def trl_advantages(group: Group) -> np.ndarray:
    """TRL AsyncRolloutWorker's advantage (``_score_group``): (r - mean) /
    (std + 1e-8) over the group's scored completions; an unscored one
    (``Trajectory.unscored``: every reward function returned None) gets 0
    and is left out of the mean and std."""
    r = group.rewards.astype(np.float64)
    scored = ~group.unscored
    adv = np.zeros_like(r)
    if scored.any():
        s = r[scored]
        adv[scored] = (s - s.mean()) / (s.std() + 1e-8)
    return adv.astype(np.float32)


def rollout_samples(batch: Batch) -> list[dict[str, Any]]:
    """One sample dict per completion, in the format TRL's
    ``RolloutQueueDataset.__iter__`` yields to ``FixedCountBatcher`` and
    ``DataCollatorForRollout`` (input_ids = prompt + completion;
    completion_mask and old_log_probs aligned per token, 0 on the prompt).
    Unscored completions get advantage 0 and a NaN reward metric, and the
    group's mean and std leave them out, as in TRL."""
    samples = []
    for g in batch.groups:
        unscored = g.unscored
        adv = trl_advantages(g)
        scored_rewards = g.rewards[~unscored]
        reward_std = float(scored_rewards.std()) if scored_rewards.size else float("nan")
        prompt = g.prompt_token_ids.tolist()
        for i, t in enumerate(g.trajectories):
            completion = t.token_ids.tolist()
            samples.append(
                {
                    "input_ids": prompt + completion,
                    "completion_mask": [0] * len(prompt) + [1] * len(completion),
                    "old_log_probs": [0.0] * len(prompt) + t.logprobs.astype(np.float64).tolist(),
                    "advantage": float(adv[i]),
                    "group_id": group_id_number(g.group_id),
                    "metrics": {
                        "reward": float("nan") if unscored[i] else float(t.reward),
                        "reward_std": reward_std,
                        "tandem/age": float(batch.step - g.min_policy_version),
                    },
                }
            )
    return samples


def micro_batch_size(welcome: Welcome, per_device_train_batch_size: int, gradient_accumulation_steps: int, num_processes: int) -> int:
    """One Tandem step must be one TRL optimizer step: ``batch_groups x
    group_size`` samples = ``per_device_train_batch_size x
    gradient_accumulation_steps x num_processes``. Returns the micro-batch
    size (samples per micro-batch over all ranks)."""
    samples = welcome.batch_groups * welcome.group_size
    per_step = per_device_train_batch_size * gradient_accumulation_steps * num_processes
    if samples != per_step:
        raise ValueError(
            f"per_device_train_batch_size ({per_device_train_batch_size}) x gradient_accumulation_steps "
            f"({gradient_accumulation_steps}) x processes ({num_processes}) = {per_step} samples per optimizer step, but "
            f"the run's batch is algorithm.batchGroups ({welcome.batch_groups}) x algorithm.groupSize "
            f"({welcome.group_size}) = {samples}: make them equal"
        )
    return per_device_train_batch_size * num_processes


def write_sidecar(checkpoint_dir: str | os.PathLike[str], meta: CheckpointMeta) -> None:
    path = Path(checkpoint_dir) / SIDECAR
    tmp = path.with_suffix(".tmp")
    tmp.write_text(
        json.dumps({"run_id": meta.run_id, "policy_version": meta.policy_version, "trained_step": meta.trained_step, "trained_group_ids": list(meta.trained_group_ids)})
    )
    os.replace(tmp, path)


def read_sidecar(checkpoint_dir: str | os.PathLike[str]) -> Optional[CheckpointMeta]:
    path = Path(checkpoint_dir) / SIDECAR
    if not path.exists():
        return None
    d = json.loads(path.read_text())
    return CheckpointMeta(d["run_id"], int(d["policy_version"]), int(d["trained_step"]), tuple(d["trained_group_ids"]))


@dataclass
class _Served:
    batch: Batch


class StepFeeder:
    """Rank 0's side: serves one Tandem batch per optimizer step.

    ``next_batch()`` first acks the step served before it (TRL asks for the
    next batch only after that step's optimizer step, callbacks and
    checkpoint save), reports the new weights and serves the weight sync
    the coordinator then asks for; then it pulls the next batch. Transport
    failures re-attach with backoff; the step position survives them.
    """

    def __init__(
        self,
        session: TrainerSession,
        *,
        run_id: str,
        version: int,
        pending: Optional[CheckpointMeta],
        where: str,
        reconnect: BackoffPolicy,
        stop: Optional[threading.Event] = None,
        log: Optional[StructLogger] = None,
    ) -> None:
        self.session = session
        self.run_id = run_id
        self.version = version
        self._pending = pending
        self._where = where
        self._reconnect = reconnect
        self._stop = stop or threading.Event()
        self._log = log or get_logger("trl-feed")
        self._served: Optional[_Served] = None
        self.welcome: Optional[Welcome] = None
        self.step = -1
        #: Group ids of recently served steps (for checkpoint sidecars).
        self.groups_by_step: dict[int, list[str]] = {}
        self._attached = False

    def _attach(self) -> None:
        welcome = self.session.attach(self.version)
        self.welcome = welcome
        step, saved = reconcile(self.session, welcome, self.version, self._pending, self._where)
        if saved is not None:
            self._log.info("step was trained and saved but not acked; acking it now", step=saved.step)
            self.session.ack(saved.step)
            self.session.commit(self.version)
        self._pending = None
        self.step = step
        self._attached = True

    def _call(self, op: Callable[[], Any]) -> Any:
        def body() -> Any:
            if not self._attached:
                self._attach()
            try:
                return op()
            except TandemRpcError:
                self._attached = False
                raise

        return run_with_reconnect(
            body, policy=self._reconnect, progress=lambda: self.session.client.progress, stop=self._stop, log=self._log, random=random.random
        )

    def start(self) -> Welcome:
        """Attaches (and settles a saved-but-unacked step); returns the Welcome."""
        self._call(lambda: None)
        assert self.welcome is not None
        return self.welcome

    def _ack_served(self) -> None:
        served = self._served
        if served is None:
            return
        step = served.batch.step
        # The weights now contain this step: should the connection break
        # before the ack is answered, re-attaching settles it either way
        # (acked already, or re-served and acked without retraining).
        self.version = step + 1
        self._pending = CheckpointMeta(self.run_id, step + 1, step, tuple(served.batch.group_ids))
        self._served = None
        self._call(lambda: self.session.ack(step))  # idempotent: a duplicate ack is fine
        self._pending = None
        self.step = step + 1
        self.session.commit(self.version)

    def next_batch(self) -> Optional[Batch]:
        """The next step's batch (acking the previous one); None when the run is over."""
        try:
            self._ack_served()
            assert self.welcome is not None
            if self.step >= self.welcome.max_steps:
                return None
            welcome, step = self.welcome, self.step
            batch: Batch = self._call(lambda: self.session.pull(step, welcome))
        except RunEnded as ended:
            self._log.info("run ended", phase=ended.phase)
            return None
        self._served = _Served(batch)
        self.groups_by_step[batch.step] = batch.group_ids
        for old in [s for s in self.groups_by_step if s < batch.step - 8]:
            del self.groups_by_step[old]
        return batch

    def finish(self, trained_through: int) -> None:
        """At the end of training: ack the last served step if the trainer
        completed it (``trained_through`` = global_step, i.e. steps done)."""
        if self._served is not None and self._served.batch.step < trained_through:
            try:
                self._ack_served()
            except RunEnded:
                pass
        self.session.close()

    def checkpoint_meta(self, global_step: int) -> Optional[CheckpointMeta]:
        """What a checkpoint taken at ``global_step`` contains."""
        step = global_step - 1
        groups = self.groups_by_step.get(step)
        if groups is None:
            return None
        return CheckpointMeta(self.run_id, global_step, step, tuple(groups))


__all__ = [
    "SIDECAR",
    "StepFeeder",
    "group_id_number",
    "micro_batch_size",
    "read_sidecar",
    "rollout_samples",
    "trl_advantages",
    "write_sidecar",
]
