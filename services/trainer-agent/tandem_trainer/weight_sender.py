"""Serves SendWeights commands: (re)joins the transfer group when the
control plane formed a new one, broadcasts the model in packed buckets
within the command's deadline, and answers with a WeightsSent result.

The sender never decides *when* to send: the control plane's weight-sync
coordinator does, and it calls the generators' ``/init_weight_transfer_engine``
(new group only), ``/pause``, ``/start_weight_update`` and ``/update_weights``
while we broadcast. Any failure closes our side of the group, because a
group whose collective failed or timed out cannot be trusted again; the
coordinator then marks the generators for a full re-sync and re-forms the
group (new ``group_id``) at the next sync.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Literal, Optional, Protocol

import torch

from .log import get_logger
from .packing import DEFAULT_PACKED_BUFFER_SIZE_BYTES, DEFAULT_PACKED_NUM_BUFFERS, ModelLayout
from .transfer_group import GroupSpec, TorchTransferGroup, TransferError, send_packed

Backend = Literal["gloo", "nccl", "vllm-nccl"]

NamedTensors = Callable[[], Iterable[tuple[str, torch.Tensor]]]


@dataclass(frozen=True)
class SendCommand:
    """The fields of tandem.v1.SendWeights the sender needs."""

    policy_version: int
    sync_id: str
    master_address: str
    master_port: int
    world_size: int
    deadline_ms: int
    group_id: str
    #: This sync forms ``group_id`` (the generators join it now), so the
    #: trainer initialises its side first (SendWeights.forms_group).
    forms_group: bool = False


@dataclass(frozen=True)
class SendResult:
    """What goes back as tandem.v1.WeightsSent."""

    policy_version: int
    ok: bool
    error: str
    seconds: float
    sync_id: str
    bytes_sent: int = 0
    group_formed: bool = False


class Transport(Protocol):
    """One formed group as the sender uses it."""

    def send(self, named: Iterable[tuple[str, torch.Tensor]], layout: ModelLayout, buffer_size_bytes: int, num_buffers: int, deadline: float) -> int: ...

    def close(self) -> None: ...


class _TorchTransport:
    def __init__(self, group: TorchTransferGroup) -> None:
        self._group = group

    def send(self, named: Iterable[tuple[str, torch.Tensor]], layout: ModelLayout, buffer_size_bytes: int, num_buffers: int, deadline: float) -> int:
        return send_packed(self._group, named, layout, buffer_size_bytes, deadline)

    def close(self) -> None:
        self._group.close()


TransportFactory = Callable[[GroupSpec], Transport]


def transport_factory(backend: Backend, local_address: str = "") -> TransportFactory:
    """The transport for a backend name (the agent's ``TANDEM_TRANSFER_BACKEND``)."""
    if backend in ("gloo", "nccl"):

        def open_torch(spec: GroupSpec) -> Transport:
            if local_address:
                spec = GroupSpec(**{**spec.__dict__, "local_address": local_address})
            return _TorchTransport(TorchTransferGroup.open(spec, backend))  # type: ignore[arg-type]  # narrowed above

        return open_torch
    if backend == "vllm-nccl":
        from .vllm_transport import VllmNcclTransport

        return VllmNcclTransport.open
    raise ValueError(f"unknown transfer backend {backend!r} (gloo, nccl or vllm-nccl)")


class WeightSender:
    """Broadcasts the trainer's weights on command. One send at a time."""

    def __init__(
        self,
        named_tensors: NamedTensors,
        factory: TransportFactory,
        *,
        buffer_size_bytes: int = DEFAULT_PACKED_BUFFER_SIZE_BYTES,
        num_buffers: int = DEFAULT_PACKED_NUM_BUFFERS,
        layout: Optional[ModelLayout] = None,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        """``layout`` defaults to one read from ``named_tensors()``; pass it
        when iterating the tensors is a collective (FSDP full_tensor) that
        one rank must not run alone."""
        self._named = named_tensors
        self._factory = factory
        self._buffer_size = buffer_size_bytes
        self._num_buffers = num_buffers
        self._now = now
        self._layout = layout or ModelLayout.from_named_tensors(named_tensors())
        self._transport: Optional[Transport] = None
        self._group_id: Optional[str] = None
        self._lock = threading.Lock()
        self._log = get_logger("weight-sender")

    @property
    def layout(self) -> ModelLayout:
        return self._layout

    @property
    def group_id(self) -> Optional[str]:
        return self._group_id

    def update_info(self) -> dict[str, object]:
        return self._layout.update_info(packed=True, buffer_size_bytes=self._buffer_size, num_buffers=self._num_buffers)

    def update_info_json(self) -> str:
        """vLLM's update_info for WeightsReady (the coordinator forwards it to
        every generator's /update_weights so their receive matches)."""
        return json.dumps(self.update_info(), separators=(",", ":"))

    def send(self, command: SendCommand, held_version: int) -> SendResult:
        """Runs one SendWeights command with the weights of ``held_version``
        (the trainer's committed version, reported back as such: the
        generators then serve what they really received)."""
        with self._lock:
            started = self._now()
            deadline = started + (command.deadline_ms / 1000.0 if command.deadline_ms > 0 else 3600.0)
            log = self._log.child(sync_id=command.sync_id, group_id=command.group_id, policy_version=held_version)

            def result(ok: bool, error: str = "", sent: int = 0, formed: bool = False) -> SendResult:
                return SendResult(held_version, ok, error, self._now() - started, command.sync_id, sent, formed)

            if command.policy_version > held_version:
                return result(False, f"trainer holds policy version {held_version}, not {command.policy_version}")
            formed = False
            if command.group_id != self._group_id and not command.forms_group:
                # The generators hold a group we are not in (we restarted, or
                # dropped it after a failure): forming it alone would only wait
                # out the deadline with every generator paused. Fail fast; the
                # coordinator re-forms the group at the next sync.
                return result(False, f"trainer is not in transfer group {command.group_id}; it must be re-formed")
            try:
                if command.group_id != self._group_id or self._transport is None:
                    self._close_transport()
                    spec = GroupSpec(
                        master_address=command.master_address,
                        master_port=command.master_port,
                        rank=0,
                        world_size=command.world_size,
                        timeout_s=max(0.001, deadline - self._now()),
                    )
                    log.info("forming transfer group", world_size=command.world_size, port=command.master_port)
                    self._transport = self._factory(spec)
                    self._group_id = command.group_id
                    formed = True
                sent = self._transport.send(self._named(), self._layout, self._buffer_size, self._num_buffers, deadline)
            except (TransferError, ValueError, RuntimeError) as err:
                # A failed or timed-out collective poisons the group: drop it.
                self._close_transport()
                log.warning("weight broadcast failed", error=str(err))
                return result(False, str(err), 0, formed)
            log.info("weights sent", bytes=sent, seconds=round(self._now() - started, 4), group_formed=formed)
            return result(True, "", sent, formed)

    def abort(self) -> None:
        """Drops the group (shutdown, or the session that owned it is gone)."""
        self._close_transport()

    def _close_transport(self) -> None:
        transport, self._transport, self._group_id = self._transport, None, None
        if transport is not None:
            try:
                transport.close()
            except Exception as err:  # closing is best effort; never mask the real error
                self._log.warning("closing the transfer group failed", error=str(err))
