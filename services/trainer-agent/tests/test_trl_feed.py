"""The TRL layer's TRL-independent half, and the subclass wiring against a
stub of the TRL/transformers API surface it relies on (TRL itself is not
installable here; see trl_integration's docstring for the real references)."""

from __future__ import annotations

import math
import sys
import types
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
import torch

from tandem_trainer.attach_session import Welcome
from tandem_trainer.backoff import BackoffPolicy
from tandem_trainer.batch import decode_batch
from tandem_trainer.checkpoint import CheckpointMeta
from tandem_trainer.client import TrainerClient
from tandem_trainer.config import AgentConfig
from tandem_trainer.packing import ModelLayout
from tandem_trainer.trainer_session import TrainerSession
from tandem_trainer.trl_feed import StepFeeder, group_id_number, micro_batch_size, read_sidecar, rollout_samples, trl_advantages, write_sidecar
from tandem_trainer.weight_sender import WeightSender
from tests.fake_control_plane import FakeControlPlane, make_group
from tests.procs import wait_until


def test_samples_have_trl_rollout_format() -> None:
    batch = decode_batch("r", 3, [make_group("17", 3, 2, group_size=2, reward_base=1.0)], reserved=False, dropped_stale=0)
    s = rollout_samples(batch)
    assert len(s) == 2
    assert s[1]["input_ids"] == [1, 40, 41, 6, 7, 2]
    assert s[1]["completion_mask"] == [0, 0, 0, 1, 1, 1]
    assert s[1]["old_log_probs"] == [0.0, 0.0, 0.0, -0.5, -2.0, -0.25]
    # TRL AsyncRolloutWorker: (r - mean) / (std + 1e-8); rewards 1, 2 -> -1, +1.
    assert np.allclose([x["advantage"] for x in s], [-1.0, 1.0], atol=1e-6)
    assert s[0]["group_id"] == 17 and s[0]["metrics"]["reward"] == 1.0 and s[0]["metrics"]["tandem/age"] == 1.0
    assert group_id_number("abc") == group_id_number("abc") != group_id_number("abd")


def test_unscored_completions_get_trl_advantage_zero_and_stay_out_of_mean_and_std() -> None:
    """TRL AsyncRolloutWorker._score_group: a completion every reward
    function returned None for has reward NaN and advantage 0, and the
    group's mean/std are over the scored ones only. Tandem learns it from
    Trajectory.unscored (the endpoint answered null; reward 0 on the wire)."""
    batch = decode_batch(
        "r",
        3,
        [make_group("17", 3, 2, group_size=3, unscored={0}), make_group("18", 3, 2, group_size=3)],
        reserved=False,
        dropped_stale=0,
    )
    assert [t.unscored for t in batch.groups[0].trajectories] == [True, False, False]
    assert batch.groups[0].unscored.tolist() == [True, False, False] and not batch.groups[1].unscored.any()
    s = rollout_samples(batch)
    assert np.allclose([x["advantage"] for x in s[:3]], [0.0, -1.0, 1.0], atol=1e-6)  # over rewards 1, 2 only
    assert np.isnan(s[0]["metrics"]["reward"]) and s[1]["metrics"]["reward"] == 1.0
    assert s[0]["metrics"]["reward_std"] == s[1]["metrics"]["reward_std"] == 0.5
    # The other group's c0 was scored (reward 0): (r - mean) / std over 0, 1, 2.
    assert np.allclose([x["advantage"] for x in s[3:]], [-1.2247449, 0.0, 1.2247449], atol=1e-6)
    assert not np.isnan(s[3]["metrics"]["reward"]) and s[3]["metrics"]["reward"] == 0.0
    # A middle completion unscored: the rest keep TRL's normalisation over themselves.
    mid = decode_batch("r", 3, [make_group("20", 3, 2, group_size=3, reward_base=5.0, unscored={1})], reserved=False, dropped_stale=0)
    assert np.allclose(trl_advantages(mid.groups[0]), [-1.0, 0.0, 1.0], atol=1e-6)
    # All unscored: every advantage 0, reward_std NaN (TRL: reward_mean = reward_std = nan).
    none = rollout_samples(decode_batch("r", 3, [make_group("19", 3, 2, group_size=2, unscored={0, 1})], reserved=False, dropped_stale=0))
    assert [x["advantage"] for x in none] == [0.0, 0.0]
    assert all(np.isnan(x["metrics"]["reward"]) and np.isnan(x["metrics"]["reward_std"]) for x in none)


