"""The dispatcher: pushes the outbox to subscribers, at least once.

The database is the queue (see `app.store.outbox`). Each loop leases *lanes*:
up to `BATCH` due deliveries of one subscription, while no other delivery of
that subscription is in flight anywhere. A lane runs on one thread of a
bounded pool and sends its deliveries in order over one keep-alive
connection; it stops at the first failure (the rest wait for their turn) and
after `LANE_BUDGET_SECONDS` (a quarter second, so new events are claimed
soon), so a slow or dead endpoint holds one thread and delays only its own
events. Nothing waits in memory: a backlog stays in the
database, however long an endpoint fails.

The lease (`LEASE_SECONDS`) outlives the longest lane: an attempt starts only
within the lane's budget and has a hard wall-clock limit (`TIMEOUT_SECONDS`,
see `transport`), plus a margin for resolving the host and recording, so an
attempt never runs twice at once; a dispatcher killed mid-delivery leaves a
lease that expires, and the delivery is sent again with the same `webhook-id`.
On SQLite one dispatcher runs per database (a file lock), and it clears stale
leases as it starts.
"""

from __future__ import annotations

import fcntl
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from app import metrics
from app.config import Settings
from app.events import signing
from app.events.ssrf import UnsafeDestination
from app.events.transport import TIMEOUT_SECONDS, Answer, Endpoint
from app.store import outbox as store
from app.store.dialect import utcnow
from app.store.engine import write_transaction

log = logging.getLogger(__name__)

BATCH = 100
LANE_BUDGET_SECONDS = 0.25
ENDPOINT_TTL_SECONDS = 30.0
LEASE_SECONDS = 60.0
# Resolving the host (DNS) before the first attempt, and recording the outcomes.
LEASE_MARGIN_SECONDS = 30.0
if LEASE_SECONDS <= LANE_BUDGET_SECONDS + TIMEOUT_SECONDS + LEASE_MARGIN_SECONDS:
    raise RuntimeError("LEASE_SECONDS must outlive the longest lane")
POLL_SECONDS = 0.1
MAX_RETRY_AFTER_SECONDS = 86400.0


