"""A send's time budget, and how long its Idempotency-Key claim is held."""

from __future__ import annotations

import time
from dataclasses import dataclass

from app.vonage_client import CONNECT_TIMEOUT_SECONDS

HOLD_MARGIN_SECONDS = 2.0


@dataclass(frozen=True)
class Budget:
    """One send's clock: Vonage (and the throttle) until `deadline`, all of it
    (storage waits, the last attempt, the outcome's write) within `hold_seconds`."""

    deadline: float
    seconds: float

    @classmethod
    def start(cls, config) -> Budget:
        seconds = config.vonage_timeout_seconds
        return cls(time.monotonic() + seconds, seconds)

    def remaining(self, floor: float = 0.05) -> float:
        return max(floor, self.deadline - time.monotonic())


def hold_seconds(config) -> float:
    """How long a send can be alive at most, from its claim: the storage waits and
    throttle within the budget, the last Vonage attempt (connect + read timeout)
    started just before the deadline, then the outcome's write within the budget."""
    budget = config.vonage_timeout_seconds
    return budget + (CONNECT_TIMEOUT_SECONDS + budget) + budget + HOLD_MARGIN_SECONDS