def test_plain_agent_advantages_apply_the_same_rule() -> None:
    """Group.advantages (the plain agent's collate): unscored rows get 0 and
    stay out of the group's mean and std; collate exposes the mask."""
    from tandem_trainer.collate import collate

    batch = decode_batch("r", 3, [make_group("17", 3, 2, group_size=3, unscored={0}), make_group("19", 3, 2, group_size=2, unscored={0, 1})], reserved=False, dropped_stale=0)
    g = batch.groups[0]
    assert np.allclose(g.advantages(), [0.0, -0.5 / (0.5 + 1e-4), 0.5 / (0.5 + 1e-4)], atol=1e-6)
    assert np.allclose(g.advantages(scale_rewards=False), [0.0, -0.5, 0.5], atol=1e-6)
    assert batch.groups[1].advantages().tolist() == [0.0, 0.0]
    seqs = collate(batch)
    assert seqs.unscored.tolist() == [True, False, False, True, True]
    assert seqs.advantages[0] == 0.0 and seqs.advantages[3] == seqs.advantages[4] == 0.0


def test_batch_shape_rule_names_the_fields() -> None:
    w = Welcome("r", 0, 10, 1, batch_groups=4, group_size=8)
    assert micro_batch_size(w, per_device_train_batch_size=8, gradient_accumulation_steps=2, num_processes=2) == 16
    with pytest.raises(ValueError, match=r"per_device_train_batch_size \(8\).*algorithm.batchGroups \(4\)"):
        micro_batch_size(w, 8, 1, 1)


def test_sidecar_round_trip(tmp_path: Path) -> None:
    meta = CheckpointMeta("r", 5, 4, ("a", "b"))
    write_sidecar(tmp_path, meta)
    assert read_sidecar(tmp_path) == meta and read_sidecar(tmp_path / "none") is None


@pytest.fixture
def cp() -> Iterator[FakeControlPlane]:
    fake = FakeControlPlane(max_steps=3, batch_groups=2, group_size=2).start()
    yield fake
    fake.stop()


def make_feeder(cp: FakeControlPlane, version: int = 0, pending: CheckpointMeta | None = None) -> StepFeeder:
    model = torch.nn.Linear(2, 2)
    client = TrainerClient(cp.address, "run-1", "t", rpc_timeout_s=2.0)
    sender = WeightSender(lambda: model.named_parameters(), lambda spec: None, layout=ModelLayout.from_named_tensors(model.named_parameters()))  # type: ignore[arg-type, return-value]
    session = TrainerSession(client, sender, pull_slice_ms=50, sync_grace_s=0.0)
    return StepFeeder(session, run_id="run-1", version=version, pending=pending, where="ckpt", reconnect=BackoffPolicy(0.02, 0.1, 5.0))


def test_feeder_acks_a_step_only_when_the_next_is_asked_for(cp: FakeControlPlane) -> None:
    cp.fill(range(3))
    f = make_feeder(cp)
    assert f.start().max_steps == 3
    b0 = f.next_batch()
    assert b0 is not None and b0.step == 0 and cp.acks == []
    b1 = f.next_batch()
    assert b1 is not None and b1.step == 1 and cp.acks == [0]
    assert f.checkpoint_meta(2) == CheckpointMeta("run-1", 2, 1, ("1-0", "1-1"))
    assert f.next_batch().step == 2  # type: ignore[union-attr]
    assert f.next_batch() is None and cp.acks == [0, 1, 2]
    wait_until(lambda: [w.policy_version for w in cp.messages("weights_ready")][-1:] == [3], 5, "WeightsReady(3)")


def test_feeder_survives_lost_acks_and_pulls(cp: FakeControlPlane) -> None:
    import grpc

    cp.fill(range(3))
    f = make_feeder(cp)
    f.start()
    assert f.next_batch().step == 0  # type: ignore[union-attr]
    cp.inject("AckBatch", grpc.StatusCode.UNAVAILABLE)
    cp.inject("PullBatch", grpc.StatusCode.UNAVAILABLE)
    assert f.next_batch().step == 1  # type: ignore[union-attr]
    assert f.next_batch().step == 2  # type: ignore[union-attr]
    assert f.next_batch() is None
    assert cp.acks == [0, 1, 2] and len(cp.hellos) >= 2


def test_feeder_finish_acks_only_a_completed_step(cp: FakeControlPlane) -> None:
    cp.fill(range(3))
    f = make_feeder(cp)
    f.start()
    f.next_batch()
    f.finish(trained_through=0)  # step 0 never finished training
    assert cp.acks == []
    g = make_feeder(cp)
    g.start()
    g.next_batch()  # the reserved step 0 again
    g.finish(trained_through=1)
    assert cp.acks == [0]


def test_feeder_settles_a_saved_unacked_step(cp: FakeControlPlane) -> None:
    cp.fill(range(3))
    cp.next_step = 1
    cp.served[1] = cp.ready.pop(1)
    f = make_feeder(cp, version=2, pending=CheckpointMeta("run-1", 2, 1, ("1-0", "1-1")))
    f.start()
    assert cp.acks == [1]
    assert f.next_batch().step == 2  # type: ignore[union-attr]


# -- the subclass against a stub of the API it uses ------------------------


def install_stubs(monkeypatch: pytest.MonkeyPatch, calls: dict[str, Any]) -> None:
    """Minimal stand-ins for transformers/trl names trl_integration imports,
    with the behaviour it relies on: Trainer.train iterates the dataloader,
    gradient_accumulation_steps micro-batches per optimizer step, up to
    args.max_steps, calling on_step_end and on_save after each step and
    stopping when a callback sets control.should_training_stop. The
    AsyncGRPOTrainer constructor does what TRL's does with the dataset and
    max_steps (trl f2cd5771 async_grpo_trainer.py: train_dataset required
    without an environment_factory; with max_steps <= 0 and a dataset with a
    length, the epoch stop _EpochStopCallback and a max_steps ceiling)."""

    class TrainerCallback:
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            pass

        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            pass

    class TrainerState:
        def __init__(self) -> None:
            self.global_step = 0
            self.is_world_process_zero = True

        @classmethod
        def load_from_json(cls, path: str) -> "TrainerState":
            return cls()

    class Accelerator:
        is_main_process = True
        num_processes = 1
        process_index = 0
        device = "cpu"

        def reduce(self, tensor: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
            return tensor  # one process

    class AsyncGRPOConfig(types.SimpleNamespace):
        """transformers.TrainingArguments / AsyncGRPOConfig defaults used here."""

        def __init__(self, output_dir: str, **kw: Any) -> None:
            defaults: dict[str, Any] = dict(
                max_steps=-1, num_train_epochs=3.0, per_device_train_batch_size=8, gradient_accumulation_steps=1,
                num_generations=8, max_tool_calling_iterations=None, token_budget=None, ignore_data_skip=False,
            )
            super().__init__(output_dir=output_dir, **{**defaults, **kw})

    class _EpochStopCallback(TrainerCallback):
        def __init__(self, trainer: Any, target_groups: int) -> None:
            self._trainer = trainer
            self._target = target_groups

        def on_step_end(self, _args: Any, _state: Any, control: Any, **_kwargs: Any) -> None:
            acc = self._trainer.accelerator
            reached = torch.tensor(int(len(self._trainer._trained_groups) >= self._target), device=acc.device)
            if int(acc.reduce(reached, reduction="sum").item()) >= 1:
                control.should_training_stop = True

    class AsyncGRPOTrainer:
        def __init__(
            self,
            model: str,
            reward_funcs: Any = None,
            args: Any = None,
            train_dataset: Any = None,
            processing_class: Any = None,
            callbacks: Any = None,
            optimizers: Any = (None, None),
            tools: Any = None,
            environment_factory: Any = None,
            rollout_worker: Any = None,
            weight_transfer: Any = None,
        ) -> None:
            if args is None:
                args = AsyncGRPOConfig(f"{model.split('/')[-1]}-AsyncGRPO")
            calls["rollout_worker"], calls["weight_transfer"] = rollout_worker, weight_transfer
            calls["reward_funcs"], calls["init_max_steps"] = reward_funcs, args.max_steps
            if train_dataset is None and environment_factory is None:
                raise ValueError("`train_dataset` is required unless an `environment_factory` is provided.")
            self.model = torch.nn.Linear(2, 2)
            self.args = args
            self.accelerator = Accelerator()
            self.state = TrainerState()
            self.processing_class = types.SimpleNamespace(pad_token_id=0)
            self.callbacks: list[Any] = []
            self._trained_groups: set[int] = set()
            self._epoch_stop_groups: Any = None
            samples_per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps * self.accelerator.num_processes
            if args.max_steps <= 0 and train_dataset is not None and hasattr(train_dataset, "__len__"):
                self._epoch_stop_groups = math.ceil(args.num_train_epochs * len(train_dataset))
                max_rows_per_conv = args.max_tool_calling_iterations + 1 if args.max_tool_calling_iterations is not None else 32
                samples_per_epoch = len(train_dataset) * args.num_generations * max_rows_per_conv
                args.max_steps = math.ceil(args.num_train_epochs * samples_per_epoch / samples_per_step)
            self.model_version = 0
            if self._epoch_stop_groups is not None:
                self.add_callback(_EpochStopCallback(self, self._epoch_stop_groups))

        def add_callback(self, cb: Any) -> None:
            self.callbacks.append(cb)

        def _streaming_iter(self) -> Iterator[tuple[str, torch.Tensor]]:
            yield from ((n, p.detach()) for n, p in self.model.named_parameters())

        def train(self, resume_from_checkpoint: Any = None) -> None:
            it = iter(self.get_train_dataloader())  # type: ignore[attr-defined]
            control = types.SimpleNamespace(should_training_stop=False)
            while self.state.global_step < self.args.max_steps:
                micro = [next(it) for _ in range(self.args.gradient_accumulation_steps)]
                calls.setdefault("micro", []).append(micro)
                self.state.global_step += 1
                self._sync_weight()  # type: ignore[attr-defined]
                for cb in self.callbacks:
                    cb.on_step_end(self.args, self.state, control)
                # transformers saves checkpoint-<global_step>/, then calls on_save.
                Path(self.args.output_dir, f"checkpoint-{self.state.global_step}").mkdir(parents=True, exist_ok=True)
                for cb in self.callbacks:
                    cb.on_save(self.args, self.state, control)
                if control.should_training_stop:
                    break

    class FixedCountBatcher:
        def __init__(self, dataset: Any, num_processes: int, microbatch_size: int) -> None:
            self.dataset, self.n, self.size = dataset, num_processes, microbatch_size

        def __iter__(self) -> Iterator[list[list[Any]]]:
            items = list(self.dataset)
            for i in range(0, len(items), self.size):
                chunk = items[i : i + self.size]
                yield [chunk[r :: self.n] for r in range(self.n)]

    class DataCollatorForRollout:
        def __init__(self, pad_token_id: int, num_processes: int = 1, groups_trained: Any = None) -> None:
            self.groups = groups_trained

        def __call__(self, examples: list[Any]) -> dict[str, Any]:
            (rows,) = examples
            self.groups.update(e["group_id"] for row in rows for e in row)
            calls.setdefault("examples", []).extend(e for row in rows for e in row)
            return {"n": torch.tensor([len(r) for r in rows]), "metrics": {"reward": torch.tensor([[e["metrics"]["reward"] for e in rows[0]]])}}

    mods = {
        "transformers": types.ModuleType("transformers"),
        "transformers.trainer_utils": types.ModuleType("transformers.trainer_utils"),
        "trl": types.ModuleType("trl"),
        "trl.experimental": types.ModuleType("trl.experimental"),
        "trl.experimental.async_grpo": types.ModuleType("trl.experimental.async_grpo"),
        "trl.experimental.async_grpo.async_grpo_trainer": types.ModuleType("trl.experimental.async_grpo.async_grpo_trainer"),
    }
    mods["transformers"].TrainerCallback = TrainerCallback  # type: ignore[attr-defined]
    mods["transformers"].TrainerState = TrainerState  # type: ignore[attr-defined]
    mods["transformers.trainer_utils"].get_last_checkpoint = lambda d: None  # type: ignore[attr-defined]
    mods["trl.experimental.async_grpo"].AsyncGRPOConfig = AsyncGRPOConfig  # type: ignore[attr-defined]
    mods["trl.experimental.async_grpo"].AsyncGRPOTrainer = AsyncGRPOTrainer  # type: ignore[attr-defined]
    t = mods["trl.experimental.async_grpo.async_grpo_trainer"]
    t.AsyncGRPOTrainer, t.FixedCountBatcher, t.DataCollatorForRollout = AsyncGRPOTrainer, FixedCountBatcher, DataCollatorForRollout  # type: ignore[attr-defined]
    t._EpochStopCallback = _EpochStopCallback  # type: ignore[attr-defined]
    for name, mod in mods.items():
        monkeypatch.setitem(sys.modules, name, mod)


#: A placeholder dataset (TRL's constructor requires one; Tandem does not read it).
PLACEHOLDER_DATASET = [{"prompt": [{"role": "user", "content": ""}]}] * 2


def make_config(cp: FakeControlPlane) -> AgentConfig:
    return AgentConfig(server=cp.address, run_id="run-1", trainer_id="t", checkpoint_dir="", transfer_backend="gloo", pull_slice_ms=50, sync_grace_s=0.0)


def trl_args(tmp_path: Path, **kw: Any) -> types.SimpleNamespace:
    """The AsyncGRPOConfig fields the stub reads, at transformers' defaults
    (max_steps -1, num_train_epochs 3) unless given."""
    return types.SimpleNamespace(
        **{
            "output_dir": str(tmp_path),
            "per_device_train_batch_size": 2,
            "gradient_accumulation_steps": 2,
            "max_steps": -1,
            "num_train_epochs": 3.0,
            "num_generations": 2,
            "max_tool_calling_iterations": None,
            "token_budget": None,
            "ignore_data_skip": False,
            **kw,
        }
    )


@pytest.fixture
def stubbed_trl(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, dict[str, Any]]]:
    import tandem_trainer.trl_integration as ti

    ti._trainer_class.cache_clear()
    calls: dict[str, Any] = {}
    install_stubs(monkeypatch, calls)
    try:
        yield ti, calls
    finally:
        ti._trainer_class.cache_clear()


