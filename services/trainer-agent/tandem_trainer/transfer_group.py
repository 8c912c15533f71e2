"""The weight-transfer group on torch.distributed, without the global
process group: a STATELESS group (its own TCPStore and ProcessGroup
object), so the agent can drop it and form a new one whenever the control
plane re-forms the group (new ``group_id``), while a training job's own
default process group (DDP/FSDP) is untouched.

Backends: ``gloo`` (CPU; what the tests run) and ``nccl`` (GPU, torch's own
ProcessGroupNCCL; pairs with :mod:`tandem_trainer.receiver`, not with real
vLLM: vLLM's side is a ``StatelessProcessGroup`` + ``PyNcclCommunicator``,
for which see :mod:`tandem_trainer.vllm_transport`).

Rendezvous: rank 0 (the trainer) hosts the TCPStore. Every rank, rank 0
included, joins through a *client* store and the group waits on a barrier;
then rank 0 closes the server. The port is thus free again as soon as a
group has formed, and a generator that joins a later group on the same port
can only meet the new store, never the stale keys of an old one (the
coordinator calls the generators' init at the same time as it tells the
trainer to re-form, so that race is real).
"""

from __future__ import annotations

import atexit
import datetime
import threading
import time
from dataclasses import dataclass
from typing import Iterable, Iterator, Literal, Optional

import torch
import torch.distributed as dist

from .packing import ModelLayout, TensorSpec, iter_packed_chunks, plan_chunks, unpack

TorchBackend = Literal["gloo", "nccl"]


_reapers: list[threading.Thread] = []


