"""Writes that must not be lost when storage fails after Vonage accepted a send.

The request answers at once (202, or maybe-sent with its `id`) and hands the
write here: one thread per process retries the queued writes in order until
storage takes them. If the process dies first, the message's row is settled
anyway: `unknown` once its request can no longer be alive, then by its status
webhook.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from sqlalchemy import Connection, Engine

from app.store.engine import STORAGE_ERRORS, write_transaction

MAX_QUEUED = 10_000
FIRST_BACKOFF_SECONDS = 0.2
MAX_BACKOFF_SECONDS = 5.0
DRAIN_AT_EXIT_SECONDS = 5.0

log = logging.getLogger(__name__)

Write = Callable[[Connection], None]


class DeferredWrites:
    def __init__(self, engine: Engine, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self._engine = engine
        self._sleep = sleep
        self._queue: deque[tuple[str, Write]] = deque()
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None
        self._exit_hook = False

    def defer(self, what: str, write: Write) -> None:
        """Queue `write` (applied in one transaction) until storage answers again."""
        with self._lock:
            if len(self._queue) >= MAX_QUEUED:
                log.error("deferred write dropped: queue full", extra={"write": what})
                return
            self._queue.append((what, write))
            log.warning("storage failed; write deferred", extra={"write": what})
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(
                    target=self._flush, name="deferred-writes", daemon=True
                )
                self._worker.start()
            if not self._exit_hook:
                atexit.register(self.drain, DRAIN_AT_EXIT_SECONDS)
                self._exit_hook = True

    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    def drain(self, timeout: float) -> bool:
        """Wait up to `timeout` for the queue to empty; True when it did."""
        deadline = time.monotonic() + timeout
        while self.pending() and time.monotonic() < deadline:
            time.sleep(0.05)
        return not self.pending()

    def _flush(self) -> None:
        backoff = FIRST_BACKOFF_SECONDS
        while True:
            with self._lock:
                if not self._queue:
                    self._worker = None
                    return
                what, write = self._queue[0]
            try:
                with write_transaction(self._engine) as connection:
                    write(connection)
            except STORAGE_ERRORS:
                self._sleep(backoff)
                backoff = min(MAX_BACKOFF_SECONDS, backoff * 2)
                continue
            except Exception:
                log.exception("deferred write failed for good", extra={"write": what})
            with self._lock:
                self._queue.popleft()
            log.info("deferred write stored", extra={"write": what})
            backoff = FIRST_BACKOFF_SECONDS
