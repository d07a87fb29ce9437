"""The in-memory limit storage under many threads: no crash, no lost hit.

`limits`' `MemoryStorage` (re)starts its expiry timer with an unlocked
check-then-start, so two threads could start one `Timer` twice (alisaifee/limits
issue 26). A `Timer` that is slow to build and thread switches as frequent as
Python allows widen that window: against plain `MemoryStorage` this test sees a
`RuntimeError` or `KeyError` in most runs (a few per 200 rounds); the app's
storage must never raise.
"""

from __future__ import annotations

import sys
import threading
import time
from types import SimpleNamespace

import pytest
from limits import RateLimitItemPerMinute, RateLimitItemPerSecond
from limits.storage import memory, storage_from_string
from limits.strategies import FixedWindowRateLimiter

from app.extensions import limiter
from app.limit_storage import SWEEP_INTERVAL_SECONDS, SerialisedMemoryStorage, storage_uri

THREADS = 12
ROUNDS = 200
ITEM = RateLimitItemPerMinute(10**6)


class SlowTimer(threading.Timer):
    """A Timer that takes a moment to build: the time between the check and the start."""

    def __init__(self, *args, **kwargs):
        time.sleep(0.002)
        super().__init__(*args, **kwargs)


@pytest.fixture
def thread_errors(monkeypatch):
    """Exceptions raised in any thread, caller or timer (where the KeyError surfaced)."""
    errors: list[BaseException] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: errors.append(args.exc_value))
    monkeypatch.setattr(sys, "unraisablehook", lambda args: errors.append(args.exc_value))
    monkeypatch.setattr(threading, "Timer", SlowTimer)
    # Switch threads as often as possible, so one can run between another's assignment
    # of the new timer and its start.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield errors
    sys.setswitchinterval(interval)


def hammer(storage, errors: list[BaseException]) -> FixedWindowRateLimiter:
    """THREADS threads hit one key at once, ROUNDS times, each time with the timer stopped."""
    strategy = FixedWindowRateLimiter(storage)
    # The barrier's action runs once all threads wait: the timer has expired before each round.
    barrier = threading.Barrier(THREADS, action=lambda: storage.timer.join())

    def worker() -> None:
        for _ in range(ROUNDS):
            barrier.wait()
            try:
                assert strategy.hit(ITEM, "caller")
            except Exception as error:  # reported below, with the thread errors
                errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    storage.timer.join()
    return strategy


def test_many_threads_hitting_the_limiter_raise_nothing_and_lose_no_hit(thread_errors):
    storage = storage_from_string(storage_uri("memory://"))
    assert isinstance(storage, SerialisedMemoryStorage)

    strategy = hammer(storage, thread_errors)

    assert thread_errors == []
    stats = strategy.get_window_stats(ITEM, "caller")
    assert stats.remaining == ITEM.amount - THREADS * ROUNDS


def test_the_app_limits_with_the_serialised_storage(make_app):
    make_app(RATELIMIT_STORAGE_URI="memory://")

    assert isinstance(limiter.storage, SerialisedMemoryStorage)


def test_other_storages_are_left_as_configured():
    assert storage_uri("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_hits_start_at_most_one_sweep_thread_a_second_and_limits_still_expire(monkeypatch):
    """Upstream starts a Timer thread on almost every hit under load; ours sweeps at most
    once per interval, and a window still ends on time (each hit checks its own expiry)."""
    started = []

    class CountingTimer(threading.Timer):
        def start(self):
            started.append(self)
            super().start()

    monkeypatch.setattr(threading, "Timer", CountingTimer)
    clock = [1000.0]
    monkeypatch.setattr("app.limit_storage.time", SimpleNamespace(monotonic=lambda: clock[0]))
    monkeypatch.setattr(memory, "time", SimpleNamespace(time=lambda: clock[0]))
    storage = storage_from_string(storage_uri("memory://"))
    strategy = FixedWindowRateLimiter(storage)
    item = RateLimitItemPerSecond(3)

    allowed = []
    for _ in range(50):
        allowed.append(strategy.hit(item, "caller"))
        storage.timer.join()
    assert allowed == [True] * 3 + [False] * 47
    assert len(started) == 1

    clock[0] += SWEEP_INTERVAL_SECONDS  # the window has ended, and the sweep is due
    assert strategy.hit(item, "caller")
    storage.timer.join()
    assert len(started) == 2
