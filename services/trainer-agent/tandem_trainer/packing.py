"""Model layout and packed buffers, exactly as vLLM's NCCL weight-transfer
engine expects them (docs/vllm-routes.md, "NCCL group and packing").

* ``update_info``: ``names``, ``dtype_names`` (``str(dtype)`` without the
  ``torch.`` prefix), ``shapes`` of ``model.named_parameters()`` (``module.``
  prefix stripped), ``packed: true``, and the buffer size and count both
  sides must agree on.
* Chunking (vllm-project/vllm ``packed_tensor.py``, ``pack_tensors`` and
  ``packed_nccl_broadcast_consumer``): tensors are viewed as flat uint8 and
  appended to a chunk until its size *exceeds* the buffer size (the tensor
  that crosses the limit is included); the consumer rebuilds the same
  boundaries from metadata alone (``prod(shape) * itemsize``).

Pure functions over tensors: no process group here, so they are tested
directly (round trips, boundaries, dtypes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Mapping, Sequence

import torch

#: vLLM's defaults (packed_tensor.py): 1 GiB buffers, double buffering.
DEFAULT_PACKED_BUFFER_SIZE_BYTES = 1024 * 1024 * 1024
DEFAULT_PACKED_NUM_BUFFERS = 2


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.bfloat16`` -> ``"bfloat16"`` (what TRL puts in dtype_names)."""
    return str(dtype).split(".")[-1]


def dtype_from_name(name: str) -> torch.dtype:
    """Inverse of :func:`dtype_name`; ValueError for anything not a torch dtype."""
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"unknown dtype name {name!r}")
    return dtype


def itemsize(dtype: torch.dtype) -> int:
    """Bytes per element (``torch.dtype.itemsize`` only exists from torch 2.1)."""
    return torch.empty((), dtype=dtype).element_size()


def strip_module_prefix(name: str) -> str:
    """DDP/FSDP1 wrap the model as ``module.``; vLLM knows the bare names."""
    return name[len("module.") :] if name.startswith("module.") else name


@dataclass(frozen=True)
class TensorSpec:
    """Name, dtype and global shape of one parameter."""

    name: str
    dtype: torch.dtype
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * itemsize(self.dtype)


@dataclass(frozen=True)
class ModelLayout:
    """The ordered parameters both sides of a transfer agree on."""

    specs: tuple[TensorSpec, ...]

    @classmethod
    def from_named_tensors(cls, named: Iterable[tuple[str, torch.Tensor]]) -> "ModelLayout":
        return cls(tuple(TensorSpec(strip_module_prefix(n), t.dtype, tuple(t.shape)) for n, t in named))

    @classmethod
    def from_update_info(cls, info: Mapping[str, Any]) -> "ModelLayout":
        """Parses vLLM's update_info; ValueError names the bad field."""
        names, dtypes, shapes = info.get("names"), info.get("dtype_names"), info.get("shapes")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError("update_info.names: must be a list of strings")
        if not isinstance(dtypes, list) or len(dtypes) != len(names):
            raise ValueError(f"update_info.dtype_names: must be a list as long as names ({len(names)})")
        if not isinstance(shapes, list) or len(shapes) != len(names):
            raise ValueError(f"update_info.shapes: must be a list as long as names ({len(names)})")
        specs = []
        for i, (n, d, s) in enumerate(zip(names, dtypes, shapes)):
            if not isinstance(s, list) or not all(isinstance(x, int) and x >= 0 for x in s):
                raise ValueError(f"update_info.shapes[{i}]: must be a list of non-negative ints")
            try:
                dtype = dtype_from_name(str(d))
            except ValueError as err:
                raise ValueError(f"update_info.dtype_names[{i}]: {err}") from err
            specs.append(TensorSpec(n, dtype, tuple(s)))
        return cls(tuple(specs))

    def update_info(
        self,
        *,
        packed: bool = True,
        buffer_size_bytes: int = DEFAULT_PACKED_BUFFER_SIZE_BYTES,
        num_buffers: int = DEFAULT_PACKED_NUM_BUFFERS,
    ) -> dict[str, Any]:
        """vLLM's ``NCCLWeightTransferUpdateInfo`` as a JSON-able dict."""
        info: dict[str, Any] = {
            "names": [s.name for s in self.specs],
            "dtype_names": [dtype_name(s.dtype) for s in self.specs],
            "shapes": [list(s.shape) for s in self.specs],
            "packed": packed,
        }
        if packed:
            info["packed_buffer_size_bytes"] = buffer_size_bytes
            info["packed_num_buffers"] = num_buffers
        return info

    @property
    def nbytes(self) -> int:
        return sum(s.nbytes for s in self.specs)


def plan_chunks(sizes: Sequence[int], buffer_size_bytes: int) -> list[range]:
    """Index ranges of the tensors in each packed chunk (vLLM's boundaries:
    a chunk closes once its total exceeds ``buffer_size_bytes``)."""
    if buffer_size_bytes <= 0:
        raise ValueError("buffer_size_bytes must be positive")
    chunks: list[range] = []
    start, total = 0, 0
    for i, size in enumerate(sizes):
        total += size
        if total > buffer_size_bytes:
            chunks.append(range(start, i + 1))
            start, total = i + 1, 0
    if start < len(sizes):
        chunks.append(range(start, len(sizes)))
    return chunks


def pack(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Concatenates tensors as flat uint8 (one chunk's buffer)."""
    flat = [t.detach().contiguous().view(-1).view(torch.uint8) for t in tensors]
    if not flat:
        return torch.empty(0, dtype=torch.uint8)
    return torch.cat(flat)


def unpack(buffer: torch.Tensor, specs: Sequence[TensorSpec]) -> list[tuple[str, torch.Tensor]]:
    """Splits one chunk's buffer back into named tensors (views of
    ``buffer`` where alignment allows, copies otherwise)."""
    sizes = [s.nbytes for s in specs]
    if buffer.numel() != sum(sizes):
        raise ValueError(f"packed buffer has {buffer.numel()} bytes, its tensors need {sum(sizes)}")
    out = []
    for spec, piece in zip(specs, buffer.split(sizes)):
        if piece.storage_offset() % itemsize(spec.dtype):
            # Reinterpreting bytes needs an aligned start; a mixed-dtype chunk
            # can place a tensor at any byte offset.
            piece = piece.clone()
        out.append((spec.name, piece.view(spec.dtype).view(spec.shape)))
    return out


def iter_packed_chunks(
    named: Iterable[tuple[str, torch.Tensor]], layout: ModelLayout, buffer_size_bytes: int
) -> Iterator[tuple[list[TensorSpec], torch.Tensor]]:
    """Yields (specs, buffer) per chunk, checking each tensor against the
    layout announced in update_info (a mismatch would corrupt every receiver)."""
    items = iter(named)
    for chunk in plan_chunks([s.nbytes for s in layout.specs], buffer_size_bytes):
        specs = [layout.specs[i] for i in chunk]
        tensors = []
        for spec in specs:
            try:
                name, tensor = next(items)
            except StopIteration:
                raise ValueError(f"model has fewer tensors than its layout (missing {spec.name})") from None
            name = strip_module_prefix(name)
            if name != spec.name or tensor.dtype != spec.dtype or tuple(tensor.shape) != spec.shape:
                raise ValueError(
                    f"tensor {name} {dtype_name(tensor.dtype)}{list(tensor.shape)} does not match the layout's "
                    f"{spec.name} {dtype_name(spec.dtype)}{list(spec.shape)}"
                )
            tensors.append(tensor)
        yield specs, pack(tensors)
    if next(items, None) is not None:
        raise ValueError("model has more tensors than its layout")
