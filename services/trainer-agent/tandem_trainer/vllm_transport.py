"""Trainer side of vLLM's own NCCL weight transfer (production path; needs
vLLM >= 0.22 and a GPU in the trainer pod, as TRL's AsyncGRPO does).

Two calls, both present in every vLLM release with the NCCL engine:

* opening the group, trainer as rank 0 of a ``StatelessProcessGroup`` with a
  ``PyNcclCommunicator``: ``trainer_init({master_address, master_port,
  world_size})`` — a module function in
  ``vllm/distributed/weight_transfer/nccl_common.py`` in current vLLM
  (kept at that path by a compatibility alias of
  ``vllm/backends/distributed/weight_transfer/nccl_common.py``), a static
  method of ``NCCLWeightTransferEngine`` (``nccl_engine.py``) in vLLM <= 0.25;
* sending: ``packed_nccl_broadcast_producer(iterator, group, src=0,
  post_iter_func, buffer_size_bytes, num_buffers)`` from
  ``vllm/distributed/weight_transfer/packed_tensor.py``, which packs and
  broadcasts exactly what the generators' ``packed_nccl_broadcast_consumer``
  unpacks. vLLM <= 0.25's ``trainer_send_weights(..., packed=True)`` is a
  wrapper around it; current vLLM removed that static path
  (``NCCLTrainerSendWeightsArgs`` is gone), so it is not used.

huggingface/trl ``trl/experimental/async_grpo/weight_transfer.py``
(``WeightTransferClient``) drives the same group and producer. Where the
generators take the packing settings (``init_info`` or ``update_info``)
depends on their vLLM release; the control plane finds out when they join
and the trainer side is the same either way. vLLM is imported only when this
transport is used. Not run here (no GPU, no vLLM): verified on a GPU cluster
only.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Optional

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
        trainer_init = _trainer_init()
        comm = trainer_init({"master_address": spec.master_address, "master_port": spec.master_port, "world_size": spec.world_size})
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
        producer = _packed_producer()
        producer(
            iter(named),
            self._comm,
            0,
            lambda item: item[1],
            buffer_size_bytes=buffer_size_bytes,
            num_buffers=num_buffers,
        )
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return layout.nbytes

    def close(self) -> None:
        self._comm = None


def _trainer_init() -> Callable[[dict[str, Any]], Any]:
    """vLLM's trainer-side group opener, wherever this release keeps it."""
    try:
        from vllm.distributed.weight_transfer.nccl_common import trainer_init

        return trainer_init  # type: ignore[no-any-return]
    except ImportError:
        pass
    try:
        from vllm.distributed.weight_transfer.nccl_engine import NCCLWeightTransferEngine
    except ImportError as err:  # pragma: no cover - depends on the image
        raise TransferError("backend 'vllm-nccl' needs vLLM >= 0.22 installed in the trainer image") from err
    opener = getattr(NCCLWeightTransferEngine, "trainer_init", None)
    if opener is None:  # pragma: no cover - depends on the image
        raise TransferError("this vLLM has neither nccl_common.trainer_init nor NCCLWeightTransferEngine.trainer_init")
    return opener  # type: ignore[no-any-return]


def _packed_producer() -> Callable[..., None]:
    """vLLM's packed broadcast producer (the same function in every release with the NCCL engine)."""
    try:
        from vllm.distributed.weight_transfer.packed_tensor import packed_nccl_broadcast_producer
    except ImportError as err:  # pragma: no cover - depends on the image
        raise TransferError("backend 'vllm-nccl': this vLLM has no packed_tensor.packed_nccl_broadcast_producer") from err
    return packed_nccl_broadcast_producer  # type: ignore[no-any-return]
