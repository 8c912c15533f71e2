"""The weight sender against real gloo receivers (threads in this process):
bit-exact broadcast in packed chunks, re-formation on a new group id on
the same port, deadlines, and the refusals that must be fast."""

from __future__ import annotations

import json
import threading
import time
from typing import Optional

import torch

from tandem_trainer.packing import ModelLayout
from tandem_trainer.tiny_model import make_tiny_model, param_checksum
from tandem_trainer.transfer_group import GroupSpec, TorchTransferGroup, receive_packed
from tandem_trainer.weight_sender import SendCommand, WeightSender, transport_factory
from tests.procs import free_port

BUFFER = 4096


class ThreadReceiver:
    """Joins groups and receives into its own model, like receiver.py minus HTTP."""

    def __init__(self, seed: int) -> None:
        self.model = make_tiny_model(seed)
        self.layout = ModelLayout.from_named_tensors(self.model.named_parameters())
        self.group: Optional[TorchTransferGroup] = None
        self.error: Optional[BaseException] = None

    def join(self, port: int, rank: int, world: int) -> threading.Thread:
        def run() -> None:
            try:
                if self.group is not None:
                    self.group.close()
                self.group = TorchTransferGroup.open(GroupSpec("127.0.0.1", port, rank, world, 20.0, "127.0.0.1"))
            except BaseException as err:  # surfaced by the test
                self.error = err

        t = threading.Thread(target=run)
        t.start()
        return t

    def receive(self, timeout_s: float = 20.0) -> threading.Thread:
        def run() -> None:
            try:
                assert self.group is not None
                params = dict(self.model.named_parameters())
                for chunk in receive_packed(self.group, self.layout, BUFFER, time.monotonic() + timeout_s):
                    with torch.no_grad():
                        for name, t in chunk:
                            params[name].copy_(t)
            except BaseException as err:
                self.error = err

        t = threading.Thread(target=run)
        t.start()
        return t


def make_sender(model: torch.nn.Module) -> WeightSender:
    return WeightSender(lambda: ((n, p.detach()) for n, p in model.named_parameters()), transport_factory("gloo", "127.0.0.1"), buffer_size_bytes=BUFFER)


def cmd(version: int, sync: str, port: int, world: int, group: str, forms: bool, deadline_ms: int = 20000) -> SendCommand:
    return SendCommand(version, sync, "127.0.0.1", port, world, deadline_ms, group, forms_group=forms)


def sync(sender: WeightSender, command: SendCommand, held: int, joiners: list[tuple[ThreadReceiver, int]], receivers: list[ThreadReceiver]):  # type: ignore[no-untyped-def]
    """One sync as the coordinator runs it: the trainer starts, generators
    join (new group only), then receive while the trainer broadcasts.
    In one process the trainer's store must be up before clients connect
    (torch 1.13's TCPStore client retries with the GIL held)."""
    box: list = []
    t = threading.Thread(target=lambda: box.append(sender.send(command, held)))
    t.start()
    time.sleep(0.3)
    for j in [r.join(command.master_port, rank, command.world_size) for r, rank in joiners]:
        j.join(30)
    for rt in [r.receive() for r in receivers]:
        rt.join(30)
    t.join(30)
    assert [r.error for r in receivers] == [None] * len(receivers)
    return box[0]


def test_broadcast_reaches_two_receivers_bit_exact_and_reforms_on_the_same_port() -> None:
    trainer = make_tiny_model(0)
    sender = make_sender(trainer)
    info = json.loads(sender.update_info_json())
    assert info["packed_buffer_size_bytes"] == BUFFER and info["names"] == [n for n, _ in trainer.named_parameters()]
    port = free_port()
    receivers = [ThreadReceiver(1), ThreadReceiver(2)]
    nbytes = ModelLayout.from_named_tensors(trainer.named_parameters()).nbytes

    # Sync 1 forms group "run-a" (named after its sync, as the coordinator does).
    result = sync(sender, cmd(0, "a", port, 3, "run-a", True), 0, [(receivers[0], 1), (receivers[1], 2)], receivers)
    assert result.ok and result.group_formed and result.bytes_sent == nbytes
    want = param_checksum(trainer.named_parameters())
    assert all(param_checksum(r.model.named_parameters()) == want for r in receivers)

    # Sync 2 reuses the group: no formation, new weights arrive.
    with torch.no_grad():
        for p in trainer.parameters():
            p.mul_(1.5)
    result = sync(sender, cmd(1, "b", port, 3, "run-a", False), 1, [], receivers)
    assert result.ok and not result.group_formed
    want = param_checksum(trainer.named_parameters())
    assert all(param_checksum(r.model.named_parameters()) == want for r in receivers)

    # Sync 3 re-forms (group "run-c", one receiver left) on the same port.
    with torch.no_grad():
        for p in trainer.parameters():
            p.add_(0.25)
    result = sync(sender, cmd(2, "c", port, 2, "run-c", True), 2, [(receivers[0], 1)], [receivers[0]])
    assert result.ok and result.group_formed
    assert param_checksum(receivers[0].model.named_parameters()) == param_checksum(trainer.named_parameters())
    sender.abort()


def test_missed_deadline_fails_and_drops_the_group() -> None:
    trainer = make_tiny_model(0)
    sender = make_sender(trainer)
    port = free_port()
    r = ThreadReceiver(1)
    box: list = []
    started = time.monotonic()
    t = threading.Thread(target=lambda: box.append(sender.send(cmd(0, "a", port, 2, "run-a", True, deadline_ms=3000), 0)))
    t.start()
    time.sleep(0.3)
    # The receiver joins but never receives: the broadcast cannot complete.
    r.join(port, 1, 2).join(30)
    t.join(30)
    result = box[0]
    elapsed = time.monotonic() - started
    assert not result.ok and elapsed < 10.0  # the 3 s deadline, plus formation and thread scheduling
    assert sender.group_id is None, "a group whose collective failed must not be reused"


def test_refusals_are_immediate() -> None:
    sender = make_sender(make_tiny_model(0))
    port = free_port()
    started = time.monotonic()
    ahead = sender.send(cmd(5, "a", port, 2, "run-a", True), 3)
    assert not ahead.ok and "holds policy version 3" in ahead.error and ahead.policy_version == 3
    # A group formed by an earlier sync we were not part of (we restarted).
    unknown = sender.send(cmd(3, "b", port, 2, "run-a", False), 3)
    assert not unknown.ok and "re-formed" in unknown.error
    assert time.monotonic() - started < 1.0
