from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

BATCH_STATE_NOT_READY: BatchState
BATCH_STATE_READY: BatchState
BATCH_STATE_RUN_ENDED: BatchState
BATCH_STATE_UNSPECIFIED: BatchState
DESCRIPTOR: _descriptor.FileDescriptor

class AckBatchRequest(_message.Message):
    __slots__ = ["run_id", "step"]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    step: int
    def __init__(self, run_id: _Optional[str] = ..., step: _Optional[int] = ...) -> None: ...

class AckBatchResponse(_message.Message):
    __slots__ = ["duplicate", "groups_trained", "policy_version"]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    GROUPS_TRAINED_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    duplicate: bool
    groups_trained: int
    policy_version: int
    def __init__(self, policy_version: _Optional[int] = ..., groups_trained: _Optional[int] = ..., duplicate: bool = ...) -> None: ...

class ControlMessage(_message.Message):
    __slots__ = ["run_ended", "send_weights", "welcome"]
    RUN_ENDED_FIELD_NUMBER: _ClassVar[int]
    SEND_WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    WELCOME_FIELD_NUMBER: _ClassVar[int]
    run_ended: RunEnded
    send_weights: SendWeights
    welcome: Welcome
    def __init__(self, welcome: _Optional[_Union[Welcome, _Mapping]] = ..., send_weights: _Optional[_Union[SendWeights, _Mapping]] = ..., run_ended: _Optional[_Union[RunEnded, _Mapping]] = ...) -> None: ...

class PromptGroup(_message.Message):
    __slots__ = ["group_id", "max_policy_version", "min_policy_version", "prompt_id", "prompt_text", "prompt_token_ids", "target_step", "trajectories"]
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    MAX_POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    MIN_POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    PROMPT_ID_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TEXT_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKEN_IDS_FIELD_NUMBER: _ClassVar[int]
    TARGET_STEP_FIELD_NUMBER: _ClassVar[int]
    TRAJECTORIES_FIELD_NUMBER: _ClassVar[int]
    group_id: str
    max_policy_version: int
    min_policy_version: int
    prompt_id: str
    prompt_text: str
    prompt_token_ids: bytes
    target_step: int
    trajectories: _containers.RepeatedCompositeFieldContainer[Trajectory]
    def __init__(self, group_id: _Optional[str] = ..., prompt_id: _Optional[str] = ..., target_step: _Optional[int] = ..., min_policy_version: _Optional[int] = ..., max_policy_version: _Optional[int] = ..., prompt_token_ids: _Optional[bytes] = ..., trajectories: _Optional[_Iterable[_Union[Trajectory, _Mapping]]] = ..., prompt_text: _Optional[str] = ...) -> None: ...

class PullBatchRequest(_message.Message):
    __slots__ = ["run_id", "step", "wait_ms"]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    step: int
    wait_ms: int
    def __init__(self, run_id: _Optional[str] = ..., step: _Optional[int] = ..., wait_ms: _Optional[int] = ...) -> None: ...

class PullBatchResponse(_message.Message):
    __slots__ = ["dropped_stale", "groups", "reserved", "run_id", "state", "step"]
    DROPPED_STALE_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    RESERVED_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    dropped_stale: int
    groups: _containers.RepeatedScalarFieldContainer[bytes]
    reserved: bool
    run_id: str
    state: BatchState
    step: int
    def __init__(self, run_id: _Optional[str] = ..., step: _Optional[int] = ..., state: _Optional[_Union[BatchState, str]] = ..., groups: _Optional[_Iterable[bytes]] = ..., dropped_stale: _Optional[int] = ..., reserved: bool = ...) -> None: ...

