"""The trainer-protocol client against an in-process gRPC TrainerService."""

from __future__ import annotations

import threading
import time
from typing import Iterator

import grpc
import numpy as np
import pytest

from tandem_trainer._proto.tandem.v1 import trainer_service_pb2 as pb
from tandem_trainer.backoff import BackoffPolicy
from tandem_trainer.client import TrainerClient, run_with_reconnect
from tandem_trainer.errors import AgentError, TandemRpcError
from tandem_trainer.log import get_logger
from tests.fake_control_plane import FakeControlPlane, send_weights
from tests.procs import free_port, wait_until


@pytest.fixture
def cp() -> Iterator[FakeControlPlane]:
    fake = FakeControlPlane(max_steps=3).start()
    yield fake
    fake.stop()


def client_for(cp: FakeControlPlane) -> TrainerClient:
    return TrainerClient(cp.address, "run-1", "t-1", rpc_timeout_s=2.0, reconnect=BackoffPolicy(0.05, 0.2, 5.0))


def test_attach_says_hello_then_weights_ready_and_gets_welcome(cp: FakeControlPlane) -> None:
    c = client_for(cp)
    session = c.attach(4, on_send_weights=lambda m: None, update_info_json='{"names":[]}')
    assert session.welcome is not None and session.welcome.next_step == 0 and session.welcome.max_steps == 3
    wait_until(lambda: len(cp.inbox) >= 2, 5, "hello + weights_ready")
    assert cp.inbox[0].WhichOneof("kind") == "hello" and cp.inbox[0].hello.policy_version == 4
    # WeightsReady travels right behind the hello, before anything else.
    assert cp.inbox[1].weights_ready.policy_version == 4 and cp.inbox[1].weights_ready.update_info_json == '{"names":[]}'
    session.close()
    c.close()


def test_commands_reach_callbacks_and_run_ended_is_recorded(cp: FakeControlPlane) -> None:
    c = client_for(cp)
    got: list[pb.SendWeights] = []
    ended = threading.Event()
    session = c.attach(0, on_send_weights=got.append, on_run_ended=lambda info: ended.set())
    cp.command(send_weights(0, "abc", 1234))
    wait_until(lambda: got, 5, "send_weights callback")
    assert got[0].sync_id == "abc" and got[0].master_port == 1234
    cp.command(pb.ControlMessage(run_ended=pb.RunEnded(phase="Succeeded", message="done")))
    assert ended.wait(5)
    assert session.run_ended is not None and session.run_ended.phase == "Succeeded"
    session.close()
    c.close()


def test_pull_decodes_packed_arrays_and_marks_reserved(cp: FakeControlPlane) -> None:
    cp.fill(range(0, 1))
    c = client_for(cp)
    r = c.pull_batch(0, 0, expected_group_size=2, max_trajectory_age_steps=1)
    assert r.state == "ready" and r.batch is not None and not r.batch.reserved
    g = r.batch.groups[0]
    assert g.trajectories[1].token_ids.dtype == np.int32 and g.trajectories[1].token_ids.tolist() == [6, 7, 2]
    assert g.trajectories[1].logprobs.dtype == np.float32 and g.trajectories[1].logprobs.tolist() == [-0.5, -2.0, -0.25]
    assert g.prompt_token_ids.tolist() == [1, 40, 41]
    again = c.pull_batch(0, 0)
    assert again.batch is not None and again.batch.reserved and again.batch.group_ids == r.batch.group_ids
    ack = c.ack_batch(0)
    assert ack.policy_version == 1 and not ack.duplicate and c.ack_batch(0).duplicate
    assert c.pull_batch(1, 0).state == "not_ready"
    assert c.pull_batch(3, 0).state == "run_ended"
    c.close()


def test_reason_trailer_drives_resync(cp: FakeControlPlane) -> None:
    cp.next_step = 2
    c = client_for(cp)
    with pytest.raises(TandemRpcError) as info:
        c.pull_batch(1, 0)
    err = info.value
    assert err.code == grpc.StatusCode.FAILED_PRECONDITION and err.reason == "STEP_ALREADY_TRAINED"
    assert err.needs_resync and not err.retryable
    c.close()


def test_unreachable_control_plane_is_retryable() -> None:
    c = TrainerClient(f"127.0.0.1:{free_port()}", "run-1", "t", rpc_timeout_s=0.5)
    with pytest.raises(TandemRpcError) as info:
        c.pull_batch(0, 0)
    assert info.value.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED) and info.value.retryable
    c.close()


def test_attach_times_out_without_welcome() -> None:
    # A server that accepts the stream but never answers.
    class Silent(FakeControlPlane):
        def Attach(self, request_iterator, context):  # type: ignore[no-untyped-def, override]
            time.sleep(2)
            return iter(())

    fake = Silent().start()
    try:
        c = TrainerClient(fake.address, "run-1", "t", rpc_timeout_s=0.3)
        with pytest.raises(TandemRpcError) as info:
            c.attach(0, on_send_weights=lambda m: None)
        assert info.value.code == grpc.StatusCode.DEADLINE_EXCEEDED and info.value.retryable
        c.close()
    finally:
        fake.stop()


def test_replaced_trainer_is_not_reconnected() -> None:
    def body() -> None:
        raise TandemRpcError(grpc.StatusCode.ABORTED, "replaced", "TRAINER_REPLACED")

    with pytest.raises(AgentError, match="another trainer"):
        run_with_reconnect(body, policy=BackoffPolicy(), progress=lambda: 0, stop=threading.Event(), log=get_logger("t"), sleep=lambda s: None)
