"""An in-memory TrainerService (the broker's semantics, simplified) on a
real gRPC server on 127.0.0.1, for client and agent tests that need exact
control over answers and failures."""

from __future__ import annotations

import queue
import threading
from concurrent import futures
from typing import Any, Collection, Iterator, Optional

import grpc

from tandem_trainer._proto.tandem.v1 import trainer_service_pb2 as pb
from tandem_trainer._proto.tandem.v1 import trainer_service_pb2_grpc as pb_grpc
from tandem_trainer.batch import pack_float32, pack_int32

_END = object()


def make_group(group_id: str, step: int, version: int, group_size: int = 2, reward_base: float = 0.0, unscored: Collection[int] = ()) -> bytes:
    """Completion i: text ``c<i>``, reward ``reward_base + i``, or reward 0 and
    ``unscored`` (the reward endpoint answered null) for i in ``unscored``."""
    trajs = [
        pb.Trajectory(
            token_ids=pack_int32([5 + i, 6 + i, 2]),
            logprobs=pack_float32([-0.5, -1.0 - i, -0.25]),
            reward=0.0 if i in unscored else reward_base + i,
            min_policy_version=version,
            max_policy_version=version,
            finish_reason="stop",
            text=f"c{i}",
            unscored=i in unscored,
        )
        for i in range(group_size)
    ]
    return pb.PromptGroup(
        group_id=group_id,
        prompt_id=f"p{group_id}",
        target_step=step,
        min_policy_version=version,
        max_policy_version=version,
        prompt_token_ids=pack_int32([1, 40, 41]),
        trajectories=trajs,
        prompt_text=f"prompt {group_id}",
    ).SerializeToString()


