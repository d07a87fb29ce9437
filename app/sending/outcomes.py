"""Recording how a send ended: the row's status, the daily slot, the key's answer.

Once Vonage may have the message, a storage failure never turns into a
retry-later answer: the outcome's write is deferred until storage returns
(`DeferredWrites`) and the Idempotency-Key is kept.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Connection, Engine

from app.failures import Failure
from app.sending.budget import Budget
from app.sending.request import SendRequest, SendResult
from app.status import message_error
from app.store import daily_count, idempotency
from app.store import messages as store
from app.store.deferred import DeferredWrites
from app.store.engine import STORAGE_ERRORS, grouped_write, write_transaction
from app.vonage_client import SentMessage

log = logging.getLogger("app.sending")

#: The problem body a failure is answered with (`app.errors.problem_body`).
Describe = Callable[[Failure], dict[str, Any]]


@dataclass(frozen=True)
class Claim:
    owner: str
    key: str


@dataclass(frozen=True)
class Message:
    id: str
    day: date
    from_number: str


@dataclass(frozen=True)
class Attempt:
    """One send under way: its row, the request, the key, the clock."""

    message: Message
    request: SendRequest
    claim: Claim | None
    budget: Budget


class Outcomes:
    def __init__(
        self, engine: Engine, deferred_writes: DeferredWrites, settings, describe: Describe
    ) -> None:
        self._engine = engine
        self._deferred = deferred_writes
        self._settings = settings
        self._describe = describe

    def sent(self, attempt: Attempt, sent: SentMessage) -> SendResult:
        message, request, claim = attempt.message, attempt.request, attempt.claim
        body = {
            "id": message.id,
            "message_uuid": sent.message_uuid,
            "to": request.to,
            "from": message.from_number,
            "status": "submitted",
            "segments": request.segmentation.segments,
            "encoding": request.segmentation.encoding,
            "client_ref": request.client_ref,
        }

        def record(connection: Connection) -> None:
            store.mark_sent(connection, message.id, sent.message_uuid)
            if claim is not None:
                idempotency.complete_idempotency_key(
                    connection, claim.owner, claim.key, 202, json.dumps(body)
                )

        self._write(f"sent {message.id}", record, attempt.budget)
        return SendResult(202, body, attempts=sent.attempts)

    def unknown(self, attempt: Attempt, detail: str, failure: Failure) -> Failure:
        """Vonage may have it: the row `unknown`, the key's answer stored for retries."""
        message, claim = attempt.message, attempt.claim
        problem = self._describe(failure)
        error = message_error(problem["type"], problem["title"], detail)

        def record(connection: Connection) -> None:
            store.mark_outcome(connection, message.id, "unknown", error)
            if claim is not None:
                idempotency.complete_idempotency_key(
                    connection, claim.owner, claim.key, problem["status"], json.dumps(problem)
                )

        self._write(f"unknown {message.id}", record, attempt.budget)
        log.warning("sms outcome unknown", extra={"message_id": message.id})
        return failure

    def not_sent(
        self, attempt: Attempt, detail: str, failure: Failure, *, final: bool = False
    ) -> Failure:
        """Vonage certainly does not have it: the row `failed`, its daily slot back.

        The key is freed for a transient refusal (retry later), so a retry sends; a
        `final` one is stored, so a retry gets the same answer and sends nothing.
        """
        message, claim = attempt.message, attempt.claim
        problem = self._describe(failure)
        error = message_error(problem["type"], problem["title"], detail)
        daily_limit = self._settings.send_sms_daily_limit

        def record(connection: Connection) -> None:
            store.mark_outcome(connection, message.id, "failed", error)
            if daily_limit:
                daily_count.give_back_daily_slot(connection, message.day)
            if claim is not None and final:
                idempotency.complete_idempotency_key(
                    connection, claim.owner, claim.key, problem["status"], json.dumps(problem)
                )
            elif claim is not None:
                idempotency.release_idempotency_key(connection, claim.owner, claim.key)

        self._write(f"failed {message.id}", record, attempt.budget)
        log.warning("sms not sent", extra={"message_id": message.id, "outcome": "failed"})
        return failure

    def release_quietly(self, claim: Claim, budget: Budget) -> None:
        """Free the key; if storage fails, the claim lapses after its hold instead."""
        try:
            with write_transaction(self._engine, budget.seconds) as connection:
                idempotency.release_idempotency_key(connection, claim.owner, claim.key)
        except STORAGE_ERRORS:
            log.warning("idempotency key not released; it lapses after its hold")

    def _write(self, what: str, write: Callable[[Connection], None], budget: Budget) -> None:
        """Write now if storage answers within the budget, else later: the answer stands."""
        try:
            grouped_write(self._engine, write, timeout=budget.seconds)
        except STORAGE_ERRORS:
            self._deferred.defer(what, write)
