"""Trainer side of vLLM's own NCCL weight transfer (production path; needs
vLLM >= 0.22 and a GPU in the trainer pod, as TRL's AsyncGRPO does).

Written against vllm-project/vllm
``vllm/distributed/weight_transfer/nccl_engine.py``:
``NCCLWeightTransferEngine.trainer_init({master_address, master_port,
world_size})`` returns a ``PyNcclCommunicator`` over a
``StatelessProcessGroup`` with the trainer as rank 0, and
``NCCLWeightTransferEngine.trainer_send_weights(iterator,
NCCLTrainerSendWeightsArgs(group=..., packed=True, packed_buffer_size_bytes,
packed_num_buffers))`` packs and broadcasts exactly what the generators'
``receive_weights`` unpacks. huggingface/trl
``trl/experimental/async_grpo/weight_transfer.py`` (``WeightTransferClient``)
drives the same two calls. vLLM is imported only when this transport is
used. Not run here (no GPU, no vLLM): verified on a GPU cluster only.
"""

from __future__ import annotations

from typing import Any, Iterable, Optional

import torch

from .packing import ModelLayout
from .transfer_group import GroupSpec, TransferError


class VllmNcclTransport:
    """One formed vLLM NCCL group, trainer side."""

    def __init__(self, communicator: Any) -> None:
        self._comm: Optional[Any] = communicator

    @classmethod
    def open(cls, spec: GroupSpec) -> "VllmNcclTransport":
        if spec.rank != 0:
            raise TransferError("the vLLM NCCL transport is trainer-side only (rank 0)")
        try:
            from vllm.distributed.weight_transfer.nccl_engine import NCCLWeightTransferEngine
        except ImportError as err:  # pragma: no cover - depends on the image
            raise TransferError("backend 'vllm-nccl' needs vLLM >= 0.22 installed in the trainer image") from err
        comm = NCCLWeightTransferEngine.trainer_init(
            {"master_address": spec.master_address, "master_port": spec.master_port, "world_size": spec.world_size}
        )
        # Same release TRL's WeightTransferClient.destroy() performs: the
        # rendezvous store is not needed once NCCL is up, and keeping its
        # server would let a later re-formation on this port meet stale keys.
        group = getattr(comm, "group", None)
        if group is not None:
            group.store = None
            group.socket = None
        return cls(comm)

    def send(self, named: Iterable[tuple[str, torch.Tensor]], layout: ModelLayout, buffer_size_bytes: int, num_buffers: int, deadline: float) -> int:
        """Broadcasts through vLLM's packed producer. NCCL collectives cannot
        be bounded from Python; the coordinator's deadline cuts off the
        generators, and a failed sync makes it re-form the group."""
        if self._comm is None:
            raise TransferError("transfer group is closed")
        from vllm.distributed.weight_transfer.nccl_engine import NCCLTrainerSendWeightsArgs, NCCLWeightTransferEngine

        NCCLWeightTransferEngine.trainer_send_weights(
            iterator=iter(named),
            trainer_args=NCCLTrainerSendWeightsArgs(
                group=self._comm,
                packed=True,
                packed_buffer_size_bytes=buffer_size_bytes,
                packed_num_buffers=num_buffers,
            ),
        )
        torch.cuda.synchronize()
        return layout.nbytes

    def close(self) -> None:
        self._comm = None
