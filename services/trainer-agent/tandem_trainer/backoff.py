"""Capped exponential backoff with "equal jitter" (same policy as the
simulated trainer's backoff.ts), with the random source injected so tests
need not sleep or depend on chance."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class BackoffPolicy:
    """Reconnect policy. Units are seconds."""

    initial_s: float = 0.2
    max_s: float = 10.0
    #: Give up when the control plane has been unusable this long.
    give_up_after_s: float = 600.0


def backoff_delay_s(policy: BackoffPolicy, attempt: int, random: Callable[[], float]) -> float:
    """Delay before retry ``attempt`` (0 for the first retry).

    The ceiling doubles from ``initial_s`` up to ``max_s`` and the delay is
    drawn from its upper half, so trainers restarted together do not
    reconnect in lockstep, yet none retries sooner than half the ceiling.
    """
    exponent = min(max(0, math.floor(attempt)), 30)
    ceiling = min(policy.max_s, policy.initial_s * (2**exponent))
    r = min(max(random(), 0.0), 1.0)
    return ceiling / 2 + (ceiling / 2) * r