class Dispatcher:
    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        *,
        threads: int | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.threads = threads or settings.event_dispatcher_threads
        self.schedule = settings.event_retry_schedule
        self.clock = clock
        self._busy: set[str] = set()
        self._busy_lock = threading.Lock()
        self._wakeup = threading.Event()
        self._stopping = threading.Event()
        self._endpoints: dict[str, tuple[Endpoint, str, float]] = {}
        self._endpoints_lock = threading.Lock()

    # Running -----------------------------------------------------------------

    def run(self, stop: threading.Event | None = None) -> None:
        """Dispatch until `stop` is set; lanes in flight finish their current attempt."""
        stop = stop or threading.Event()
        with self._single_dispatcher_on_sqlite(stop):
            if stop.is_set():
                return
            log.info("dispatcher started", extra={"threads": self.threads})
            with ThreadPoolExecutor(self.threads, thread_name_prefix="events") as pool:
                while not stop.is_set():
                    free = self.threads - len(self._busy)
                    lanes = self._claim_safely(free) if free > 0 else []
                    for lane in lanes:
                        pool.submit(self._run_lane_and_free, lane, stop)
                    if not lanes:
                        self._wakeup.wait(POLL_SECONDS)
                        self._wakeup.clear()
                self._stopping.set()
            self._prune_endpoints(set(), max_age=0.0)
            log.info("dispatcher stopped")

    def run_once(self) -> int:
        """Claim what is due now and send it, on this thread; the number of attempts."""
        attempts = 0
        for lane in self._claim(self.threads):
            try:
                attempts += self._run_lane(lane, threading.Event())
            finally:
                with self._busy_lock:
                    self._busy.discard(lane.subscription["id"])
        return attempts

    def run_until_idle(self, max_rounds: int = 100) -> int:
        total = 0
        for _ in range(max_rounds):
            done = self.run_once()
            if not done:
                break
            total += done
        return total

    @contextmanager
    def _single_dispatcher_on_sqlite(self, stop: threading.Event):
        database = self.engine.url.database if self.engine.dialect.name == "sqlite" else None
        if not database or database == ":memory:":
            yield
            return
        with open(f"{database}.dispatcher.lock", "w") as lock:
            waiting_logged = False
            while not stop.is_set():
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if not waiting_logged:
                        log.info("another dispatcher serves this SQLite database; standing by")
                        waiting_logged = True
                    stop.wait(1.0)
            if stop.is_set():
                yield
                return
            try:
                with write_transaction(self.engine) as connection:
                    released = store.release_all_leases(connection)
                if released:
                    log.info("released stale leases", extra={"deliveries": released})
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    # Claiming ----------------------------------------------------------------

    def _claim_safely(self, free: int) -> list[store.Lane]:
        try:
            return self._claim(free)
        except SQLAlchemyError as error:
            log.warning("could not claim deliveries: %s", type(error).__name__)
            time.sleep(1.0)
            return []

    def _claim(self, free: int) -> list[store.Lane]:
        now = self.clock()
        lease_until = now + timedelta(seconds=LEASE_SECONDS)
        lanes: list[store.Lane] = []
        with self._busy_lock:
            busy = set(self._busy)
        self._prune_endpoints(busy)
        with self.engine.connect().execution_options(readonly=True) as connection:
            if not store.lanes_with_work(connection, now, busy):
                return []
        with write_transaction(self.engine) as connection:
            candidates = store.lanes_with_work(connection, now, busy)
            random.shuffle(candidates)
            for subscription_id in candidates:
                lane = store.claim_lane(
                    connection, subscription_id, str(uuid.uuid4()), now, lease_until, BATCH
                )
                if lane is not None:
                    lanes.append(lane)
                    if len(lanes) >= free:
                        break
        with self._busy_lock:
            self._busy.update(lane.subscription["id"] for lane in lanes)
        return lanes

    # Sending -----------------------------------------------------------------

    def _run_lane_and_free(self, lane: store.Lane, stop: threading.Event) -> None:
        try:
            self._run_lane(lane, stop)
        except Exception:
            log.exception("lane failed")
        finally:
            with self._busy_lock:
                self._busy.discard(lane.subscription["id"])
            self._wakeup.set()

    def _run_lane(self, lane: store.Lane, stop: threading.Event) -> int:
        """Send the lane's deliveries in order; record every outcome in one transaction.

        Recording after the sends (at least once: a crash before the commit
        sends them again, same ids) keeps the dispatcher to one write per lane,
        which matters on SQLite, where it shares the single writer with ingest.
        """
        subscription = lane.subscription
        started = time.monotonic()
        answers: list[tuple[dict[str, Any], Answer]] = []
        try:
            endpoint = self._endpoint(subscription)
        except UnsafeDestination as error:
            answers.append((lane.deliveries[0], Answer(None, error=f"refused: {error}")))
            self._record(lane, answers)
            return 1
        try:
            for index, delivery in enumerate(lane.deliveries):
                late = time.monotonic() - started > LANE_BUDGET_SECONDS
                if stop.is_set() or (index and late):
                    break
                answer = self._attempt(endpoint, delivery, subscription)
                answers.append((delivery, answer))
                if not answer.ok:
                    self._forget_endpoint(subscription["id"])
                    break
        except BaseException:
            self._forget_endpoint(subscription["id"])
            raise
        finally:
            self._record(lane, answers)
        return len(answers)

    def _attempt(
        self, endpoint: Endpoint, delivery: dict[str, Any], subscription: dict[str, Any]
    ) -> Answer:
        """One attempt; anything it raises is a failed attempt, retried on the schedule,
        never a lane that fails unrecorded and is claimed again at once, for ever."""
        try:
            return endpoint.post(
                delivery["body"].encode(),
                signing.signed_headers(
                    delivery["event_id"], delivery["body"], self._secrets(subscription)
                ),
            )
        except Exception as error:
            # The class only: a message could quote the URL, and its query may hold a token.
            log.error(
                "event delivery attempt failed unexpectedly: %s",
                type(error).__name__,
                extra={"subscription_id": subscription["id"]},
            )
            return Answer(None, error=type(error).__name__)

    def _endpoint(self, subscription: dict[str, Any]) -> Endpoint:
        """The subscription's endpoint, kept (with its connection) for a while.

        Resolved and checked again after `ENDPOINT_TTL_SECONDS`, after any
        failed attempt, and when the URL changes. One lane per subscription
        runs at a time in a process, so an endpoint is never shared by two threads.
        """
        now = time.monotonic()
        with self._endpoints_lock:
            kept = self._endpoints.get(subscription["id"])
        if kept is not None:
            if kept[1] == subscription["url"] and now - kept[2] <= ENDPOINT_TTL_SECONDS:
                return kept[0]
            self._forget_endpoint(subscription["id"])
        endpoint = Endpoint(
            subscription["url"],
            https_only=self.settings.is_production,
            allow_private=self.settings.allow_private_event_urls,
        )
        with self._endpoints_lock:
            self._endpoints[subscription["id"]] = (endpoint, subscription["url"], now)
        return endpoint

    def _prune_endpoints(self, busy: set[str], max_age: float = ENDPOINT_TTL_SECONDS) -> None:
        """Close kept endpoints that no lane is using and that have aged out."""
        now = time.monotonic()
        with self._endpoints_lock:
            stale = [
                key
                for key, (_, _, created) in self._endpoints.items()
                if key not in busy and now - created > max_age
            ]
        for key in stale:
            self._forget_endpoint(key)

    def _forget_endpoint(self, subscription_id: str) -> None:
        with self._endpoints_lock:
            kept = self._endpoints.pop(subscription_id, None)
        if kept is not None:
            kept[0].close()

    def _secrets(self, subscription: dict[str, Any]) -> list[str]:
        """The secret, and the previous one while its 24 h overlap lasts."""
        signing_secrets = [subscription["secret"]]
        until = subscription.get("previous_secret_until")
        if subscription.get("previous_secret") and until and until > self.clock():
            signing_secrets.append(subscription["previous_secret"])
        return signing_secrets

    def _outcome(self, delivery: dict[str, Any], answer: Answer, now: datetime):
        attempts = delivery["attempts"] + 1
        values: dict[str, Any] = {
            "attempts": attempts,
            "last_attempt_at": now,
            "last_status_code": answer.status_code,
            "last_error": (answer.error or "")[:200] or None,
        }
        if answer.ok:
            values.update(status=store.DELIVERED, delivered_at=now, last_error=None)
            return "delivered", values
        if answer.status_code == 410:
            values.update(status=store.FAILED, last_error="410 Gone: subscription disabled")
            return "gone", values
        if attempts > len(self.schedule):
            values.update(status=store.FAILED)
            return "failed", values
        wait = self.schedule[attempts - 1]
        if answer.retry_after is not None:
            wait = max(wait, min(answer.retry_after, MAX_RETRY_AFTER_SECONDS))
        values.update(next_attempt_at=now + timedelta(seconds=wait))
        return ("blocked" if (answer.error or "").startswith("refused") else "retry"), values

    def _record(self, lane: store.Lane, answers: list[tuple[dict[str, Any], Answer]]) -> None:
        """Every attempt's outcome, the 410's consequence, and the lease of the rest given back."""
        now = self.clock()
        outcomes = [self._outcome(delivery, answer, now) for delivery, answer in answers]
        rows = [
            {"id": delivery["id"], **values}
            for (delivery, _), (_, values) in zip(answers, outcomes, strict=True)
        ]
        with write_transaction(self.engine) as connection:
            recorded = store.settle_many(connection, lane.token, rows)
            if any(outcome == "gone" for outcome, _ in outcomes):
                store.disable_subscription(
                    connection, lane.subscription["id"], "the endpoint answered 410 Gone", now
                )
            rest = [delivery["id"] for delivery in lane.deliveries[len(answers) :]]
            store.release(connection, lane.token, rest)
        if recorded < len(rows):
            log.warning("lease lost before settling", extra={"deliveries": len(rows) - recorded})
        for outcome, _ in outcomes:
            metrics.EVENT_DELIVERIES.labels(outcome).inc()
