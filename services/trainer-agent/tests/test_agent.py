"""The agent loop against the in-process fake control plane: order of
train/checkpoint/ack/WeightsReady, resume rules, reconnects, weight sync
at safe points. (The same loop against the real control plane is in the
integration tests.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Iterator

import grpc
import pytest
import torch

from tandem_trainer.agent import TrainerAgent, TrainingSetup
from tandem_trainer.backoff import BackoffPolicy
from tandem_trainer.batch import Batch
from tandem_trainer.checkpoint import CheckpointMeta, CheckpointStore
from tandem_trainer.config import AgentConfig
from tandem_trainer.errors import AgentError
from tandem_trainer.packing import ModelLayout
from tandem_trainer.weight_sender import WeightSender
from tests.fake_control_plane import FakeControlPlane, make_group, send_weights
from tests.procs import read_jsonl


class RecordingTransport:
    def __init__(self, log: list[Any]) -> None:
        self.log = log

    def send(self, named: Iterable[tuple[str, torch.Tensor]], layout: ModelLayout, buffer_size_bytes: int, num_buffers: int, deadline: float) -> int:
        tensors = [t.clone() for _, t in named]
        self.log.append(("send", tensors))
        return sum(t.numel() * t.element_size() for t in tensors)

    def close(self) -> None:
        self.log.append(("close", None))


@pytest.fixture
def cp() -> Iterator[FakeControlPlane]:
    fake = FakeControlPlane(max_steps=3, batch_groups=2, group_size=2).start()
    yield fake
    fake.stop()


def make_agent(cp: FakeControlPlane, tmp: Path, on_train: Any = None) -> tuple[TrainerAgent, list[int], list[Any]]:
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    trained: list[int] = []

    def train_step(batch: Batch) -> dict[str, Any]:
        trained.append(batch.step)
        if on_train:
            on_train(batch)
        loss = model(torch.ones(1, 3)).sum() * float(batch.step + 1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"loss": float(loss)}

    setup = TrainingSetup(model, opt, train_step)
    transport_log: list[Any] = []
    sender = WeightSender(setup.tensors, lambda spec: RecordingTransport(transport_log), buffer_size_bytes=64)
    config = AgentConfig(
        server=cp.address,
        run_id="run-1",
        trainer_id="t",
        checkpoint_dir=str(tmp / "ckpt"),
        pull_slice_ms=50,
        rpc_timeout_s=2.0,
        sync_grace_s=0.3,
        reconnect=BackoffPolicy(0.02, 0.1, 10.0),
        step_log=str(tmp / "steps.jsonl"),
    )
    return TrainerAgent(config, setup, sender=sender), trained, transport_log


def test_trains_checkpoints_acks_and_reports_each_step(cp: FakeControlPlane, tmp_path: Path) -> None:
    cp.fill(range(3))
    agent, trained, _ = make_agent(cp, tmp_path)
    report = agent.run()
    assert report.outcome == "finished" and trained == [0, 1, 2] and cp.acks == [0, 1, 2]
    ready = cp.messages("weights_ready")
    assert [w.policy_version for w in ready] == [0, 1, 2, 3]
    assert ready[0].update_info_json and not ready[1].update_info_json  # layout once per session
    meta = CheckpointStore(tmp_path / "ckpt").load(torch.nn.Linear(3, 2), None)
    assert meta == CheckpointMeta("run-1", 3, 2, ("2-0", "2-1"))
    steps = [e for e in read_jsonl(tmp_path / "steps.jsonl") if e["event"] == "step"]
    assert [e["groups"] for e in steps] == [["0-0", "0-1"], ["1-0", "1-1"], ["2-0", "2-1"]]


def test_send_weights_is_served_at_a_safe_point_with_committed_weights(cp: FakeControlPlane, tmp_path: Path) -> None:
    cp.fill(range(3))
    snapshots: dict[int, list[torch.Tensor]] = {}

    def on_train(batch: Batch) -> None:
        if batch.step == 0:
            # Arrives mid-step: must wait until step 0 is committed.
            cp.command(send_weights(0, "s1", 1, group_id="run-s1", forms_group=True))

    agent, trained, transport = make_agent(cp, tmp_path, on_train)
    original = agent.setup.train_step

    def train_and_snapshot(batch: Batch) -> Any:
        out = original(batch)
        snapshots[batch.step + 1] = [p.detach().clone() for p in agent.setup.model.parameters()]
        return out

    agent.setup.train_step = train_and_snapshot
    agent.run()
    sent = cp.messages("weights_sent")
    assert len(sent) == 1 and sent[0].ok and sent[0].sync_id == "s1"
    # Served after step 0 was committed (normally at once, at that commit),
    # with the committed weights of the version it reports.
    version = sent[0].policy_version
    assert version in snapshots
    sends = [t for kind, t in transport if kind == "send"]
    assert len(sends) == 1 and all(torch.equal(a, b) for a, b in zip(sends[0], snapshots[version]))


def test_saved_but_unacked_step_is_acked_not_retrained(cp: FakeControlPlane, tmp_path: Path) -> None:
    # The previous process trained and checkpointed step 1, then died before its ack.
    cp.fill(range(3))
    cp.next_step = 1
    cp.served[1] = cp.ready.pop(1)
    agent, trained, _ = make_agent(cp, tmp_path)
    CheckpointStore(tmp_path / "ckpt").save(CheckpointMeta("run-1", 2, 1, ("1-0", "1-1")), agent.setup.model, agent.setup.optimizer)
    report = agent.run()
    assert report.resumed_from == 2 and trained == [2] and cp.acks == [1, 2]


def test_checkpoint_that_does_not_match_the_run_stops_the_agent(cp: FakeControlPlane, tmp_path: Path) -> None:
    cp.fill(range(3))
    agent, trained, _ = make_agent(cp, tmp_path)
    CheckpointStore(tmp_path / "ckpt").save(CheckpointMeta("run-1", 2, 1, ("x",)), agent.setup.model, None)
    with pytest.raises(AgentError, match="next step is 0 but the checkpoint"):
        agent.run()
    assert trained == [] and cp.acks == []


def test_reserved_batch_with_other_groups_is_not_acked(cp: FakeControlPlane, tmp_path: Path) -> None:
    cp.next_step = 1
    cp.served[1] = [make_group("other", 1, 0, 2)]
    agent, _, _ = make_agent(cp, tmp_path)
    CheckpointStore(tmp_path / "ckpt").save(CheckpointMeta("run-1", 2, 1, ("1-0", "1-1")), agent.setup.model, None)
    with pytest.raises(AgentError, match="other groups"):
        agent.run()
    assert cp.acks == []


def test_reconnects_after_unavailable_and_finishes(cp: FakeControlPlane, tmp_path: Path) -> None:
    cp.fill(range(3))
    cp.inject("PullBatch", grpc.StatusCode.UNAVAILABLE)
    cp.inject("AckBatch", grpc.StatusCode.UNAVAILABLE)  # ack lost: after re-attach it is settled from the checkpoint
    agent, trained, _ = make_agent(cp, tmp_path)
    report = agent.run()
    assert report.outcome == "finished" and trained == [0, 1, 2] and cp.acks == [0, 1, 2]
    assert len(cp.hellos) == 3


def test_run_closed_by_the_control_plane_ends_cleanly(cp: FakeControlPlane, tmp_path: Path) -> None:
    cp.fill(range(3))
    cp.inject("PullBatch", grpc.StatusCode.FAILED_PRECONDITION, "run run-1 is not open", "RUN_NOT_OPEN")
    agent, trained, _ = make_agent(cp, tmp_path)
    assert agent.run().outcome == "run_ended" and trained == []


def test_wrong_run_checkpoint_is_refused(cp: FakeControlPlane, tmp_path: Path) -> None:
    agent, _, _ = make_agent(cp, tmp_path)
    CheckpointStore(tmp_path / "ckpt").save(CheckpointMeta("other-run", 1, 0, ()), agent.setup.model, None)
    with pytest.raises(AgentError, match="belongs to run other-run"):
        agent.run()

