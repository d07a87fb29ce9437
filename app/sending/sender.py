"""The send itself: the checks, the row, the throttle, the call, the outcome.

The row is written before Vonage is called, with our own id as Vonage's
`client_ref`, so a status webhook that overtakes Vonage's answer finds it.
A phase marker (`vonage_called_at`) is durable before Vonage is called, so a
row left `pending` by a dead request settles as `unknown` (maybe sent) or
`failed` (certainly not; see `abandoned`). When the throttle has a slot free at
once, the row is written already marked, in one commit; otherwise it is
written first, the send waits for a slot, and the marker follows. The sender
is built once in `create_app()` with its collaborators; it knows nothing of Flask.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine

from app import metrics
from app.failures import DependencyUnavailable, Failure
from app.sending.abandoned import sweep_now_and_then
from app.sending.budget import Budget, hold_seconds
from app.sending.failures import (
    DailyLimitReached,
    NoSendSlot,
    OptedOut,
    OutcomeUnknown,
    TooManyInFlight,
    VonageNotConfigured,
    VonageRefused,
    VonageUnavailable,
)
from app.sending.outcomes import STORAGE_ERRORS, Attempt, Claim, Describe, Message, Outcomes
from app.sending.replay import Replays
from app.sending.request import SendRequest, SendResult, request_hash
from app.store import daily_count, idempotency, opt_outs
from app.store import messages as store
from app.store.deferred import DeferredWrites
from app.store.dialect import utcnow
from app.store.engine import grouped_write
from app.throttle import Busy, InFlightCap, NoSlot, SendThrottle, ThrottleStorageFailed
from app.vonage_client import SentMessage, VonageClient, VonageError, VonageRejected, VonageTimeout


class Sender:
    def __init__(
        self,
        *,
        settings,
        engine: Engine,
        vonage: VonageClient | None,
        throttle: SendThrottle,
        in_flight: InFlightCap,
        deferred_writes: DeferredWrites,
        describe: Describe,
    ) -> None:
        self.settings = settings
        self._engine = engine
        self._vonage = vonage
        self._throttle = throttle
        self.in_flight = in_flight
        self._outcomes = Outcomes(engine, deferred_writes, settings, describe)
        self._replays = Replays(engine, settings, describe)

    def send(self, request: SendRequest, *, owner: str, idempotency_key: str | None) -> SendResult:
        """Send once, or answer again for a known Idempotency-Key; raises a `Failure`.

        Counts the outcome (`sms_sends_total`) once every write it made is committed.
        """
        try:
            result = self._send_capped(request, owner, idempotency_key)
        except Failure as failure:
            metrics.SENDS.labels(failure.outcome).inc()
            raise
        metrics.SENDS.labels("replayed" if result.replayed else "submitted").inc()
        return result

    def _send_capped(
        self, request: SendRequest, owner: str, idempotency_key: str | None
    ) -> SendResult:
        if self._vonage is None:
            raise VonageNotConfigured("Vonage is not configured")
        try:
            with self.in_flight.slot():
                return self._send(request, owner, idempotency_key)
        except Busy:
            raise TooManyInFlight(self.in_flight.limit) from None

    def _send(self, request: SendRequest, owner: str, idempotency_key: str | None) -> SendResult:
        budget = Budget.start(self.settings)
        claim = Claim(owner, idempotency_key) if idempotency_key is not None else None
        if claim is not None:
            # Before any other check: a retry of a request that was answered replays
            # that answer, even if the recipient has opted out since.
            body_hash = request_hash(request.canonical())
            hold = timedelta(seconds=hold_seconds(self.settings))
            replay = grouped_write(
                self._engine,
                lambda connection: idempotency.claim_idempotency_key(
                    connection, owner, claim.key, body_hash, hold
                ),
            )
            if replay is not None:
                return self._replays.answer(replay, body_hash, claim)

        try:
            self._refuse_opted_out(request.to)
            slot = self._slot_at_once()
            message = self._create_message(request, owner, claim, budget, marked=slot is True)
        except BaseException:
            # Nothing exists yet that Vonage could have: the caller may retry the key.
            if claim is not None:
                self._outcomes.release_quietly(claim, budget)
            raise
        return self._deliver(Attempt(message, request, claim, budget), slot)

    def _refuse_opted_out(self, to: str) -> None:
        """Raises `OptedOut` before a throttle slot or a write is taken: a refusal must
        not spend Vonage's capacity. The row's transaction looks again."""
        try:
            with self._engine.connect().execution_options(readonly=True) as connection:
                opted_out = opt_outs.is_opted_out(connection, to)
        except STORAGE_ERRORS:
            return  # the row's write meets the same failure, and answers it
        if opted_out:
            raise OptedOut(to)

    def _slot_at_once(self) -> bool | ThrottleStorageFailed:
        """True when the throttle had a slot free right now (taken); else False, or
        the storage's failure, and the send asks again once its row is written.

        A slot taken here lets the row be written with its phase marker: one
        durable commit before the call instead of two. It is asked for only once
        the key's claim is decided (a replay, 409 or 422 takes none) and the
        recipient is known not to have opted out. Only a send refused by the daily
        cap, which stops every send, or by a storage failure leaves its slot unused.
        """
        try:
            return self._throttle.try_acquire()
        except ThrottleStorageFailed as error:
            return error

    def _create_message(
        self, request: SendRequest, owner: str, claim: Claim | None, budget: Budget, *, marked: bool
    ) -> Message:
        config = self.settings
        message_id = str(uuid.uuid4())
        today = datetime.now(UTC).date()
        row = _outbound_row(message_id, request, owner, config)
        if marked:
            row["vonage_called_at"] = utcnow()

        def create(connection: Connection) -> dict:
            # Again, in the row's transaction: a STOP may have landed since the
            # look-up before the throttle slot.
            if opt_outs.is_opted_out(connection, request.to):
                raise OptedOut(request.to)
            self._take_daily_slot(connection, today)
            stored = store.insert_outbound(connection, row)
            if claim is not None and not idempotency.link_idempotency_key(
                connection, claim.owner, claim.key, message_id
            ):
                # This request outlived its hold (a frozen process): another may own the key.
                raise DependencyUnavailable()
            sweep_now_and_then(connection, config)
            return stored

        stored = grouped_write(self._engine, create, timeout=budget.remaining())
        return Message(message_id, today, stored["from_number"])

    def _take_daily_slot(self, connection: Connection, today) -> None:
        limit = self.settings.send_sms_daily_limit
        if limit and not daily_count.take_daily_slot(connection, today, limit):
            raise DailyLimitReached(limit, _seconds_to_utc_midnight())

    def _deliver(self, attempt: Attempt, slot: bool | ThrottleStorageFailed) -> SendResult:
        started = time.monotonic()
        outcome = "sent"
        try:
            if slot is not True:
                storage_failed = slot if isinstance(slot, ThrottleStorageFailed) else None
                try:
                    self._wait_for_slot(attempt, storage_failed)
                except Failure:
                    outcome = "throttled"
                    raise
                if not self._mark_vonage_called(attempt):
                    outcome = "not_sent"
                    detail = "storage failed before Vonage was called"
                    raise self._outcomes.not_sent(attempt, detail, DependencyUnavailable())
            sent = self._call_vonage(attempt)
        except _VonageFailed as failed:
            outcome = failed.outcome
            raise failed.failure from None
        finally:
            metrics.VONAGE_LATENCY.labels(outcome).observe(time.monotonic() - started)
        return self._outcomes.sent(attempt, sent)

    def _wait_for_slot(
        self, attempt: Attempt, storage_failed: ThrottleStorageFailed | None
    ) -> None:
        try:
            if storage_failed is not None:
                raise storage_failed  # once is enough: no second wait on a failing storage
            self._throttle.acquire(attempt.budget.deadline)
        except NoSlot as error:
            refusal = NoSendSlot(error.retry_after)
            raise self._outcomes.not_sent(attempt, str(error), refusal) from None
        except ThrottleStorageFailed as error:
            detail = f"the throttle's storage failed: {error}"
            raise self._outcomes.not_sent(attempt, detail, DependencyUnavailable()) from None

    def _mark_vonage_called(self, attempt: Attempt) -> bool:
        """False (never call Vonage) when storage fails or the row was settled meanwhile."""
        try:
            return grouped_write(
                self._engine,
                lambda connection: store.mark_vonage_called(connection, attempt.message.id),
                timeout=attempt.budget.remaining(),
            )
        except STORAGE_ERRORS:
            return False

    def _call_vonage(self, attempt: Attempt) -> SentMessage:
        try:
            return self._vonage.send_sms(
                to=attempt.request.to,
                sender=attempt.message.from_number,
                text=attempt.request.text,
                client_ref=attempt.message.id,
                deadline=attempt.budget.deadline,
            )
        except VonageError as error:
            outcome = "maybe_sent" if error.maybe_sent else "not_sent"
            raise _VonageFailed(outcome, self._vonage_failure(error, attempt)) from None

    def _vonage_failure(self, error: VonageError, attempt: Attempt) -> Failure:
        detail = f"{error.detail} (HTTP {error.status_code})" if error.status_code else error.detail
        if error.maybe_sent:
            failure = OutcomeUnknown(
                error.detail, attempt.message.id, timed_out=isinstance(error, VonageTimeout)
            )
            return self._outcomes.unknown(attempt, detail, failure)
        if isinstance(error, VonageRejected):
            # Vonage's 4xx is final: a retry of the key replays it instead of sending again.
            failure = VonageRefused(error.detail)
            return self._outcomes.not_sent(attempt, detail, failure, final=True)
        failure = VonageUnavailable(error.detail, error.retry_after)
        return self._outcomes.not_sent(attempt, detail, failure)


class _VonageFailed(Exception):
    def __init__(self, outcome: str, failure: Failure) -> None:
        self.outcome = outcome
        self.failure = failure


def _outbound_row(message_id: str, request: SendRequest, owner: str, config) -> dict:
    return {
        "id": message_id,
        "from_number": config.vonage_number.removeprefix("+"),
        "to_number": request.to,
        "text": request.text,
        "status": "pending",
        "segments": request.segmentation.segments,
        "encoding": request.segmentation.encoding,
        "client_ref": request.client_ref,
        "owner": owner,
    }


def _seconds_to_utc_midnight() -> int:
    now = datetime.now(UTC)
    return 86400 - (now.hour * 3600 + now.minute * 60 + now.second)
