"""The outbound throttle: at most N Vonage sends a second, shared through the
rate-limit storage (Redis when configured, so every worker and instance counts
together). A send waits for a slot instead of collecting 429s from Vonage."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from limits import RateLimitItemPerSecond
from limits.storage import Storage
from limits.strategies import MovingWindowRateLimiter

THROTTLE_KEY = "vonage-sends"


class NoSlot(Exception):
    """No slot before the deadline."""

    def __init__(self, retry_after: float):
        super().__init__(f"no send slot within the time budget; retry after {retry_after:.1f}s")
        self.retry_after = retry_after


class SendThrottle:
    def __init__(
        self,
        storage: Storage,
        per_second: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._limiter = MovingWindowRateLimiter(storage)
        self._item = RateLimitItemPerSecond(per_second)
        self._clock = clock
        self._sleep = sleep

    def acquire(self, deadline: float) -> float:
        """Take a slot, waiting up to `deadline` (monotonic); returns seconds waited."""
        started = self._clock()
        while not self._limiter.hit(self._item, THROTTLE_KEY):
            reset_at, _remaining = self._limiter.get_window_stats(self._item, THROTTLE_KEY)
            wait = max(0.005, reset_at - time.time()) + random.uniform(0, 0.01)
            if self._clock() + wait >= deadline:
                raise NoSlot(wait)
            self._sleep(wait)
        return self._clock() - started
