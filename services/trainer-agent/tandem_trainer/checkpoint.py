"""Atomic checkpoints of model + optimizer + the step they contain.

The agent checkpoints *before* it acks a step, so after a crash the
checkpoint is never behind the control plane's ledger; at most it is one
step ahead (trained and saved, ack lost), and then the agent acks that step
again instead of training it twice. Writes go to a temporary file that is
fsynced and renamed over the old one: a crash mid-write leaves the previous
checkpoint intact.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch

FORMAT = 1
FILE_NAME = "tandem-agent.pt"


@dataclass(frozen=True)
class CheckpointMeta:
    """What the weights in a checkpoint are."""

    run_id: str
    #: The weights are policy version ``policy_version``.
    policy_version: int
    #: The step whose training produced them (policy_version - 1), -1 for none.
    trained_step: int = -1
    #: The groups of that step's batch (to recognise it when served again).
    trained_group_ids: tuple[str, ...] = field(default_factory=tuple)


class CheckpointStore:
    """One directory, one checkpoint file."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.dir = Path(directory)
        self.path = self.dir / FILE_NAME

    def save(self, meta: CheckpointMeta, model: torch.nn.Module, optimizer: Optional[torch.optim.Optimizer], extra: Optional[dict[str, Any]] = None) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        payload = {
            "format": FORMAT,
            "meta": {
                "run_id": meta.run_id,
                "policy_version": meta.policy_version,
                "trained_step": meta.trained_step,
                "trained_group_ids": list(meta.trained_group_ids),
            },
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict() if optimizer is not None else None,
            "extra": extra or {},
        }
        fd, tmp = tempfile.mkstemp(prefix=".tandem-agent-", suffix=".tmp", dir=self.dir)
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(payload, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        dir_fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself must survive a crash
        finally:
            os.close(dir_fd)

    def load(self, model: torch.nn.Module, optimizer: Optional[torch.optim.Optimizer]) -> Optional[CheckpointMeta]:
        """Restores model and optimizer in place; None when there is no checkpoint."""
        if not self.path.exists():
            return None
        payload = torch.load(self.path, map_location="cpu")
        if payload.get("format") != FORMAT:
            raise ValueError(f"{self.path}: unknown checkpoint format {payload.get('format')!r}")
        model.load_state_dict(payload["model"])
        if optimizer is not None and payload.get("optimizer") is not None:
            optimizer.load_state_dict(payload["optimizer"])
        m = payload["meta"]
        return CheckpointMeta(
            run_id=str(m["run_id"]),
            policy_version=int(m["policy_version"]),
            trained_step=int(m["trained_step"]),
            trained_group_ids=tuple(str(g) for g in m["trained_group_ids"]),
        )
