"""The outbound throttle over the limits storage (real clock, small numbers)."""

import time

import pytest
from limits.storage import storage_from_string

from app.throttle import NoSlot, SendThrottle


def test_sends_beyond_the_rate_wait_for_a_slot(limit_storage_uri):
    throttle = SendThrottle(storage_from_string(limit_storage_uri), 2)
    deadline = time.monotonic() + 5
    waits = [throttle.acquire(deadline) for _ in range(3)]
    assert waits[0] == pytest.approx(0, abs=0.05) and waits[1] == pytest.approx(0, abs=0.05)
    assert waits[2] > 0


def test_no_slot_before_the_deadline_raises(limit_storage_uri):
    throttle = SendThrottle(storage_from_string(limit_storage_uri), 1)
    throttle.acquire(time.monotonic() + 5)
    with pytest.raises(NoSlot) as error:
        throttle.acquire(time.monotonic() + 0.01)
    assert error.value.retry_after > 0


def test_two_throttles_on_one_redis_share_the_rate(limit_storage_uri):
    """Two app instances (two throttles) on shared storage count together."""
    if not limit_storage_uri.startswith("redis"):
        pytest.skip("memory:// is per process by design; shared counting needs Redis")
    first = SendThrottle(storage_from_string(limit_storage_uri), 2)
    second = SendThrottle(storage_from_string(limit_storage_uri), 2)
    deadline = time.monotonic() + 5
    first.acquire(deadline)
    second.acquire(deadline)
    with pytest.raises(NoSlot):
        first.acquire(time.monotonic() + 0.01)
