"""Readiness: can this worker store? Answered from a cached write probe.

A read (`SELECT 1`) answers while SQLite's write lock is held by another
process or the disk is full, so the probe writes: one tiny row, committed,
with a short lock timeout. It runs at most once every `interval` seconds per
worker and every caller in between shares its result, so a load balancer
polling often adds no writes. The same transaction settles sends abandoned by
dead requests (see `sending.settle_abandoned_sends`), so they settle even
when no one retries them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from app.store import probe
from app.store.engine import write_transaction

PROBE_INTERVAL_SECONDS = 5.0
PROBE_TIMEOUT_SECONDS = 1.0

log = logging.getLogger(__name__)


class Readiness:
    def __init__(
        self,
        engine: Engine,
        *,
        maintenance: Callable[[Connection], object] | None = None,
        interval: float = PROBE_INTERVAL_SECONDS,
        timeout: float = PROBE_TIMEOUT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._maintenance = maintenance
        self._interval = interval
        self._timeout = timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._checked_at: float | None = None
        self._ready = False

    def can_store(self) -> bool:
        """The last probe's result, probing first when it is older than the interval.

        One thread probes; the others answer with the previous result meanwhile
        (or wait for the first one ever)."""
        if self._fresh():
            return self._ready
        if not self._lock.acquire(blocking=self._checked_at is None):
            return self._ready
        try:
            if not self._fresh():
                self._ready = self._probe()
                self._checked_at = self._clock()
            return self._ready
        finally:
            self._lock.release()

    def _fresh(self) -> bool:
        return self._checked_at is not None and self._clock() - self._checked_at < self._interval

    def _probe(self) -> bool:
        try:
            with write_transaction(self._engine, self._timeout) as connection:
                probe.touch(connection)
                if self._maintenance is not None:
                    self._maintenance(connection)
        except SQLAlchemyError as error:
            log.warning("readiness probe failed: %s", type(error).__name__)
            return False
        return True
