from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CancelRunRequest(_message.Message):
    __slots__ = ["reason", "run_id"]
    REASON_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    reason: str
    run_id: str
    def __init__(self, run_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class GeneratorCounts(_message.Message):
    __slots__ = ["desired", "joining", "ready", "syncing", "unhealthy"]
    DESIRED_FIELD_NUMBER: _ClassVar[int]
    JOINING_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    SYNCING_FIELD_NUMBER: _ClassVar[int]
    UNHEALTHY_FIELD_NUMBER: _ClassVar[int]
    desired: int
    joining: int
    ready: int
    syncing: int
    unhealthy: int
    def __init__(self, desired: _Optional[int] = ..., joining: _Optional[int] = ..., ready: _Optional[int] = ..., syncing: _Optional[int] = ..., unhealthy: _Optional[int] = ...) -> None: ...

class GetRunRequest(_message.Message):
    __slots__ = ["run_id"]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class Ledger(_message.Message):
    __slots__ = ["admitted", "cancelled", "dropped_stale", "failed", "tokens_trained", "tokens_wasted", "trained"]
    ADMITTED_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    DROPPED_STALE_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    TOKENS_TRAINED_FIELD_NUMBER: _ClassVar[int]
    TOKENS_WASTED_FIELD_NUMBER: _ClassVar[int]
    TRAINED_FIELD_NUMBER: _ClassVar[int]
    admitted: int
    cancelled: int
    dropped_stale: int
    failed: int
    tokens_trained: int
    tokens_wasted: int
    trained: int
    def __init__(self, admitted: _Optional[int] = ..., trained: _Optional[int] = ..., dropped_stale: _Optional[int] = ..., failed: _Optional[int] = ..., cancelled: _Optional[int] = ..., tokens_trained: _Optional[int] = ..., tokens_wasted: _Optional[int] = ...) -> None: ...

class ListRunsRequest(_message.Message):
    __slots__ = ["namespace"]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    def __init__(self, namespace: _Optional[str] = ...) -> None: ...

class ListRunsResponse(_message.Message):
    __slots__ = ["runs"]
    RUNS_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[Run]
    def __init__(self, runs: _Optional[_Iterable[_Union[Run, _Mapping]]] = ...) -> None: ...

class Run(_message.Message):
    __slots__ = ["id", "namespace", "spec", "status"]
    ID_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    id: str
    namespace: str
    spec: _struct_pb2.Struct
    status: RunStatus
    def __init__(self, id: _Optional[str] = ..., spec: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., status: _Optional[_Union[RunStatus, _Mapping]] = ..., namespace: _Optional[str] = ...) -> None: ...

class RunEvent(_message.Message):
    __slots__ = ["run_id", "status", "type"]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    status: RunStatus
    type: str
    def __init__(self, run_id: _Optional[str] = ..., type: _Optional[str] = ..., status: _Optional[_Union[RunStatus, _Mapping]] = ...) -> None: ...

class RunStatus(_message.Message):
    __slots__ = ["created_at", "finished_at", "generators", "in_flight", "ledger", "max_generator_version", "max_steps", "message", "min_generator_version", "phase", "policy_version", "queue_depth", "trainer_step", "updated_at"]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    GENERATORS_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    LEDGER_FIELD_NUMBER: _ClassVar[int]
    MAX_GENERATOR_VERSION_FIELD_NUMBER: _ClassVar[int]
    MAX_STEPS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    MIN_GENERATOR_VERSION_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    QUEUE_DEPTH_FIELD_NUMBER: _ClassVar[int]
    TRAINER_STEP_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    created_at: str
    finished_at: str
    generators: GeneratorCounts
    in_flight: int
    ledger: Ledger
    max_generator_version: int
    max_steps: int
    message: str
    min_generator_version: int
    phase: str
    policy_version: int
    queue_depth: int
    trainer_step: int
    updated_at: str
    def __init__(self, phase: _Optional[str] = ..., message: _Optional[str] = ..., trainer_step: _Optional[int] = ..., policy_version: _Optional[int] = ..., max_steps: _Optional[int] = ..., ledger: _Optional[_Union[Ledger, _Mapping]] = ..., queue_depth: _Optional[int] = ..., in_flight: _Optional[int] = ..., created_at: _Optional[str] = ..., updated_at: _Optional[str] = ..., finished_at: _Optional[str] = ..., generators: _Optional[_Union[GeneratorCounts, _Mapping]] = ..., min_generator_version: _Optional[int] = ..., max_generator_version: _Optional[int] = ...) -> None: ...

class ScaleRunRequest(_message.Message):
    __slots__ = ["generators", "run_id"]
    GENERATORS_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    generators: int
    run_id: str
    def __init__(self, run_id: _Optional[str] = ..., generators: _Optional[int] = ...) -> None: ...

class SubmitRunRequest(_message.Message):
    __slots__ = ["namespace", "run_id", "spec"]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    run_id: str
    spec: _struct_pb2.Struct
    def __init__(self, spec: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., run_id: _Optional[str] = ..., namespace: _Optional[str] = ...) -> None: ...

class WatchRunRequest(_message.Message):
    __slots__ = ["run_id"]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...