class RunEnded(_message.Message):
    __slots__ = ["message", "phase"]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    message: str
    phase: str
    def __init__(self, phase: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class SendWeights(_message.Message):
    __slots__ = ["deadline_ms", "forms_group", "group_id", "master_address", "master_port", "policy_version", "sync_id", "world_size"]
    DEADLINE_MS_FIELD_NUMBER: _ClassVar[int]
    FORMS_GROUP_FIELD_NUMBER: _ClassVar[int]
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    MASTER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    MASTER_PORT_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    SYNC_ID_FIELD_NUMBER: _ClassVar[int]
    WORLD_SIZE_FIELD_NUMBER: _ClassVar[int]
    deadline_ms: int
    forms_group: bool
    group_id: str
    master_address: str
    master_port: int
    policy_version: int
    sync_id: str
    world_size: int
    def __init__(self, policy_version: _Optional[int] = ..., sync_id: _Optional[str] = ..., master_address: _Optional[str] = ..., master_port: _Optional[int] = ..., world_size: _Optional[int] = ..., deadline_ms: _Optional[int] = ..., group_id: _Optional[str] = ..., forms_group: bool = ...) -> None: ...

class TrainerHello(_message.Message):
    __slots__ = ["policy_version", "run_id", "simulated", "trainer_id"]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SIMULATED_FIELD_NUMBER: _ClassVar[int]
    TRAINER_ID_FIELD_NUMBER: _ClassVar[int]
    policy_version: int
    run_id: str
    simulated: bool
    trainer_id: str
    def __init__(self, run_id: _Optional[str] = ..., trainer_id: _Optional[str] = ..., policy_version: _Optional[int] = ..., simulated: bool = ...) -> None: ...

class TrainerMessage(_message.Message):
    __slots__ = ["hello", "weights_ready", "weights_sent"]
    HELLO_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_READY_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_SENT_FIELD_NUMBER: _ClassVar[int]
    hello: TrainerHello
    weights_ready: WeightsReady
    weights_sent: WeightsSent
    def __init__(self, hello: _Optional[_Union[TrainerHello, _Mapping]] = ..., weights_ready: _Optional[_Union[WeightsReady, _Mapping]] = ..., weights_sent: _Optional[_Union[WeightsSent, _Mapping]] = ...) -> None: ...

class Trajectory(_message.Message):
    __slots__ = ["finish_reason", "logprobs", "max_policy_version", "min_policy_version", "reward", "text", "token_ids", "unscored"]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    LOGPROBS_FIELD_NUMBER: _ClassVar[int]
    MAX_POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    MIN_POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    REWARD_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TOKEN_IDS_FIELD_NUMBER: _ClassVar[int]
    UNSCORED_FIELD_NUMBER: _ClassVar[int]
    finish_reason: str
    logprobs: bytes
    max_policy_version: int
    min_policy_version: int
    reward: float
    text: str
    token_ids: bytes
    unscored: bool
    def __init__(self, token_ids: _Optional[bytes] = ..., logprobs: _Optional[bytes] = ..., reward: _Optional[float] = ..., min_policy_version: _Optional[int] = ..., max_policy_version: _Optional[int] = ..., finish_reason: _Optional[str] = ..., text: _Optional[str] = ..., unscored: bool = ...) -> None: ...

class WeightsReady(_message.Message):
    __slots__ = ["policy_version", "update_info_json"]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    UPDATE_INFO_JSON_FIELD_NUMBER: _ClassVar[int]
    policy_version: int
    update_info_json: str
    def __init__(self, policy_version: _Optional[int] = ..., update_info_json: _Optional[str] = ...) -> None: ...

class WeightsSent(_message.Message):
    __slots__ = ["error", "ok", "policy_version", "seconds", "sync_id"]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    SYNC_ID_FIELD_NUMBER: _ClassVar[int]
    error: str
    ok: bool
    policy_version: int
    seconds: float
    sync_id: str
    def __init__(self, policy_version: _Optional[int] = ..., ok: bool = ..., error: _Optional[str] = ..., seconds: _Optional[float] = ..., sync_id: _Optional[str] = ...) -> None: ...

class Welcome(_message.Message):
    __slots__ = ["batch_groups", "group_size", "max_steps", "max_trajectory_age_steps", "next_step", "run_id"]
    BATCH_GROUPS_FIELD_NUMBER: _ClassVar[int]
    GROUP_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_STEPS_FIELD_NUMBER: _ClassVar[int]
    MAX_TRAJECTORY_AGE_STEPS_FIELD_NUMBER: _ClassVar[int]
    NEXT_STEP_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    batch_groups: int
    group_size: int
    max_steps: int
    max_trajectory_age_steps: int
    next_step: int
    run_id: str
    def __init__(self, run_id: _Optional[str] = ..., next_step: _Optional[int] = ..., max_steps: _Optional[int] = ..., max_trajectory_age_steps: _Optional[int] = ..., batch_groups: _Optional[int] = ..., group_size: _Optional[int] = ...) -> None: ...

class BatchState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []
