"""The outbound throttle: at most N Vonage sends a second, shared through the
rate-limit storage (Redis when configured, so every worker and instance counts
together). A send waits for a slot instead of collecting 429s from Vonage.

Also the cap on sends in flight in one worker: a send may wait many seconds
on Vonage, and without a cap a slow Vonage holds every thread, leaving none
for webhooks and health probes.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from limits import RateLimitItemPerSecond
from limits.storage import Storage
from limits.strategies import MovingWindowRateLimiter

THROTTLE_KEY = "vonage-sends"


class NoSlot(Exception):
    """No slot before the deadline."""

    def __init__(self, retry_after: float):
        super().__init__(f"no send slot within the time budget; retry after {retry_after:.1f}s")
        self.retry_after = retry_after


class ThrottleStorageFailed(Exception):
    """The limit storage failed (refused, reset or timed out) while a send waited."""


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

    def try_acquire(self) -> bool:
        """Take a slot only if one is free now; raises `ThrottleStorageFailed`."""
        try:
            return self._limiter.hit(self._item, THROTTLE_KEY)
        except Exception as error:  # the storage's own errors: redis, limits, OS
            raise ThrottleStorageFailed(type(error).__name__) from error

    def acquire(self, deadline: float) -> float:
        """Take a slot, waiting up to `deadline` (monotonic); returns seconds waited."""
        started = self._clock()
        try:
            while not self._limiter.hit(self._item, THROTTLE_KEY):
                reset_at, _remaining = self._limiter.get_window_stats(self._item, THROTTLE_KEY)
                wait = max(0.005, reset_at - time.time()) + random.uniform(0, 0.01)
                if self._clock() + wait >= deadline:
                    raise NoSlot(wait)
                self._sleep(wait)
        except NoSlot:
            raise
        except Exception as error:  # the storage's own errors: redis, limits, OS
            raise ThrottleStorageFailed(type(error).__name__) from error
        return self._clock() - started


class Busy(Exception):
    """Every send slot of this worker is taken."""


class InFlightCap:
    """At most `limit` sends at once in this process; the next is refused, not queued."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._slots = threading.BoundedSemaphore(limit)

    @contextmanager
    def slot(self) -> Iterator[None]:
        if not self._slots.acquire(blocking=False):
            raise Busy
        try:
            yield
        finally:
            self._slots.release()