class FakeControlPlane(pb_grpc.TrainerServiceServicer):
    def __init__(self, *, max_steps: int = 3, batch_groups: int = 2, group_size: int = 2, k: int = 1) -> None:
        self.max_steps = max_steps
        self.batch_groups = batch_groups
        self.group_size = group_size
        self.k = k
        self.next_step = 0
        self.ready: dict[int, list[bytes]] = {}
        self.served: dict[int, list[bytes]] = {}
        self.acks: list[int] = []
        self.inbox: list[pb.TrainerMessage] = []
        self.hellos: list[pb.TrainerHello] = []
        self.errors: dict[str, list[tuple[grpc.StatusCode, str, str]]] = {"PullBatch": [], "AckBatch": [], "Attach": []}
        self.outboxes: list["queue.Queue[Any]"] = []
        self.lock = threading.Lock()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
        pb_grpc.add_TrainerServiceServicer_to_server(self, self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.address = f"127.0.0.1:{self.port}"

    # -- test controls ----------------------------------------------------
    def fill(self, steps: range) -> None:
        """Makes the batches of ``steps`` available (ids "<step>-<i>")."""
        for s in steps:
            self.ready[s] = [make_group(f"{s}-{i}", s, max(0, s - self.k), self.group_size, float(s)) for i in range(self.batch_groups)]

    def inject(self, method: str, code: grpc.StatusCode, details: str = "injected", reason: str = "") -> None:
        self.errors[method].append((code, details, reason))

    def command(self, message: pb.ControlMessage) -> None:
        """Sends a command on the newest attach stream."""
        self.outboxes[-1].put(message)

    def end_streams(self) -> None:
        for box in self.outboxes:
            box.put(_END)

    def start(self) -> "FakeControlPlane":
        self.server.start()
        return self

    def stop(self) -> None:
        self.end_streams()
        self.server.stop(0)

    def _maybe_fail(self, method: str, context: grpc.ServicerContext) -> None:
        with self.lock:
            err = self.errors[method].pop(0) if self.errors[method] else None
        if err:
            code, details, reason = err
            if reason:
                context.set_trailing_metadata((("tandem-error-reason", reason),))
            context.abort(code, details)

    # -- TrainerService -----------------------------------------------------
    def Attach(self, request_iterator: Iterator[pb.TrainerMessage], context: grpc.ServicerContext) -> Iterator[pb.ControlMessage]:
        self._maybe_fail("Attach", context)
        first = next(request_iterator)
        assert first.WhichOneof("kind") == "hello"
        self.hellos.append(first.hello)
        self.inbox.append(first)
        box: "queue.Queue[Any]" = queue.Queue()
        self.outboxes.append(box)

        def read() -> None:
            try:
                for m in request_iterator:
                    self.inbox.append(m)
            except grpc.RpcError:
                pass
            box.put(_END)

        threading.Thread(target=read, daemon=True).start()
        yield pb.ControlMessage(
            welcome=pb.Welcome(
                run_id=first.hello.run_id,
                next_step=self.next_step,
                max_steps=self.max_steps,
                max_trajectory_age_steps=self.k,
                batch_groups=self.batch_groups,
                group_size=self.group_size,
            )
        )
        while True:
            item = box.get()
            if item is _END:
                return
            yield item

    def PullBatch(self, request: pb.PullBatchRequest, context: grpc.ServicerContext) -> pb.PullBatchResponse:
        self._maybe_fail("PullBatch", context)
        s = request.step
        with self.lock:
            if s < self.next_step:
                context.set_trailing_metadata((("tandem-error-reason", "STEP_ALREADY_TRAINED"),))
                context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"step {s} was already trained")
            if s >= self.max_steps:
                return pb.PullBatchResponse(run_id=request.run_id, step=s, state=pb.BATCH_STATE_RUN_ENDED)
            if s > self.next_step:
                context.set_trailing_metadata((("tandem-error-reason", "STEP_AHEAD"),))
                context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"step {s} is ahead of the trainer")
            if s in self.served:
                return pb.PullBatchResponse(run_id=request.run_id, step=s, state=pb.BATCH_STATE_READY, groups=self.served[s], reserved=True)
            if s in self.ready:
                self.served[s] = self.ready.pop(s)
                return pb.PullBatchResponse(run_id=request.run_id, step=s, state=pb.BATCH_STATE_READY, groups=self.served[s])
        return pb.PullBatchResponse(run_id=request.run_id, step=s, state=pb.BATCH_STATE_NOT_READY)

    def AckBatch(self, request: pb.AckBatchRequest, context: grpc.ServicerContext) -> pb.AckBatchResponse:
        self._maybe_fail("AckBatch", context)
        s = request.step
        with self.lock:
            if s < self.next_step:
                return pb.AckBatchResponse(policy_version=self.next_step, groups_trained=0, duplicate=True)
            if s > self.next_step:
                context.set_trailing_metadata((("tandem-error-reason", "STEP_AHEAD"),))
                context.abort(grpc.StatusCode.FAILED_PRECONDITION, "ahead")
            if s not in self.served:
                context.set_trailing_metadata((("tandem-error-reason", "BATCH_NOT_SERVED"),))
                context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"no batch was served for step {s}")
            self.acks.append(s)
            self.next_step = s + 1
            return pb.AckBatchResponse(policy_version=s + 1, groups_trained=len(self.served[s]))

    def messages(self, kind: str) -> list[Any]:
        return [getattr(m, kind) for m in list(self.inbox) if m.WhichOneof("kind") == kind]


def send_weights(
    version: int,
    sync_id: str,
    port: int,
    group_id: Optional[str] = None,
    deadline_ms: int = 5000,
    world_size: int = 1,
    forms_group: Optional[bool] = None,
) -> pb.ControlMessage:
    """A SendWeights; without ``group_id`` it forms a new group named after the sync."""
    return pb.ControlMessage(
        send_weights=pb.SendWeights(
            policy_version=version,
            sync_id=sync_id,
            master_address="127.0.0.1",
            master_port=port,
            world_size=world_size,
            deadline_ms=deadline_ms,
            group_id=group_id or f"run-{sync_id}",
            forms_group=group_id is None if forms_group is None else forms_group,
        )
    )
