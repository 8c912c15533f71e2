"""The TRL layer's TRL-independent half, and the subclass wiring against a
stub of the TRL/transformers API surface it relies on (TRL itself is not
installable here; see trl_integration's docstring for the real references)."""

from __future__ import annotations

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
from tandem_trainer.trl_feed import StepFeeder, group_id_number, micro_batch_size, read_sidecar, rollout_samples, write_sidecar
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
    args.max_steps, calling on_save after each step."""

    class TrainerCallback:
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

    class AsyncGRPOTrainer:
        def __init__(self, model: Any, reward_funcs: Any = None, args: Any = None, train_dataset: Any = None, rollout_worker: Any = None, weight_transfer: Any = None) -> None:
            calls["rollout_worker"], calls["weight_transfer"] = rollout_worker, weight_transfer
            self.model = torch.nn.Linear(2, 2)
            self.args = args
            self.accelerator = Accelerator()
            self.state = TrainerState()
            self.processing_class = types.SimpleNamespace(pad_token_id=0)
            self._trained_groups: set[int] = set()
            self.callbacks: list[Any] = []
            self.model_version = 0

        def add_callback(self, cb: Any) -> None:
            self.callbacks.append(cb)

        def _streaming_iter(self) -> Iterator[tuple[str, torch.Tensor]]:
            yield from ((n, p.detach()) for n, p in self.model.named_parameters())

        def train(self, resume_from_checkpoint: Any = None) -> None:
            it = iter(self.get_train_dataloader())  # type: ignore[attr-defined]
            while self.state.global_step < self.args.max_steps:
                micro = [next(it) for _ in range(self.args.gradient_accumulation_steps)]
                calls.setdefault("micro", []).append(micro)
                self.state.global_step += 1
                self._sync_weight()  # type: ignore[attr-defined]
                # transformers saves checkpoint-<global_step>/, then calls on_save.
                Path(self.args.output_dir, f"checkpoint-{self.state.global_step}").mkdir(parents=True, exist_ok=True)
                for cb in self.callbacks:
                    cb.on_save(self.args, self.state, None)

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
    t = mods["trl.experimental.async_grpo.async_grpo_trainer"]
    t.AsyncGRPOTrainer, t.FixedCountBatcher, t.DataCollatorForRollout = AsyncGRPOTrainer, FixedCountBatcher, DataCollatorForRollout  # type: ignore[attr-defined]
    for name, mod in mods.items():
        monkeypatch.setitem(sys.modules, name, mod)


def test_subclass_wiring_with_a_stubbed_trl(cp: FakeControlPlane, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tandem_trainer.trl_integration as ti

    ti._trainer_class.cache_clear()
    calls: dict[str, Any] = {}
    install_stubs(monkeypatch, calls)
    cp.fill(range(3))
    args = types.SimpleNamespace(output_dir=str(tmp_path), per_device_train_batch_size=2, gradient_accumulation_steps=2, max_steps=-1, ignore_data_skip=False)
    config = AgentConfig(server=cp.address, run_id="run-1", trainer_id="t", checkpoint_dir="", transfer_backend="gloo", pull_slice_ms=50, sync_grace_s=0.0)
    try:
        trainer = ti.TandemAsyncGRPOTrainer(model="tiny", args=args, train_dataset=None, tandem=config)
        assert calls["rollout_worker"] is not None and calls["weight_transfer"] is not None
        trainer.train()
    finally:
        ti._trainer_class.cache_clear()
    assert args.max_steps == 3 and args.ignore_data_skip is True  # from the run's Welcome
    assert cp.acks == [0, 1, 2]  # the last one at the end of train()
    assert len(calls["micro"]) == 3 and all(len(m) == 2 for m in calls["micro"])
    assert read_sidecar(tmp_path / "checkpoint-2") == CheckpointMeta("run-1", 2, 1, ("1-0", "1-1"))


def test_conversational_detection_for_reward_functions() -> None:
    from tandem_trainer.trl_integration import _is_conversational

    assert _is_conversational([{"prompt": [{"role": "user", "content": "q"}]}])
    assert not _is_conversational([{"prompt": "q"}]) and not _is_conversational(None) and not _is_conversational([])
