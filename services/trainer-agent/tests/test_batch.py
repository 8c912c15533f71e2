"""Decoding served batches: packed little-endian arrays, and every check at
the boundary names the group and field."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tandem_trainer._proto.tandem.v1 import trainer_service_pb2 as pb
from tandem_trainer.batch import BatchDecodeError, decode_batch, decode_group, pack_float32, pack_int32
from tandem_trainer.collate import collate
from tests.fake_control_plane import make_group


def group(**over: object) -> bytes:
    t = pb.Trajectory(token_ids=pack_int32([7, 8]), logprobs=pack_float32([-0.1, -0.2]), reward=1.0)
    fields = {"group_id": "g", "trajectories": [t, t], "prompt_token_ids": pack_int32([1, 2, 3])}
    fields.update(over)
    return pb.PromptGroup(**fields).SerializeToString()  # type: ignore[arg-type]


def test_arrays_are_little_endian_views() -> None:
    raw = (np.array([1, 256, 70000], dtype="<i4")).tobytes()
    g = decode_group(group(prompt_token_ids=raw))
    assert g.prompt_token_ids.tolist() == [1, 256, 70000] and g.prompt_token_ids.dtype == np.dtype("<i4")


@pytest.mark.parametrize(
    "traj,match",
    [
        (pb.Trajectory(token_ids=b"\x01\x00\x00", logprobs=b""), "not a whole number of int32"),
        (pb.Trajectory(token_ids=pack_int32([1, 2]), logprobs=pack_float32([-1.0])), "2 token ids but 1 logprobs"),
        (pb.Trajectory(token_ids=pack_int32([1]), logprobs=pack_float32([0.5])), "finite and <= 0"),
        (pb.Trajectory(token_ids=pack_int32([1]), logprobs=pack_float32([float("nan")])), "finite and <= 0"),
        (pb.Trajectory(token_ids=pack_int32([-4]), logprobs=pack_float32([-1.0])), "negative token id"),
        (pb.Trajectory(token_ids=pack_int32([1]), logprobs=pack_float32([-1.0]), reward=float("inf")), "reward"),
    ],
)
def test_malformed_trajectories_are_rejected_with_their_path(traj: pb.Trajectory, match: str) -> None:
    with pytest.raises(BatchDecodeError, match=match) as info:
        decode_group(group(trajectories=[traj]))
    assert "group g trajectories[0]" in str(info.value) or "group g" in str(info.value)


def test_batch_checks() -> None:
    a, b = make_group("a", 3, 2), make_group("b", 3, 1)
    batch = decode_batch("r", 3, [a, b], reserved=True, dropped_stale=1, expected_group_size=2, max_trajectory_age_steps=2)
    assert batch.group_ids == ["a", "b"] and batch.ages() == [1, 2] and batch.reserved and batch.num_tokens == 12
    with pytest.raises(BatchDecodeError, match="appears twice"):
        decode_batch("r", 3, [a, a], reserved=False, dropped_stale=0)
    with pytest.raises(BatchDecodeError, match="over max_trajectory_age_steps"):
        decode_batch("r", 3, [b], reserved=False, dropped_stale=0, max_trajectory_age_steps=1)
    with pytest.raises(BatchDecodeError, match="expected 3"):
        decode_batch("r", 3, [a], reserved=False, dropped_stale=0, expected_group_size=3)
    with pytest.raises(BatchDecodeError, match="no group_id"):
        decode_group(pb.PromptGroup().SerializeToString())
    with pytest.raises(BatchDecodeError, match="not a valid PromptGroup"):
        decode_group(b"\xff\xff\xff")


def test_collate_aligns_prompts_completions_and_logprobs() -> None:
    batch = decode_batch("r", 1, [make_group("a", 1, 1, group_size=2)], reserved=False, dropped_stale=0)
    s = collate(batch, pad_token_id=0)
    assert s.input_ids.tolist() == [[1, 40, 41, 5, 6, 2], [1, 40, 41, 6, 7, 2]]
    assert s.completion_mask.tolist() == [[0, 0, 0, 1, 1, 1]] * 2
    assert torch.allclose(s.old_logprobs[1], torch.tensor([0, 0, 0, -0.5, -2.0, -0.25]))
    assert s.rewards.tolist() == [0.0, 1.0]
    # Group-normalised advantages: symmetric around 0 for two samples.
    assert s.advantages[0] < 0 < s.advantages[1] and abs(float(s.advantages.sum())) < 1e-5
