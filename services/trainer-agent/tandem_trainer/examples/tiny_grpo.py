"""A tiny GRPO-style policy-gradient step on :class:`TinyLM`, as an agent
entry point: ``python -m tandem_trainer --entry tandem_trainer.examples.tiny_grpo:build``.

Loss: PPO-clipped importance ratio against the generator's logprobs, times
the group-normalised advantage, averaged over completion tokens (the shape
of TRL's AsyncGRPO loss, without KL).

Test hooks (environment): ``TINY_GRPO_HANG_AT_STEP=s`` with
``TINY_GRPO_MARKER=path`` makes the step-``s`` train call write the marker
and hang (once: not when the marker already exists), so a test can SIGKILL
the trainer mid-step deterministically.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import torch

from ..agent import TrainingSetup
from ..batch import Batch
from ..collate import collate
from ..tiny_model import PAD_ID, make_tiny_model

EPSILON = 0.2


def build() -> TrainingSetup:
    torch.set_num_threads(1)
    model = make_tiny_model(seed=int(os.environ.get("TINY_GRPO_SEED", "0")))
    optimizer = torch.optim.SGD(model.parameters(), lr=float(os.environ.get("TINY_GRPO_LR", "0.5")))
    hang_at = int(os.environ.get("TINY_GRPO_HANG_AT_STEP", "-1"))
    marker = os.environ.get("TINY_GRPO_MARKER", "")

    def train_step(batch: Batch) -> dict[str, Any]:
        if batch.step == hang_at and marker and not os.path.exists(marker):
            with open(marker + ".tmp", "w") as f:
                json.dump({"step": batch.step, "pid": os.getpid(), "groups": batch.group_ids, "reserved": batch.reserved}, f)
            os.replace(marker + ".tmp", marker)
            while True:  # mid-step: pulled, not acked, not checkpointed
                time.sleep(1)
        seqs = collate(batch, pad_token_id=PAD_ID)
        model.train()
        logp = model.token_logprobs(seqs.input_ids)
        mask = seqs.completion_mask.float()
        ratio = torch.exp(logp - seqs.old_logprobs) * mask
        adv = seqs.advantages.unsqueeze(1)
        per_token = -torch.min(ratio * adv, torch.clamp(ratio, 1 - EPSILON, 1 + EPSILON) * adv)
        loss = (per_token * mask).sum() / mask.sum().clamp(min=1.0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scored = seqs.rewards[~seqs.unscored]  # unscored rows' 0 means nothing
        mean_reward = round(float(scored.mean()), 6) if scored.numel() else None
        return {"loss": round(float(loss), 6), "mean_reward": mean_reward}

    return TrainingSetup(model=model, optimizer=optimizer, train_step=train_step)
