"""The vLLM NCCL transport's use of vLLM, against stand-in modules shaped like
the two vLLM layouts it supports (vLLM cannot be installed here): current
vLLM with ``nccl_common.trainer_init`` and no static send path, and vLLM <=
0.25 with the static ``NCCLWeightTransferEngine.trainer_init``. Both send
through ``packed_tensor.packed_nccl_broadcast_producer``."""

from __future__ import annotations

import sys
import types
from typing import Any, Iterator

import pytest
import torch

from tandem_trainer.packing import ModelLayout
from tandem_trainer.transfer_group import GroupSpec, TransferError
from tandem_trainer.vllm_transport import VllmNcclTransport


class FakeComm:
    def __init__(self, init: dict[str, Any]) -> None:
        self.init = init
        self.group = types.SimpleNamespace(store=object(), socket=object())


def _install(monkeypatch: pytest.MonkeyPatch, *, current: bool) -> dict[str, Any]:
    calls: dict[str, Any] = {}
    pkg = "vllm.distributed.weight_transfer"
    for name in ("vllm", "vllm.distributed", pkg):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))

    def producer(iterator: Iterator[tuple[str, torch.Tensor]], group: Any, src: int, post_iter_func: Any, buffer_size_bytes: int, num_buffers: int) -> None:
        calls["sent"] = [post_iter_func(item).clone() for item in iterator]
        calls["send_args"] = (group, src, buffer_size_bytes, num_buffers)

    packed = types.ModuleType(f"{pkg}.packed_tensor")
    packed.packed_nccl_broadcast_producer = producer  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, f"{pkg}.packed_tensor", packed)
    engine = types.ModuleType(f"{pkg}.nccl_engine")
    if current:
        common = types.ModuleType(f"{pkg}.nccl_common")
        common.trainer_init = lambda init: FakeComm(init)  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, f"{pkg}.nccl_common", common)
        # Current vLLM: the engine class has no static trainer path any more.
        engine.NCCLWeightTransferEngine = type("NCCLWeightTransferEngine", (), {})  # type: ignore[attr-defined]
    else:
        engine.NCCLWeightTransferEngine = type(  # type: ignore[attr-defined]
            "NCCLWeightTransferEngine", (), {"trainer_init": staticmethod(lambda init: FakeComm(init))}
        )
    monkeypatch.setitem(sys.modules, f"{pkg}.nccl_engine", engine)
    return calls


SPEC = GroupSpec(master_address="10.0.0.1", master_port=29500, rank=0, world_size=3, timeout_s=5)


@pytest.mark.parametrize("current", [True, False], ids=["current-vllm", "vllm-0.25"])
def test_opens_the_group_and_sends_through_the_packed_producer(monkeypatch: pytest.MonkeyPatch, current: bool) -> None:
    calls = _install(monkeypatch, current=current)
    transport = VllmNcclTransport.open(SPEC)
    comm = transport._comm
    assert isinstance(comm, FakeComm)
    assert comm.init == {"master_address": "10.0.0.1", "master_port": 29500, "world_size": 3}
    # The rendezvous store is released once the group is up, as TRL does.
    assert comm.group.store is None and comm.group.socket is None
    named = [("a", torch.arange(4, dtype=torch.float32)), ("b", torch.ones(2, 2, dtype=torch.bfloat16))]
    layout = ModelLayout.from_named_tensors(named)
    assert transport.send(iter(named), layout, 1 << 20, 2, deadline=0.0) == layout.nbytes
    assert calls["send_args"] == (comm, 0, 1 << 20, 2)
    assert all(torch.equal(x, y) for x, (_n, y) in zip(calls["sent"], named))


def test_missing_vllm_is_a_transfer_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(TransferError, match="needs vLLM"):
        VllmNcclTransport.open(SPEC)


def test_only_rank_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    _install(monkeypatch, current=True)
    with pytest.raises(TransferError, match="rank 0"):
        VllmNcclTransport.open(GroupSpec(master_address="h", master_port=1, rank=1, world_size=2, timeout_s=1))
