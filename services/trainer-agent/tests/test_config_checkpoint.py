"""Configuration parsing (errors name the variable) and atomic checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tandem_trainer.checkpoint import CheckpointMeta, CheckpointStore
from tandem_trainer.config import ConfigError, load_config

BASE = {"TANDEM_SERVER": "cp:50051", "TANDEM_RUN_ID": "r"}


def test_defaults_and_units() -> None:
    c = load_config({**BASE, "TANDEM_PULL_SLICE_MS": "250", "TANDEM_RECONNECT_MAX_MS": "5000", "TANDEM_TRANSFER_BACKEND": "gloo"})
    assert c.pull_slice_ms == 250 and c.reconnect.max_s == 5.0 and c.transfer_backend == "gloo" and c.reward is None
    assert load_config(BASE).transfer_backend == "vllm-nccl"


@pytest.mark.parametrize(
    "env,var",
    [
        ({}, "TANDEM_SERVER"),
        ({"TANDEM_SERVER": "x"}, "TANDEM_RUN_ID"),
        ({**BASE, "TANDEM_TRANSFER_BACKEND": "mpi"}, "TANDEM_TRANSFER_BACKEND"),
        ({**BASE, "TANDEM_PULL_SLICE_MS": "soon"}, "TANDEM_PULL_SLICE_MS"),
        ({**BASE, "TANDEM_TRANSFER_BUFFER_BYTES": "0"}, "TANDEM_TRANSFER_BUFFER_BYTES"),
        ({**BASE, "TANDEM_REWARD_FUNCS": "m:f,m:g", "TANDEM_REWARD_WEIGHTS": "1"}, "TANDEM_REWARD_WEIGHTS"),
        ({**BASE, "TANDEM_REWARD_FUNCS": "m:f", "TANDEM_REWARD_FORMAT": "chat"}, "TANDEM_REWARD_FORMAT"),
    ],
)
def test_errors_name_the_variable(env: dict[str, str], var: str) -> None:
    with pytest.raises(ConfigError, match=var):
        load_config(env)


def test_reward_functions_get_chat_messages_unless_text_is_asked_for() -> None:
    funcs = {**BASE, "TANDEM_REWARD_FUNCS": "m:f"}
    assert load_config(funcs).reward.message_format == "messages"  # type: ignore[union-attr]  # TRL's form
    assert load_config({**funcs, "TANDEM_REWARD_FORMAT": "text"}).reward.message_format == "text"  # type: ignore[union-attr]


def test_checkpoint_round_trip_and_atomic_replace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = CheckpointStore(tmp_path)
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.Adam(model.parameters())
    model(torch.ones(1, 2)).sum().backward()
    opt.step()
    store.save(CheckpointMeta("r", 3, 2, ("a",)), model, opt)
    before = store.path.read_bytes()

    def failing_save(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError):
        store.save(CheckpointMeta("r", 4, 3, ("b",)), model, opt)
    monkeypatch.undo()
    assert store.path.read_bytes() == before, "a failed write must leave the previous checkpoint intact"
    assert [p.name for p in tmp_path.iterdir()] == [store.path.name]
    fresh, fresh_opt = torch.nn.Linear(2, 2), torch.optim.Adam(torch.nn.Linear(2, 2).parameters())
    fresh_opt = torch.optim.Adam(fresh.parameters())
    assert store.load(fresh, fresh_opt) == CheckpointMeta("r", 3, 2, ("a",))
    assert torch.equal(fresh.weight, model.weight) and fresh_opt.state_dict()["state"][0]["step"] == opt.state_dict()["state"][0]["step"]