def test_subclass_wiring_with_a_stubbed_trl(cp: FakeControlPlane, tmp_path: Path, stubbed_trl: tuple[Any, dict[str, Any]]) -> None:
    ti, calls = stubbed_trl
    cp.fill(range(3))
    args = trl_args(tmp_path)
    trainer = ti.TandemAsyncGRPOTrainer(model="tiny", args=args, train_dataset=PLACEHOLDER_DATASET, tandem=make_config(cp))
    assert calls["rollout_worker"] is not None and calls["weight_transfer"] is not None
    trainer.train()
    assert args.max_steps == 3 and args.ignore_data_skip is True  # from the run's Welcome
    assert cp.acks == [0, 1, 2]  # the last one at the end of train()
    assert len(calls["micro"]) == 3 and all(len(m) == 2 for m in calls["micro"])
    assert read_sidecar(tmp_path / "checkpoint-2") == CheckpointMeta("run-1", 2, 1, ("1-0", "1-1"))


def test_the_runs_max_steps_governs_not_trls_epoch_stop(cp: FakeControlPlane, tmp_path: Path, stubbed_trl: tuple[Any, dict[str, Any]]) -> None:
    """With max_steps <= 0 TRL would stop after num_train_epochs x
    len(train_dataset) distinct groups (here 1 x 2: after one step), though
    the dataset is only a placeholder: the run's 3 steps must all train."""
    ti, calls = stubbed_trl
    cp.fill(range(3))
    args = trl_args(tmp_path, num_train_epochs=1.0)
    trainer = ti.TandemAsyncGRPOTrainer(model="tiny", args=args, train_dataset=PLACEHOLDER_DATASET, tandem=make_config(cp))
    assert calls["init_max_steps"] > 0 and trainer._epoch_stop_groups is None
    assert not [cb for cb in trainer.callbacks if type(cb).__name__ == "_EpochStopCallback"]
    assert args.max_steps == -1  # the user's value until train() sets the run's
    trainer.train()
    assert len(calls["micro"]) == 3 and cp.acks == [0, 1, 2] and trainer.state.global_step == 3


