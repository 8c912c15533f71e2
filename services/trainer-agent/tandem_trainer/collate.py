"""Turns a decoded :class:`~tandem_trainer.batch.Batch` into padded torch
tensors, one row per completion (prompt + completion), the shape a plain
torch GRPO step wants. TRL's layer builds its own sample dicts instead
(see ``trl_integration``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .batch import Batch


@dataclass(frozen=True)
class SequenceBatch:
    """Right-padded rows. ``old_logprobs[i, t]`` is the generator's logprob
    of ``input_ids[i, t]`` (only where ``completion_mask`` is 1)."""

    input_ids: torch.Tensor  # [N, T] int64
    attention_mask: torch.Tensor  # [N, T] int64
    completion_mask: torch.Tensor  # [N, T] int64
    old_logprobs: torch.Tensor  # [N, T] float32
    advantages: torch.Tensor  # [N] float32
    rewards: torch.Tensor  # [N] float32 (0 where unscored)
    unscored: torch.Tensor  # [N] bool: no reward function could score the row (advantage 0)
    group_index: torch.Tensor  # [N] int64, index of the row's group in the batch


def collate(batch: Batch, pad_token_id: int = 0, scale_rewards: bool = True) -> SequenceBatch:
    """Concatenates each group's prompt with each of its completions."""
    rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    advantages: list[float] = []
    rewards: list[float] = []
    unscored: list[bool] = []
    group_index: list[int] = []
    for gi, group in enumerate(batch.groups):
        adv = group.advantages(scale_rewards=scale_rewards)
        for ti, traj in enumerate(group.trajectories):
            ids = np.concatenate([group.prompt_token_ids, traj.token_ids]).astype(np.int64)
            mask = np.concatenate([np.zeros(group.prompt_token_ids.size, np.int64), np.ones(traj.token_ids.size, np.int64)])
            lps = np.concatenate([np.zeros(group.prompt_token_ids.size, np.float32), traj.logprobs])
            rows.append((ids, mask, lps))
            advantages.append(float(adv[ti]))
            rewards.append(traj.reward)
            unscored.append(traj.unscored)
            group_index.append(gi)
    n = len(rows)
    width = max((r[0].size for r in rows), default=0)
    input_ids = torch.full((n, width), pad_token_id, dtype=torch.int64)
    attention = torch.zeros((n, width), dtype=torch.int64)
    completion = torch.zeros((n, width), dtype=torch.int64)
    old = torch.zeros((n, width), dtype=torch.float32)
    for i, (ids, mask, lps) in enumerate(rows):
        k = ids.size
        input_ids[i, :k] = torch.from_numpy(ids)
        attention[i, :k] = 1
        completion[i, :k] = torch.from_numpy(mask)
        old[i, :k] = torch.from_numpy(lps.astype(np.float32, copy=True))
    return SequenceBatch(
        input_ids=input_ids,
        attention_mask=attention,
        completion_mask=completion,
        old_logprobs=old,
        advantages=torch.tensor(advantages, dtype=torch.float32),
        rewards=torch.tensor(rewards, dtype=torch.float32),
        unscored=torch.tensor(unscored, dtype=torch.bool),
        group_index=torch.tensor(group_index, dtype=torch.int64),
    )
