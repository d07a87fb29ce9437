"""Outbox gauges read from the database at scrape time.

The database is the queue, so its state is the truth whichever process (web
worker, `worker:` dispatcher, another instance) made the deliveries.
"""

from __future__ import annotations

import logging

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from app.store import outbox as store
from app.store.dialect import utcnow

log = logging.getLogger(__name__)


class BacklogCollector(Collector):
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def collect(self):
        try:
            with self._engine.connect().execution_options(readonly=True) as connection:
                backlog = store.backlog(connection)
        except SQLAlchemyError as error:
            log.warning("outbox metrics unavailable: %s", type(error).__name__)
            return
        states = GaugeMetricFamily(
            "sms_event_deliveries_waiting",
            "Event deliveries pending (due or waiting to retry) or failed (given up), now",
            labels=["state"],
        )
        states.add_metric(["pending"], backlog.pending)
        states.add_metric(["failed"], backlog.failed)
        yield states
        age = 0.0
        if backlog.oldest_pending is not None:
            age = max(0.0, (utcnow() - backlog.oldest_pending).total_seconds())
        yield GaugeMetricFamily(
            "sms_event_oldest_pending_age_seconds",
            "Age of the oldest event delivery not yet delivered or given up (0 when none)",
            value=age,
        )
