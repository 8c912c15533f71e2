"""The batch of one step, decoded from PullBatchResponse into numpy arrays.

Groups travel as encoded ``tandem.v1.PromptGroup`` bytes (the broker
forwards what it stored without re-encoding). Token ids are packed
little-endian int32 and logprobs little-endian float32, so decoding is one
``numpy.frombuffer`` per array, no per-element work. Everything is checked
on the way in (a boundary): a malformed group is an error naming the group
and field, never a silently wrong training step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ._proto.tandem.v1 import trainer_service_pb2 as pb

_INT32 = np.dtype("<i4")
_FLOAT32 = np.dtype("<f4")


class BatchDecodeError(ValueError):
    """A group of a served batch is malformed (names the group and field)."""


@dataclass(frozen=True)
class Trajectory:
    """One completion: token ids (int32), generation logprobs (float32), reward.
    ``unscored``: no reward function could score it (the remote reward
    endpoint answered null; ``reward`` is then 0 and means nothing). TRL
    gives such a completion advantage 0 and leaves it out of its group's
    mean and std (see :meth:`Group.advantages`)."""

    token_ids: np.ndarray
    logprobs: np.ndarray
    reward: float
    min_policy_version: int
    max_policy_version: int
    finish_reason: str
    text: str
    unscored: bool = False


@dataclass(frozen=True)
class Group:
    """One prompt and its G completions (a GRPO group)."""

    group_id: str
    prompt_id: str
    target_step: int
    min_policy_version: int
    max_policy_version: int
    prompt_token_ids: np.ndarray
    prompt_text: str
    trajectories: tuple[Trajectory, ...]

    @property
    def rewards(self) -> np.ndarray:
        """The rewards as they travelled (0 for an unscored completion)."""
        return np.array([t.reward for t in self.trajectories], dtype=np.float32)

    @property
    def unscored(self) -> np.ndarray:
        """Bool mask: which completions no reward function could score."""
        return np.array([t.unscored for t in self.trajectories], dtype=bool)

    def advantages(self, scale_rewards: bool = True, eps: float = 1e-4) -> np.ndarray:
        """GRPO advantages: reward minus the group mean, divided by the group
        std when ``scale_rewards`` (TRL's default ``scale_rewards="group"``).
        As in TRL, unscored completions get 0 and are left out of the mean
        and std."""
        r = self.rewards
        scored = ~self.unscored
        a = np.zeros_like(r)
        if scored.any():
            s = r[scored]
            a[scored] = s - s.mean()
            if scale_rewards:
                a[scored] = a[scored] / (s.std() + eps)
        return a.astype(np.float32)

    @property
    def num_tokens(self) -> int:
        return int(sum(t.token_ids.size for t in self.trajectories))


@dataclass(frozen=True)
class Batch:
    """The batch for ``step``; ``reserved`` when it was served before (the
    trainer crashed before acking it)."""

    run_id: str
    step: int
    groups: tuple[Group, ...]
    reserved: bool
    dropped_stale: int

    @property
    def group_ids(self) -> list[str]:
        return [g.group_id for g in self.groups]

    @property
    def num_tokens(self) -> int:
        return sum(g.num_tokens for g in self.groups)

    def ages(self) -> list[int]:
        """Age of each group at this step (``step - min_policy_version``)."""
        return [self.step - g.min_policy_version for g in self.groups]


def unpack_int32(raw: bytes, what: str) -> np.ndarray:
    """Little-endian int32 array from packed bytes (read-only view, no copy)."""
    if len(raw) % 4:
        raise BatchDecodeError(f"{what}: {len(raw)} bytes is not a whole number of int32")
    return np.frombuffer(raw, dtype=_INT32)


def unpack_float32(raw: bytes, what: str) -> np.ndarray:
    """Little-endian float32 array from packed bytes (read-only view, no copy)."""
    if len(raw) % 4:
        raise BatchDecodeError(f"{what}: {len(raw)} bytes is not a whole number of float32")
    return np.frombuffer(raw, dtype=_FLOAT32)


def decode_group(raw: bytes, expected_group_size: int = 0) -> Group:
    """Decodes and checks one encoded PromptGroup."""
    msg = pb.PromptGroup()
    try:
        msg.ParseFromString(raw)
    except Exception as err:  # protobuf raises DecodeError, a plain Exception subclass
        raise BatchDecodeError(f"group is not a valid PromptGroup: {err}") from err
    gid = msg.group_id or "<no id>"
    if not msg.group_id:
        raise BatchDecodeError("group has no group_id")
    if msg.min_policy_version > msg.max_policy_version:
        raise BatchDecodeError(f"group {gid}: min_policy_version {msg.min_policy_version} > max {msg.max_policy_version}")
    if expected_group_size and len(msg.trajectories) != expected_group_size:
        raise BatchDecodeError(f"group {gid}: {len(msg.trajectories)} trajectories, expected {expected_group_size}")
    trajectories = []
    for i, t in enumerate(msg.trajectories):
        where = f"group {gid} trajectories[{i}]"
        ids = unpack_int32(t.token_ids, f"{where}.token_ids")
        lps = unpack_float32(t.logprobs, f"{where}.logprobs")
        if ids.size != lps.size:
            raise BatchDecodeError(f"{where}: {ids.size} token ids but {lps.size} logprobs")
        if ids.size and int(ids.min()) < 0:
            raise BatchDecodeError(f"{where}.token_ids: negative token id")
        if lps.size and (not np.all(np.isfinite(lps)) or float(lps.max()) > 0.0):
            raise BatchDecodeError(f"{where}.logprobs: every logprob must be finite and <= 0")
        if not math.isfinite(t.reward):
            raise BatchDecodeError(f"{where}.reward: {t.reward} is not finite")
        trajectories.append(
            Trajectory(
                token_ids=ids,
                logprobs=lps,
                reward=float(t.reward),
                min_policy_version=int(t.min_policy_version),
                max_policy_version=int(t.max_policy_version),
                finish_reason=t.finish_reason,
                text=t.text,
                unscored=bool(t.unscored),
            )
        )
    return Group(
        group_id=msg.group_id,
        prompt_id=msg.prompt_id,
        target_step=int(msg.target_step),
        min_policy_version=int(msg.min_policy_version),
        max_policy_version=int(msg.max_policy_version),
        prompt_token_ids=unpack_int32(msg.prompt_token_ids, f"group {gid}.prompt_token_ids"),
        prompt_text=msg.prompt_text,
        trajectories=tuple(trajectories),
    )


def decode_batch(
    run_id: str,
    step: int,
    groups: Sequence[bytes],
    *,
    reserved: bool,
    dropped_stale: int,
    expected_group_size: int = 0,
    max_trajectory_age_steps: int = -1,
) -> Batch:
    """Decodes a served batch. With ``max_trajectory_age_steps >= 0`` it also
    checks the staleness contract (the control plane guarantees it; a
    violation means a bug there, so it is an error rather than a warning)."""
    decoded = tuple(decode_group(g, expected_group_size) for g in groups)
    seen: set[str] = set()
    for g in decoded:
        if g.group_id in seen:
            raise BatchDecodeError(f"group {g.group_id} appears twice in the batch of step {step}")
        seen.add(g.group_id)
        if max_trajectory_age_steps >= 0 and step - g.min_policy_version > max_trajectory_age_steps:
            raise BatchDecodeError(
                f"group {g.group_id} has age {step - g.min_policy_version} at step {step}, "
                f"over max_trajectory_age_steps {max_trajectory_age_steps}"
            )
    return Batch(run_id=run_id, step=step, groups=decoded, reserved=reserved, dropped_stale=dropped_stale)


def pack_int32(values: Sequence[int]) -> bytes:
    """Inverse of :func:`unpack_int32` (tests, fakes)."""
    return np.asarray(values, dtype=_INT32).tobytes()


def pack_float32(values: Sequence[float]) -> bytes:
    """Inverse of :func:`unpack_float32` (tests, fakes)."""
    return np.asarray(values, dtype=_FLOAT32).tobytes()
