"""Run TRL's AsyncGRPOTrainer on Tandem: ``TandemAsyncGRPOTrainer`` is a
drop-in for ``trl.experimental.async_grpo.AsyncGRPOTrainer`` (same
arguments); Tandem then supplies the batches and decides when weights move.

Written against huggingface/trl at f2cd5771,
``trl/experimental/async_grpo/async_grpo_trainer.py``. What it hooks:

* ``AsyncGRPOTrainer.__init__(..., rollout_worker=, weight_transfer=)``
  (``RolloutWorkerProtocol``, ``WeightTransferProtocol``): inert
  implementations, so TRL starts neither its ``AsyncRolloutWorker``
  (generation and scoring: Tandem's rollout workers do that) nor its
  ``WeightTransferClient`` (vLLM admin calls: Tandem's weight-sync
  coordinator makes them).
* ``get_train_dataloader`` (``RolloutQueueDataset`` -> ``FixedCountBatcher``
  / ``TokenBudgetBatcher`` -> ``DataLoader(collate_fn=DataCollatorForRollout)``
  prepared by accelerate): replaced by a loader with no look-ahead.
  accelerate's ``DataLoaderDispatcher``/``DataLoaderShard`` fetch one batch
  ahead, which would ask for step s+1 before step s is acked, and Tandem
  serves s+1 only after that ack: a deadlock. The replacement still packs
  with TRL's own ``FixedCountBatcher`` and ``DataCollatorForRollout``, and
  rank 0 hands each rank its row (what ``DataLoaderDispatcher`` does).
* ``_sync_weight`` (called by ``_InitialWeightSyncCallback`` and
  ``StepIntervalCallback``): only keeps ``model_version``; the broadcast
  happens when Tandem's SendWeights arrives, at the next safe point, from
  ``AsyncGRPOTrainer._streaming_iter()`` (every rank iterates it, as TRL's
  own ``_sync_weight`` does for FSDP2), through vLLM's
  ``NCCLWeightTransferEngine`` (:mod:`tandem_trainer.vllm_transport`).
* ``transformers.Trainer.train``: attaches first, so that ``max_steps``
  comes from the run (``Welcome.max_steps``) and a checkpoint is matched to
  the control plane's next step; ``ignore_data_skip`` is forced on (the
  data position is Tandem's). ``on_save`` writes ``tandem.json`` next to
  each checkpoint (which step and groups it contains).
* The epoch stop: with ``args.max_steps <= 0`` (transformers' default -1)
  and a ``train_dataset`` with a length, ``AsyncGRPOTrainer.__init__``
  registers ``_EpochStopCallback``, which stops training once
  ``len(_trained_groups) >= ceil(num_train_epochs * len(train_dataset))``.
  Tandem's groups fill ``_trained_groups`` while the dataset is only a
  placeholder, so that would end the run early: ``__init__`` hands TRL a
  positive ``max_steps`` (TRL's documented switch that disables the epoch
  stop), then restores the value; ``train()`` sets the run's.
* ``reward_funcs``: with ``TANDEM_REWARD_PORT`` set, rank 0 serves them as
  the run's remote reward endpoint (:mod:`tandem_trainer.reward_server`),
  called as ``AsyncRolloutWorker._score_group`` calls them as far as the
  request allows; the endpoint answers null for completions no function
  could score, the rollout worker marks them ``Trajectory.unscored``, and
  :func:`tandem_trainer.trl_feed.rollout_samples` gives them TRL's
  treatment (advantage 0, left out of the group's mean and std).
* ``token_budget`` (``TokenBudgetBatcher``) is not used: one Tandem step is
  one optimizer step of a fixed number of samples, packed by
  ``FixedCountBatcher``; a positive ``token_budget`` is logged as ignored.

TRL is imported only when ``TandemAsyncGRPOTrainer`` is first used, so this
module imports without TRL. Not run here (TRL and vLLM are not installable
in this environment); the TRL-independent half is
:mod:`tandem_trainer.trl_feed`, which is tested.
"""

from __future__ import annotations

import functools
import os
import queue
from typing import Any, Iterator, Optional, cast