@atexit.register
def _join_reapers(timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    for t in _reapers:
        t.join(max(0.0, deadline - time.monotonic()))


class TransferError(RuntimeError):
    """A group could not be formed, or a collective failed or missed its deadline."""


@dataclass(frozen=True)
class GroupSpec:
    """Where and how to join one transfer group."""

    master_address: str
    master_port: int
    rank: int
    world_size: int
    #: Formation must finish within this; also the group's per-op ceiling.
    timeout_s: float
    #: Address of this process that the other ranks can reach (gloo device).
    local_address: str = ""


def _td(seconds: float) -> datetime.timedelta:
    return datetime.timedelta(seconds=max(0.001, seconds))


class TorchTransferGroup:
    """One formed group. Not thread-safe: one collective at a time."""

    def __init__(self, pg: "dist.ProcessGroup", spec: GroupSpec, backend: TorchBackend, device: torch.device) -> None:
        self._pg: Optional[dist.ProcessGroup] = pg
        #: A collective failed or timed out and may still be running.
        self.poisoned = False
        self.spec = spec
        self.backend = backend
        self.device = device

    @classmethod
    def open(cls, spec: GroupSpec, backend: TorchBackend = "gloo", device: Optional[torch.device] = None) -> "TorchTransferGroup":
        """Joins (rank 0: hosts) the group; blocks until every rank is in."""
        if not 0 <= spec.rank < spec.world_size:
            raise TransferError(f"rank {spec.rank} is outside world_size {spec.world_size}")
        deadline = time.monotonic() + spec.timeout_s
        server: Optional[dist.TCPStore] = None
        group: Optional[TorchTransferGroup] = None
        try:
            if spec.rank == 0:
                server = dist.TCPStore(
                    spec.master_address, spec.master_port, spec.world_size, True, _td(spec.timeout_s), wait_for_workers=False
                )
            client = dist.TCPStore(
                spec.master_address, spec.master_port, spec.world_size, False, _td(deadline - time.monotonic())
            )
            if backend == "gloo":
                opts = dist.ProcessGroupGloo._Options()
                opts._timeout = _td(spec.timeout_s)
                opts._devices = [dist.ProcessGroupGloo.create_device(hostname=spec.local_address or spec.master_address)]
                group = cls(dist.ProcessGroupGloo(client, spec.rank, spec.world_size, opts), spec, backend, torch.device("cpu"))
            elif backend == "nccl":
                # Untested here (no GPU): torch's NCCL group on the same stateless store.
                dev = device or torch.device("cuda", torch.cuda.current_device())
                nccl_opts = dist.ProcessGroupNCCL.Options()
                nccl_opts._timeout = _td(spec.timeout_s)
                group = cls(dist.ProcessGroupNCCL(client, spec.rank, spec.world_size, nccl_opts), spec, backend, dev)
            else:
                raise TransferError(f"unknown torch backend {backend!r}")
            assert group._pg is not None
            group._wait(group._pg.barrier(), deadline, "rendezvous barrier")
            formed, group = group, None
            return formed
        except Exception as err:  # torch raises RuntimeError for refused/timed-out rendezvous
            if group is not None:
                group.poisoned = True
                group.close()  # never destroy a half-formed group on this thread
                group = None
            server = None
            if isinstance(err, TransferError):
                raise
            raise TransferError(
                f"could not form the transfer group at {spec.master_address}:{spec.master_port} "
                f"(rank {spec.rank} of {spec.world_size}): {err}"
            ) from err
        finally:
            # The store's job ends with the rendezvous: free the port now.
            server = None  # noqa: F841

    def _wait(self, work: "dist.Work", deadline: float, what: str) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TransferError(f"{what}: deadline passed")
        try:
            work.wait(_td(remaining))
        except Exception as err:
            self.poisoned = True
            raise TransferError(f"{what} failed: {err}") from err

    def broadcast(self, tensor: torch.Tensor, deadline: float, src: int = 0) -> None:
        """In-place broadcast from ``src``, bounded by ``deadline`` (monotonic
        seconds). On timeout the collective may still be running; the group
        must then be closed, not reused."""
        if self._pg is None:
            raise TransferError("transfer group is closed")
        opts = dist.BroadcastOptions()
        opts.rootRank = src
        opts.rootTensor = 0
        self._wait(self._pg.broadcast([tensor], opts), deadline, f"broadcast of {tensor.numel()} bytes")

    def close(self) -> None:
        """Drops the group. A healthy group is destroyed at once. After a
        failed collective the destructor can block while the collective
        drains (up to the group's timeout), so it runs on a reaper thread:
        closing never hangs the caller; :func:`_join_reapers` waits for
        reapers at exit (a C++ destructor cut off by interpreter shutdown
        aborts the process)."""
        pg, self._pg = self._pg, None
        if pg is None:
            return
        if not self.poisoned:
            del pg
            return
        holder = [pg]
        del pg
        t = threading.Thread(target=holder.clear, name="transfer-group-reaper", daemon=True)
        _reapers.append(t)
        t.start()

    @property
    def closed(self) -> bool:
        return self._pg is None


def send_packed(
    group: TorchTransferGroup,
    named: Iterable[tuple[str, torch.Tensor]],
    layout: ModelLayout,
    buffer_size_bytes: int,
    deadline: float,
) -> int:
    """Broadcasts the model chunk by chunk from rank 0; returns bytes sent."""
    sent = 0
    for _specs, buffer in iter_packed_chunks(named, layout, buffer_size_bytes):
        buffer = buffer.to(group.device)
        group.broadcast(buffer, deadline)
        sent += buffer.numel()
    return sent


def receive_packed(
    group: TorchTransferGroup, layout: ModelLayout, buffer_size_bytes: int, deadline: float
) -> Iterator[list[tuple[str, torch.Tensor]]]:
    """Receives the chunks :func:`send_packed` sends, yielding each chunk's
    named tensors (views of the receive buffer: copy them out before the
    next chunk)."""
    for chunk in plan_chunks([s.nbytes for s in layout.specs], buffer_size_bytes):
        specs: list[TensorSpec] = [layout.specs[i] for i in chunk]
        buffer = torch.empty(sum(s.nbytes for s in specs), dtype=torch.uint8, device=group.device)
        group.broadcast(buffer, deadline)
        yield unpack(buffer, specs)
