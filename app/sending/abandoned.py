"""Settling sends whose request died: `pending` rows become `unknown` (Vonage may
have been called) or `failed` (certainly not, their daily slot given back)."""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from sqlalchemy import Connection

from app.sending.budget import hold_seconds
from app.store import daily_count
from app.store import messages as store
from app.store.dialect import utcnow

log = logging.getLogger("app.sending")

SWEEP_INTERVAL_SECONDS = 5.0


def settle_abandoned_sends(connection: Connection, config) -> int:
    """Settle rows left `pending` by requests that can no longer be alive."""
    cutoff = utcnow() - timedelta(seconds=hold_seconds(config))
    settled = store.settle_abandoned(connection, cutoff)
    give_back_slots(connection, config, settled)
    for row in settled:
        log.warning(
            "abandoned send settled", extra={"message_id": row.message_id, "outcome": row.status}
        )
    return len(settled)


def give_back_slots(connection: Connection, config, settled: list[store.Settled]) -> None:
    if not config.send_sms_daily_limit:
        return
    for row in settled:
        if row.status == "failed":
            daily_count.give_back_daily_slot(connection, row.created_at.date())


_sweep_lock = threading.Lock()
_last_sweep = 0.0


def sweep_now_and_then(connection: Connection, config) -> None:
    """At most every few seconds per process, inside a send's own write transaction."""
    global _last_sweep
    now = time.monotonic()
    with _sweep_lock:
        if now - _last_sweep < SWEEP_INTERVAL_SECONDS:
            return
        _last_sweep = now
    settle_abandoned_sends(connection, config)
