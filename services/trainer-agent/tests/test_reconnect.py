"""Backoff delays and the reconnect loop, with injected time and randomness."""

from __future__ import annotations

import threading

import grpc
import pytest

from tandem_trainer.backoff import BackoffPolicy, backoff_delay_s
from tandem_trainer.client import MAX_RESYNCS, run_with_reconnect
from tandem_trainer.errors import AgentError, TandemRpcError
from tandem_trainer.log import get_logger

POLICY = BackoffPolicy(initial_s=0.1, max_s=1.0, give_up_after_s=10.0)
LOG = get_logger("test")


def test_delay_doubles_up_to_the_cap_with_equal_jitter() -> None:
    assert [backoff_delay_s(POLICY, a, lambda: 1.0) for a in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert [backoff_delay_s(POLICY, a, lambda: 0.0) for a in range(3)] == [0.05, 0.1, 0.2]
    assert backoff_delay_s(POLICY, 10_000, lambda: 2.0) == 1.0  # huge attempt, out-of-range random: clamped


class Clock:
    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.t += s


def unavailable() -> TandemRpcError:
    return TandemRpcError(grpc.StatusCode.UNAVAILABLE, "down")


def run(body, clock: Clock, progress=lambda: 0):  # type: ignore[no-untyped-def]
    return run_with_reconnect(body, policy=POLICY, progress=progress, stop=threading.Event(), log=LOG, random=lambda: 1.0, now=clock.now, sleep=clock.sleep)


def test_retries_unavailable_with_growing_delays_then_succeeds() -> None:
    clock, calls = Clock(), []

    def body() -> str:
        calls.append(1)
        if len(calls) < 4:
            raise unavailable()
        return "ok"

    assert run(body, clock) == "ok"
    assert clock.sleeps == [0.1, 0.2, 0.4]


def test_progress_ends_an_outage_and_resets_the_backoff() -> None:
    clock, state = Clock(), {"calls": 0, "progress": 0}

    def body() -> str:
        state["calls"] += 1
        if state["calls"] == 3:
            state["progress"] += 1  # this session answered a pull before failing
        if state["calls"] < 5:
            raise unavailable()
        return "ok"

    assert run(body, clock, progress=lambda: state["progress"]) == "ok"
    assert clock.sleeps == [0.1, 0.2, 0.1, 0.2]


def test_gives_up_after_the_outage_budget() -> None:
    clock = Clock()

    def body() -> None:
        raise unavailable()

    with pytest.raises(AgentError, match="unusable"):
        run(body, clock)
    assert sum(clock.sleeps) >= POLICY.give_up_after_s - POLICY.max_s


@pytest.mark.parametrize(
    "code",
    [grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.INTERNAL],
)
def test_non_retryable_codes_propagate_at_once(code: grpc.StatusCode) -> None:
    clock = Clock()

    def body() -> None:
        raise TandemRpcError(code, "no")

    with pytest.raises(TandemRpcError):
        run(body, clock)
    assert clock.sleeps == []


def test_resync_reattaches_without_delay_a_bounded_number_of_times() -> None:
    clock, calls = Clock(), []

    def body() -> None:
        calls.append(1)
        raise TandemRpcError(grpc.StatusCode.FAILED_PRECONDITION, "already trained", "STEP_ALREADY_TRAINED")

    with pytest.raises(TandemRpcError):
        run(body, clock)
    assert len(calls) == MAX_RESYNCS + 1 and clock.sleeps == []


def test_classification() -> None:
    assert TandemRpcError(grpc.StatusCode.ABORTED, "race").retryable
    assert not TandemRpcError(grpc.StatusCode.ABORTED, "replaced", "TRAINER_REPLACED").retryable
    assert TandemRpcError(grpc.StatusCode.FAILED_PRECONDITION, "x", "RUN_COMPLETE").run_over
    assert TandemRpcError(grpc.StatusCode.FAILED_PRECONDITION, "x", "STEP_AHEAD").needs_resync
    assert not TandemRpcError(grpc.StatusCode.FAILED_PRECONDITION, "x", "BATCH_NOT_SERVED").needs_resync