def test_default_config_gets_no_epoch_stop_either(cp: FakeControlPlane, tmp_path: Path, stubbed_trl: tuple[Any, dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    ti, calls = stubbed_trl
    monkeypatch.chdir(tmp_path)
    trainer = ti.TandemAsyncGRPOTrainer("org/tiny", tandem=make_config(cp), train_dataset=PLACEHOLDER_DATASET)
    assert trainer.args.output_dir == "tiny-AsyncGRPO"  # TRL's default config
    assert trainer._epoch_stop_groups is None and trainer.args.max_steps == -1


def test_a_positive_token_budget_is_reported_as_ignored(cp: FakeControlPlane, tmp_path: Path, stubbed_trl: tuple[Any, dict[str, Any]]) -> None:
    import logging

    ti, _ = stubbed_trl
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("tandem_trainer.trl")
    logger.addHandler(handler)
    try:
        ti.TandemAsyncGRPOTrainer("tiny", args=trl_args(tmp_path, token_budget=0), train_dataset=PLACEHOLDER_DATASET, tandem=make_config(cp))
        assert not [r for r in records if "token_budget" in r.getMessage()]  # <= 0: fixed count, as Tandem does
        ti.TandemAsyncGRPOTrainer("tiny", args=trl_args(tmp_path, token_budget=4096), train_dataset=PLACEHOLDER_DATASET, tandem=make_config(cp))
    finally:
        logger.removeHandler(handler)
    (warning,) = [r for r in records if "token_budget" in r.getMessage()]
    assert warning.levelno == logging.WARNING and warning.fields["token_budget"] == 4096  # type: ignore[attr-defined]


def test_served_reward_functions_and_unscorable_completions_in_training(
    cp: FakeControlPlane, tmp_path: Path, stubbed_trl: tuple[Any, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Positional arguments as TRL takes them; reward_funcs served with
    TANDEM_REWARD_PORT, called with chat messages; a completion they could
    not score trains with advantage 0 and a NaN reward metric, as in TRL."""
    from tests.procs import free_port, http_json

    ti, calls = stubbed_trl
    seen: list[Any] = []

    def skip_c0(prompts: list[Any], completions: list[Any], **kw: Any) -> list[Any]:
        seen.append(completions)
        return [None if c[0]["content"] == "c0" else 1.0 for c in completions]

    port = free_port()
    monkeypatch.setenv("TANDEM_REWARD_PORT", str(port))
    monkeypatch.setenv("TANDEM_REWARD_HOST", "127.0.0.1")
    cp.fill(range(3))
    trainer = ti.TandemAsyncGRPOTrainer("tiny", [skip_c0], trl_args(tmp_path), PLACEHOLDER_DATASET, tandem=make_config(cp))
    assert calls["reward_funcs"] == [skip_c0] and trainer._epoch_stop_groups is None
    # What the rollout worker sends for step 0's groups (fake batches: prompt "prompt <id>", texts c0, c1).
    for gid in ("0-0", "0-1"):
        status, out = http_json("POST", f"http://127.0.0.1:{port}/", {"runId": "run-1", "prompts": [f"prompt {gid}"] * 2, "completions": ["c0", "c1"], "answers": [None, None]})
        assert status == 200 and out["rewards"] == [None, 1.0]
    assert seen[0] == [[{"role": "assistant", "content": "c0"}], [{"role": "assistant", "content": "c1"}]]
    # ... and what it then stores: c0 with reward 0 and Trajectory.unscored.
    cp.ready[0] = [make_group(f"0-{i}", 0, 0, 2, unscored={0}) for i in range(2)]
    trainer.train()
    assert cp.acks == [0, 1, 2]
    examples = calls["examples"]
    step0, later = examples[:4], examples[4:]
    # c0 unscorable: advantage 0, out of the mean/std, so c1 (alone) also gets 0; TRL's NaN reward metric.
    assert [e["advantage"] for e in step0] == [0.0, 0.0, 0.0, 0.0]
    assert [np.isnan(e["metrics"]["reward"]) for e in step0] == [True, False, True, False]
    # Steps 1, 2 carry no unscored completion: plain GRPO advantages.
    assert np.allclose([e["advantage"] for e in later], [-1.0, 1.0] * 4, atol=1e-6)
    with pytest.raises(OSError):
        http_json("GET", f"http://127.0.0.1:{port}/health")  # stopped with train()
