"""The agent's configuration: parsed from the environment once, in
``__main__``, into a typed, validated object (units in names); nothing
reads the environment anywhere else. Every variable is listed in the
package README."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from typing import Mapping, Optional

from .backoff import BackoffPolicy
from .packing import DEFAULT_PACKED_BUFFER_SIZE_BYTES, DEFAULT_PACKED_NUM_BUFFERS
from .weight_sender import Backend


class ConfigError(ValueError):
    """An environment variable is missing or invalid (the message names it)."""


@dataclass(frozen=True)
class RewardEndpointConfig:
    """The reward server the agent runs next to training (optional)."""

    funcs: tuple[str, ...]
    weights: Optional[tuple[float, ...]]
    host: str = "127.0.0.1"
    port: int = 0
    timeout_s: float = 30.0
    answer_aliases: tuple[str, ...] = ()
    #: How reward functions get prompts and completions: "messages" (TRL's chat form) or "text".
    message_format: str = "messages"


@dataclass(frozen=True)
class AgentConfig:
    server: str
    run_id: str
    trainer_id: str
    checkpoint_dir: str
    transfer_backend: Backend = "vllm-nccl"
    #: Address of this pod the generators can reach (gloo device); default: the rendezvous address.
    transfer_local_address: str = ""
    transfer_buffer_bytes: int = DEFAULT_PACKED_BUFFER_SIZE_BYTES
    transfer_num_buffers: int = DEFAULT_PACKED_NUM_BUFFERS
    #: Longest single PullBatch long poll: SendWeights commands are served between polls.
    pull_slice_ms: int = 1000
    rpc_timeout_s: float = 10.0
    #: After reporting new weights, how long to wait for the coordinator's SendWeights.
    sync_grace_s: float = 2.0
    reconnect: BackoffPolicy = field(default_factory=BackoffPolicy)
    step_log: str = ""
    #: Include completion texts in the step log (debugging, tests).
    step_log_texts: bool = False
    log_level: str = "info"
    reward: Optional[RewardEndpointConfig] = None
    #: The run's credential (TANDEM_RUN_TOKEN), sent on every TrainerService call; never in repr or logs.
    token: str = field(default="", repr=False)
    #: Dial the control plane with TLS (TANDEM_TRAINER_TLS=true), verifying against ca_file or the system roots.
    tls: bool = False
    ca_file: str = ""


def _int(env: Mapping[str, str], key: str, default: int, minimum: int = 0) -> int:
    raw = env.get(key, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{key}: {raw!r} is not an integer") from None
    if value < minimum:
        raise ConfigError(f"{key}: must be >= {minimum}, got {value}")
    return value


def load_config(env: Mapping[str, str]) -> AgentConfig:
    """Parses the agent's environment; ConfigError names each bad variable."""
    server = env.get("TANDEM_SERVER", "")
    if not server:
        raise ConfigError("TANDEM_SERVER: required (host:port of the control plane's gRPC TrainerService)")
    run_id = env.get("TANDEM_RUN_ID", "")
    if not run_id:
        raise ConfigError("TANDEM_RUN_ID: required")
    backend = env.get("TANDEM_TRANSFER_BACKEND", "vllm-nccl")
    if backend not in ("gloo", "nccl", "vllm-nccl"):
        raise ConfigError(f"TANDEM_TRANSFER_BACKEND: {backend!r} is not one of gloo, nccl, vllm-nccl")
    reward: Optional[RewardEndpointConfig] = None
    funcs = tuple(f for f in env.get("TANDEM_REWARD_FUNCS", "").split(",") if f)
    if funcs:
        weights: Optional[tuple[float, ...]] = None
        if env.get("TANDEM_REWARD_WEIGHTS"):
            try:
                weights = tuple(float(w) for w in env["TANDEM_REWARD_WEIGHTS"].split(","))
            except ValueError:
                raise ConfigError("TANDEM_REWARD_WEIGHTS: comma-separated numbers expected") from None
            if len(weights) != len(funcs):
                raise ConfigError(f"TANDEM_REWARD_WEIGHTS: {len(weights)} weights for {len(funcs)} TANDEM_REWARD_FUNCS")
        reward = RewardEndpointConfig(
            funcs=funcs,
            weights=weights,
            host=env.get("TANDEM_REWARD_HOST", "127.0.0.1"),
            port=_int(env, "TANDEM_REWARD_PORT", 0),
            timeout_s=_int(env, "TANDEM_REWARD_TIMEOUT_MS", 30_000, 1) / 1000.0,
            answer_aliases=tuple(a for a in env.get("TANDEM_REWARD_ANSWER_ALIASES", "").split(",") if a),
            message_format=reward_message_format(env),
        )
    return AgentConfig(
        server=server,
        run_id=run_id,
        trainer_id=env.get("TANDEM_TRAINER_ID") or f"{socket.gethostname()}-{os.getpid()}",
        checkpoint_dir=env.get("TANDEM_CHECKPOINT_DIR", "./tandem-checkpoint"),
        transfer_backend=backend,  # type: ignore[arg-type]  # checked above
        transfer_local_address=env.get("TANDEM_TRANSFER_LOCAL_ADDRESS", ""),
        transfer_buffer_bytes=_int(env, "TANDEM_TRANSFER_BUFFER_BYTES", DEFAULT_PACKED_BUFFER_SIZE_BYTES, 1),
        transfer_num_buffers=_int(env, "TANDEM_TRANSFER_NUM_BUFFERS", DEFAULT_PACKED_NUM_BUFFERS, 1),
        pull_slice_ms=_int(env, "TANDEM_PULL_SLICE_MS", 1000, 0),
        rpc_timeout_s=_int(env, "TANDEM_RPC_TIMEOUT_MS", 10_000, 1) / 1000.0,
        sync_grace_s=_int(env, "TANDEM_SYNC_GRACE_MS", 2000, 0) / 1000.0,
        reconnect=BackoffPolicy(
            initial_s=_int(env, "TANDEM_RECONNECT_INITIAL_MS", 200, 1) / 1000.0,
            max_s=_int(env, "TANDEM_RECONNECT_MAX_MS", 10_000, 1) / 1000.0,
            give_up_after_s=_int(env, "TANDEM_RECONNECT_GIVE_UP_MS", 600_000, 1) / 1000.0,
        ),
        step_log=env.get("TANDEM_STEP_LOG", ""),
        step_log_texts=env.get("TANDEM_STEP_LOG_TEXTS", "") in ("1", "true"),
        log_level=env.get("TANDEM_LOG_LEVEL", "info"),
        reward=reward,
        token=env.get("TANDEM_RUN_TOKEN", ""),
        tls=_flag(env, "TANDEM_TRAINER_TLS"),
        ca_file=env.get("TANDEM_TLS_CA_FILE", ""),
    )


def reward_message_format(env: Mapping[str, str]) -> str:
    """``TANDEM_REWARD_FORMAT``: ``messages`` (default; chat messages, as TRL's
    AsyncGRPO passes them to reward functions) or ``text`` (plain strings)."""
    raw = env.get("TANDEM_REWARD_FORMAT", "") or "messages"
    if raw not in ("messages", "text"):
        raise ConfigError(f"TANDEM_REWARD_FORMAT: {raw!r} is not one of messages, text")
    return raw


def _flag(env: Mapping[str, str], key: str) -> bool:
    raw = env.get(key, "")
    if raw in ("", "false", "0"):
        return False
    if raw in ("true", "1"):
        return True
    raise ConfigError(f"{key}: {raw!r} is not true or false")
