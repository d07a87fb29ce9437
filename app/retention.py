"""Message retention: the texts of messages older than MESSAGE_RETENTION_DAYS are erased.

Rows, statuses, segments and prices stay, so counts and bills still add up.
Outbox events older than the period (they carry copies of texts) are deleted
once none of their deliveries is still pending, and so are dead letters
(raw webhook bodies) received before it, reviewed or not.
It runs two ways: `flask --app app retention` (from cron or a scheduler), and a
sweep inside every serving process, started on its first request and repeated
hourly while `MESSAGE_RETENTION_DAYS` is set. Sweeps are idempotent, so several
processes sweeping at once only repeat each other's work.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from sqlalchemy import Engine

from app.store.dialect import utcnow
from app.store.engine import write_transaction
from app.store.privacy import erase_dead_letters_before, erase_events_before, erase_texts_before

SWEEP_INTERVAL_SECONDS = 3600

log = logging.getLogger(__name__)


def sweep(engine: Engine, days: int, now: datetime | None = None) -> int:
    """Erase the texts of messages created more than `days` days before `now`; how many."""
    cutoff = (now or utcnow()) - timedelta(days=days)
    with write_transaction(engine) as connection:
        erased = erase_texts_before(connection, cutoff)
        events = erase_events_before(connection, cutoff)
        dead = erase_dead_letters_before(connection, cutoff)
    if erased or events or dead:
        log.info(
            "retention erased message texts",
            extra={
                "erased": erased,
                "events_erased": events,
                "dead_letters_erased": dead,
                "days": days,
            },
        )
    return erased


class Sweeper:
    """One background thread per process that sweeps every `interval` seconds."""

    def __init__(self, engine: Engine, days: int, interval: float = SWEEP_INTERVAL_SECONDS) -> None:
        self.engine = engine
        self.days = days
        self.interval = interval
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.stopped = threading.Event()

    def start(self) -> None:
        """Start the thread unless it runs already (cheap: called on every request)."""
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="retention-sweep", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                sweep(self.engine, self.days)
            except Exception:
                log.exception("retention sweep failed; retrying at the next interval")
            if self.stopped.wait(self.interval):
                return


def init_app(app, days: int) -> None:
    """Sweep from this process while retention is on (off: nothing runs)."""
    if days:
        sweeper = Sweeper(app.extensions["db"], days)
        app.extensions["retention"] = sweeper
        app.before_request(sweeper.start)