from .agent import Collective, SingleProcess, TorchDistCollective
from .client import TrainerClient
from .config import AgentConfig, load_config, reward_message_format
from .log import get_logger
from .packing import ModelLayout
from .reward_server import MessageFormat, RewardScorer, RewardServer
from .trainer_session import TrainerSession
from .trl_feed import StepFeeder, micro_batch_size, read_sidecar, rollout_samples, write_sidecar
from .weight_sender import WeightSender, transport_factory

__all__ = ["TandemAsyncGRPOTrainer"]


class _InertRolloutWorker:
    """``RolloutWorkerProtocol`` that produces nothing: Tandem's rollout workers generate."""

    def __init__(self) -> None:
        self.rollout_buffer: "queue.Queue[Any]" = queue.Queue()

    def start(self) -> None:
        return None

    def stop(self) -> None:
        return None

    def update_model_version(self, model_version: int) -> None:
        return None

    def check_health(self, stale_after_s: float) -> None:
        return None


class _InertWeightTransfer:
    """``WeightTransferProtocol`` that moves nothing by itself: Tandem's
    coordinator pauses/resumes generators and triggers broadcasts."""

    def init_weight_transfer(self) -> None:
        return None

    def pause(self) -> None:
        return None

    def send_weights(self, iterator: Iterator[Any]) -> None:
        return None

    def resume(self) -> None:
        return None

    def destroy(self) -> None:
        return None


def _rows(collated: dict[str, Any], rank: int) -> dict[str, Any]:
    """Row ``rank`` of a collated micro-batch (dim 0 is one row per rank)."""
    out: dict[str, Any] = {}
    for k, v in collated.items():
        if isinstance(v, dict):
            out[k] = _rows(v, rank)
        elif hasattr(v, "shape") and len(v.shape) > 0:
            out[k] = v[rank : rank + 1]
        else:
            out[k] = v
    return out


#: ``AsyncGRPOTrainer.__init__``'s parameters, in order (trl f2cd5771).
_TRL_INIT_PARAMS = (
    "model",
    "reward_funcs",
    "args",
    "train_dataset",
    "processing_class",
    "callbacks",
    "optimizers",
    "tools",
    "environment_factory",
    "rollout_worker",
    "weight_transfer",
)

#: ``max_steps`` TRL sees in ``__init__`` when the config has none: any
#: positive value disables its epoch stop; ``train()`` sets the run's.
_INIT_MAX_STEPS = 1


def _bind_trl_arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """``AsyncGRPOTrainer.__init__`` arguments as keywords, whether they came
    positionally or not (so ``args`` and ``train_dataset`` are found either way)."""
    if len(args) > len(_TRL_INIT_PARAMS):
        raise TypeError(f"AsyncGRPOTrainer takes at most {len(_TRL_INIT_PARAMS)} positional arguments, got {len(args)}")
    bound = dict(kwargs)
    for name, value in zip(_TRL_INIT_PARAMS, args):
        if name in bound:
            raise TypeError(f"AsyncGRPOTrainer got multiple values for argument {name!r}")
        bound[name] = value
    return bound


def __getattr__(name: str) -> Any:
    """``TandemAsyncGRPOTrainer`` is built on first access (PEP 562), so that
    importing this module never imports TRL."""
    if name == "TandemAsyncGRPOTrainer":
        return _trainer_class()
    raise AttributeError(name)


