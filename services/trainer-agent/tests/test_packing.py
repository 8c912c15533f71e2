"""Packing exactly as vLLM's NCCL engine expects: metadata, chunk
boundaries, byte-exact round trips across dtypes."""

from __future__ import annotations

import math

import pytest
import torch

from tandem_trainer.packing import (
    ModelLayout,
    TensorSpec,
    dtype_from_name,
    dtype_name,
    iter_packed_chunks,
    itemsize,
    pack,
    plan_chunks,
    unpack,
)


def vllm_consumer_chunks(sizes: list[int], buffer: int) -> list[list[int]]:
    """The consumer loop of vLLM's packed_nccl_broadcast_consumer, restated:
    accumulate sizes, close the chunk once the total exceeds the buffer."""
    chunks, current, total = [], [], 0
    for i, s in enumerate(sizes):
        current.append(i)
        total += s
        if total > buffer:
            chunks.append(current)
            current, total = [], 0
    if current:
        chunks.append(current)
    return chunks


@pytest.mark.parametrize(
    "sizes,buffer",
    [([4, 4, 4], 8), ([4, 4, 4], 7), ([10], 4), ([1, 1, 1, 1], 1), ([100, 1, 1, 100, 1], 50), ([], 8), ([0, 0, 4], 3)],
)
def test_chunk_boundaries_match_vllm(sizes: list[int], buffer: int) -> None:
    assert [list(r) for r in plan_chunks(sizes, buffer)] == vllm_consumer_chunks(sizes, buffer)


def test_a_chunk_includes_the_tensor_that_crosses_the_limit() -> None:
    # 4 + 4 = 8 does not exceed 8, so the third tensor joins the first chunk.
    assert [list(r) for r in plan_chunks([4, 4, 4, 4], 8)] == [[0, 1, 2], [3]]


def tensors() -> list[tuple[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return [
        ("module.embed.weight", torch.randn(5, 3, generator=g)),
        ("ln.weight", torch.randn(7, generator=g).to(torch.bfloat16)),
        ("half", torch.randn(2, 2, generator=g).to(torch.float16)),
        ("steps", torch.tensor([3, -1], dtype=torch.int64)),
        ("mask", torch.tensor([True, False, True])),
        ("scalar", torch.tensor(2.5, dtype=torch.float64)),
        ("empty", torch.zeros(0, 4)),
        ("noncontig", torch.randn(4, 6, generator=g).t()),
    ]


def test_layout_is_vllm_update_info() -> None:
    layout = ModelLayout.from_named_tensors(tensors())
    info = layout.update_info(buffer_size_bytes=64, num_buffers=2)
    assert info["names"][0] == "embed.weight"  # DDP/FSDP1 prefix stripped
    assert info["dtype_names"] == ["float32", "bfloat16", "float16", "int64", "bool", "float64", "float32", "float32"]
    assert info["shapes"] == [[5, 3], [7], [2, 2], [2], [3], [], [0, 4], [6, 4]]
    assert info["packed"] is True and info["packed_buffer_size_bytes"] == 64 and info["packed_num_buffers"] == 2
    assert ModelLayout.from_update_info(info) == layout


@pytest.mark.parametrize("buffer", [1, 16, 64, 10_000])
def test_round_trip_is_byte_exact(buffer: int) -> None:
    named = tensors()
    layout = ModelLayout.from_named_tensors(named)
    chunks = list(iter_packed_chunks(iter(named), layout, buffer))
    assert len(chunks) == len(plan_chunks([s.nbytes for s in layout.specs], buffer))
    out: dict[str, torch.Tensor] = {}
    for specs, buf in chunks:
        assert buf.dtype == torch.uint8 and buf.numel() == sum(s.nbytes for s in specs)
        out.update(dict(unpack(buf.clone(), specs)))
    for name, t in named:
        got = out[name.removeprefix("module.")]
        assert got.dtype == t.dtype and got.shape == t.shape
        assert torch.equal(got.contiguous().view(-1).view(torch.uint8), t.contiguous().view(-1).view(torch.uint8))


def test_tensor_mismatching_the_layout_is_refused() -> None:
    named = tensors()
    layout = ModelLayout.from_named_tensors(named)
    wrong = list(named)
    wrong[1] = ("ln.weight", torch.zeros(7))  # float32, layout says bfloat16
    with pytest.raises(ValueError, match="does not match the layout"):
        list(iter_packed_chunks(iter(wrong), layout, 10_000))
    with pytest.raises(ValueError, match="fewer tensors"):
        list(iter_packed_chunks(iter(named[:-1]), layout, 10_000))
    with pytest.raises(ValueError, match="more tensors"):
        list(iter_packed_chunks(iter(named + [("x", torch.zeros(1))]), layout, 10_000))


@pytest.mark.parametrize(
    "info,field",
    [
        ({"names": "a", "dtype_names": [], "shapes": []}, "names"),
        ({"names": ["a"], "dtype_names": [], "shapes": [[1]]}, "dtype_names"),
        ({"names": ["a"], "dtype_names": ["float32"], "shapes": [[-1]]}, "shapes\\[0\\]"),
        ({"names": ["a"], "dtype_names": ["floaty"], "shapes": [[1]]}, "dtype_names\\[0\\]"),
    ],
)
def test_bad_update_info_names_the_field(info: dict, field: str) -> None:
    with pytest.raises(ValueError, match=f"update_info.{field}"):
        ModelLayout.from_update_info(info)


def test_dtype_helpers() -> None:
    for d in (torch.float32, torch.bfloat16, torch.int8, torch.bool, torch.float64):
        assert dtype_from_name(dtype_name(d)) is d
        assert itemsize(d) == torch.empty(1, dtype=d).element_size()
    assert TensorSpec("x", torch.bfloat16, (3, 5)).nbytes == 30
    assert math.prod(()) == 1 and TensorSpec("s", torch.float32, ()).nbytes == 4
    assert pack([]).numel() == 0