@functools.lru_cache(maxsize=None)
def _trainer_class() -> type:
    try:
        from transformers import TrainerCallback
        from transformers.trainer_utils import get_last_checkpoint
        from trl.experimental.async_grpo import AsyncGRPOConfig
        from trl.experimental.async_grpo.async_grpo_trainer import AsyncGRPOTrainer, DataCollatorForRollout, FixedCountBatcher
    except ImportError as err:
        raise ImportError(
            "TandemAsyncGRPOTrainer needs TRL >= 1.9.0 with trl.experimental.async_grpo (and transformers, accelerate) "
            "installed in the trainer image"
        ) from err

    log = get_logger("trl")

    class _SidecarCallback(TrainerCallback):  # type: ignore[misc]  # untyped base
        """Writes tandem.json into each checkpoint directory (transformers'
        ``on_save`` runs after ``_save_checkpoint``)."""

        def __init__(self, trainer: "TandemAsyncGRPOTrainer") -> None:
            self.trainer = trainer

        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            feeder = self.trainer._tandem_feeder
            if feeder is None or not state.is_world_process_zero:
                return
            meta = feeder.checkpoint_meta(state.global_step)
            if meta is not None:
                write_sidecar(os.path.join(args.output_dir, f"checkpoint-{state.global_step}"), meta)

    class _Loader:
        """Micro-batches of one optimizer step per Tandem step; no look-ahead."""

        def __init__(self, trainer: "TandemAsyncGRPOTrainer", micro: int) -> None:
            self.trainer = trainer
            self.micro = micro

        def __iter__(self) -> Iterator[dict[str, Any]]:
            t = self.trainer
            acc = t.accelerator
            collective = t._tandem_collective
            if not acc.is_main_process:
                while True:
                    action, payload = collective.broadcast_object(None)
                    if action == "batch":
                        yield _rows(payload, acc.process_index)
                    elif action == "sync":
                        for _ in t._streaming_iter():
                            pass
                    else:
                        return
            feeder = t._tandem_feeder
            assert feeder is not None
            # From here on every rank is in this loop and can join a broadcast.
            feeder.session.syncs_enabled = True
            collator = DataCollatorForRollout(t.processing_class.pad_token_id, acc.num_processes, groups_trained=t._trained_groups)
            while True:
                batch = feeder.next_batch()
                if batch is None:
                    collective.broadcast_object(("end", None))
                    return
                t.model_version = batch.step
                for micro_batch in FixedCountBatcher(rollout_samples(batch), acc.num_processes, self.micro):
                    collated = collator([micro_batch])
                    collective.broadcast_object(("batch", collated))
                    yield _rows(collated, 0)

    class TandemAsyncGRPOTrainer(AsyncGRPOTrainer):  # type: ignore[misc, valid-type]  # dynamic base
        """``AsyncGRPOTrainer`` fed by Tandem. Same arguments, plus
        ``tandem=AgentConfig`` (default: parsed from ``TANDEM_*`` env)."""

        def __init__(self, *args: Any, tandem: Optional[AgentConfig] = None, **kwargs: Any) -> None:
            self._tandem_config = tandem or load_config(os.environ)
            message_format = cast(MessageFormat, reward_message_format(os.environ))
            kwargs = _bind_trl_arguments(args, kwargs)
            kwargs.setdefault("rollout_worker", _InertRolloutWorker())
            kwargs.setdefault("weight_transfer", _InertWeightTransfer())
            config = kwargs.get("args")
            if config is None:
                # TRL's own default (AsyncGRPOTrainer.__init__), built here so max_steps can be set below.
                config = kwargs["args"] = AsyncGRPOConfig(f"{str(kwargs.get('model')).split('/')[-1]}-AsyncGRPO")
            # The run's maxSteps governs, not epochs over train_dataset (a
            # placeholder here): a positive max_steps keeps TRL from
            # registering _EpochStopCallback.
            configured_max_steps = config.max_steps
            if configured_max_steps <= 0:
                config.max_steps = _INIT_MAX_STEPS
            try:
                super().__init__(**kwargs)
            finally:
                config.max_steps = configured_max_steps
            self.args.ignore_data_skip = True  # the data position is Tandem's, not an epoch offset
            token_budget = getattr(self.args, "token_budget", None)
            if token_budget is not None and token_budget > 0:
                log.warning(
                    "token_budget is ignored on Tandem: each step packs a fixed per_device_train_batch_size x processes "
                    "samples per micro-batch (FixedCountBatcher)",
                    token_budget=token_budget,
                )
            self._tandem_feeder: Optional[StepFeeder] = None
            self._tandem_collective: Collective = TorchDistCollective() if self.accelerator.num_processes > 1 else SingleProcess()
            self._tandem_reward: Optional[RewardServer] = None
            self.add_callback(_SidecarCallback(self))
            reward_funcs = kwargs.get("reward_funcs")
            port = os.environ.get("TANDEM_REWARD_PORT")
            if reward_funcs and port is not None and self.accelerator.is_main_process:
                funcs = reward_funcs if isinstance(reward_funcs, list) else [reward_funcs]
                scorer = RewardScorer(
                    funcs,
                    None,  # TRL's AsyncGRPO sums reward functions with weight 1
                    tuple(a for a in os.environ.get("TANDEM_REWARD_ANSWER_ALIASES", "").split(",") if a),
                    message_format,
                )
                self._tandem_reward = RewardServer(scorer, host=os.environ.get("TANDEM_REWARD_HOST", "0.0.0.0"), port=int(port)).start()
                log.info("serving reward functions for Tandem's rollout workers", url=self._tandem_reward.url, message_format=scorer.message_format)

        def _make_feeder(self, version: int, checkpoint: Optional[str]) -> StepFeeder:
            cfg = self._tandem_config
            client = TrainerClient(cfg.server, cfg.run_id, cfg.trainer_id, rpc_timeout_s=cfg.rpc_timeout_s, reconnect=cfg.reconnect, token=cfg.token or None, tls=cfg.tls, ca_file=cfg.ca_file or None)
            # Layout from parameter metadata only: DTensor.shape is global and
            # reading it needs no all-gather (TRL builds update_info the same way).
            layout = ModelLayout.from_named_tensors(self.model.named_parameters())
            sender = WeightSender(
                self._streaming_iter,
                transport_factory(cfg.transfer_backend, cfg.transfer_local_address),
                buffer_size_bytes=cfg.transfer_buffer_bytes,
                num_buffers=cfg.transfer_num_buffers,
                layout=layout,
            )
            session = TrainerSession(
                client,
                sender,
                pull_slice_ms=cfg.pull_slice_ms,
                sync_grace_s=cfg.sync_grace_s,
                before_send=lambda cmd: self._tandem_collective.broadcast_object(("sync", cmd.sync_id)),
            )
            # Until every rank is inside the data loader, a broadcast could not
            # be joined by the other ranks: commands wait (see _Loader).
            session.syncs_enabled = self.accelerator.num_processes == 1
            pending = read_sidecar(checkpoint) if checkpoint else None
            return StepFeeder(session, run_id=cfg.run_id, version=version, pending=pending, where=checkpoint or self.args.output_dir, reconnect=cfg.reconnect)

        def train(self, resume_from_checkpoint: Any = None, **kwargs: Any) -> Any:
            """As ``Trainer.train``, except that ``resume_from_checkpoint=None``
            resumes from the newest checkpoint in ``output_dir`` when there is
            one: a restarted trainer pod must continue the run, and starting
            over from version 0 would be refused by the control plane's step.
            Pass ``False`` to start from the initial weights."""
            checkpoint: Optional[str] = None
            if resume_from_checkpoint is None or resume_from_checkpoint is True:
                checkpoint = get_last_checkpoint(self.args.output_dir) if os.path.isdir(self.args.output_dir) else None
                if resume_from_checkpoint is True and checkpoint is None:
                    raise ValueError(f"resume_from_checkpoint=True but {self.args.output_dir} holds no checkpoint")
                resume_from_checkpoint = checkpoint
            elif isinstance(resume_from_checkpoint, str):
                checkpoint = resume_from_checkpoint
            else:
                resume_from_checkpoint = None
            version = 0
            if checkpoint:
                from transformers import TrainerState

                version = TrainerState.load_from_json(os.path.join(checkpoint, "trainer_state.json")).global_step
            settings = None
            if self.accelerator.is_main_process:
                self._tandem_feeder = self._make_feeder(version, checkpoint)
                w = self._tandem_feeder.start()
                settings = (w.max_steps, micro_batch_size(w, self.args.per_device_train_batch_size, self.args.gradient_accumulation_steps, self.accelerator.num_processes))
            max_steps, micro = self._tandem_collective.broadcast_object(settings)
            self.args.max_steps = max_steps
            self._tandem_micro = micro
            try:
                return super().train(resume_from_checkpoint=resume_from_checkpoint, **kwargs)
            finally:
                if self._tandem_feeder is not None:
                    self._tandem_feeder.finish(self.state.global_step)
                if self._tandem_reward is not None:
                    self._tandem_reward.stop()

        def get_train_dataloader(self) -> Any:
            return _Loader(self, self._tandem_micro)

        def _sync_weight(self) -> None:
            # Tandem's coordinator decides when weights move (SendWeights,
            # served between steps); TRL's callbacks still call this.
            if self._tandem_feeder is not None:
                self.model_version = self._tandem_feeder.version

    return TandemAsyncGRPOTrainer

