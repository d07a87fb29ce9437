"""Sending one SMS: the checks, the row, the throttle, the call, the outcome.

The row is written before Vonage is called, with our own id as Vonage's
`client_ref`, so a status webhook that overtakes Vonage's answer finds it.

Crash safety (README, "What a send survives"): an Idempotency-Key claim holds
the key only for as long as its request can be alive (`hold_seconds`), and
records the message it created in the same transaction as the row. A phase
marker (`vonage_called_at`) is written just before Vonage is called, so a row
left `pending` by a dead request settles as `unknown` (maybe sent) or `failed`
(certainly not, its daily slot given back). Once Vonage may have the message,
a storage failure never turns into a retry-later answer: the outcome's write
is deferred until storage returns and the key is kept.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from flask import current_app, g
from sqlalchemy import Connection
from sqlalchemy.exc import InterfaceError, OperationalError

from app import metrics
from app.api.schemas import SendRequest
from app.errors import Problem, dependency_problem
from app.extensions import reading, settings, vonage, write_grouped, writing
from app.observability import annotate
from app.sms import mask_number
from app.status import VONAGE_STATUSES, message_error
from app.store import daily_count, idempotency, opt_outs
from app.store import messages as store
from app.store.dialect import utcnow
from app.throttle import Busy, NoSlot, ThrottleStorageFailed
from app.vonage_client import CONNECT_TIMEOUT_SECONDS, VonageError, VonageRejected, VonageTimeout

log = logging.getLogger(__name__)

STORAGE_ERRORS = (OperationalError, InterfaceError)
HOLD_MARGIN_SECONDS = 2.0
SWEEP_INTERVAL_SECONDS = 5.0
REPLAYED_HEADER = {"Idempotent-Replayed": "true"}


@dataclass(frozen=True)
class SendResult:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] | None = None


@dataclass(frozen=True)
class Claim:
    owner: str
    key: str


@dataclass(frozen=True)
class Budget:
    """One send's clock: Vonage (and the throttle) until `deadline`, all of it
    (storage waits, the last attempt, the outcome's write) within `hold_seconds`."""

    deadline: float
    seconds: float

    @classmethod
    def start(cls, config) -> Budget:
        seconds = config.vonage_timeout_seconds
        return cls(time.monotonic() + seconds, seconds)

    def remaining(self, floor: float = 0.05) -> float:
        return max(floor, self.deadline - time.monotonic())


def hold_seconds(config) -> float:
    """How long a send can be alive at most, from its claim: the storage waits and
    throttle within the budget, the last Vonage attempt (connect + read timeout)
    started just before the deadline, then the outcome's write within the budget."""
    budget = config.vonage_timeout_seconds
    return budget + (CONNECT_TIMEOUT_SECONDS + budget) + budget + HOLD_MARGIN_SECONDS


def request_hash(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def send(
    request: SendRequest,
    *,
    owner: str,
    idempotency_key: str | None,
    body_hash: str,
    throttle,
    in_flight=None,
) -> SendResult:
    config = settings()
    client = vonage()
    if client is None:
        raise Problem(503, "Service Unavailable", detail="Vonage is not configured")
    cap = in_flight if in_flight is not None else current_app.extensions["sends_in_flight"]
    try:
        with cap.slot():
            return _send(request, owner, idempotency_key, body_hash, throttle, client, config)
    except Busy:
        raise Problem(
            503,
            "Too many sends in flight",
            type="sends-in-flight",
            detail=f"this worker already has {cap.limit} sends waiting on Vonage; retry shortly",
            headers={"Retry-After": "1"},
        ) from None


def _send(request, owner, idempotency_key, body_hash, throttle, client, config) -> SendResult:
    budget = Budget.start(config)
    claim = Claim(owner, idempotency_key) if idempotency_key is not None else None
    if claim is not None:
        # Before any other check: a retry of a request that was answered replays
        # that answer, even if the recipient has opted out since.
        hold = timedelta(seconds=hold_seconds(config))
        replay = write_grouped(
            lambda connection: idempotency.claim_idempotency_key(
                connection, owner, claim.key, body_hash, hold
            )
        )
        if replay is not None:
            return _replay(replay, body_hash, claim, config)

    try:
        _refuse_opted_out(request.to)
        message = _create_message(request, config, owner, claim, budget)
    except BaseException:
        # Nothing exists yet that Vonage could have: the caller may retry the key.
        if claim is not None:
            _release_quietly(claim, budget)
        raise
    return _deliver(message, request, client, config, throttle, claim, budget)


def _refuse_opted_out(number: str) -> None:
    with reading() as connection:
        if opt_outs.is_opted_out(connection, number):
            raise Problem(
                422,
                "Recipient opted out",
                type="opted-out",
                detail="the recipient replied STOP; they must reply START before you can text them",
            )


@dataclass(frozen=True)
class _Message:
    id: str
    day: date
    from_number: str


def _create_message(
    request: SendRequest, config, owner: str, claim: Claim | None, budget: Budget
) -> _Message:
    message_id = str(uuid.uuid4())
    today = datetime.now(UTC).date()

    def create(connection: Connection) -> dict:
        if config.send_sms_daily_limit and not daily_count.take_daily_slot(
            connection, today, config.send_sms_daily_limit
        ):
            raise Problem(
                429,
                "Daily send limit reached",
                type="daily-limit",
                detail=f"at most {config.send_sms_daily_limit} messages per UTC day",
                headers={"Retry-After": str(_seconds_to_utc_midnight())},
            )
        row = store.insert_outbound(
            connection,
            {
                "id": message_id,
                "from_number": config.vonage_number.removeprefix("+"),
                "to_number": request.to,
                "text": request.text,
                "status": "pending",
                "segments": request.segmentation.segments,
                "encoding": request.segmentation.encoding,
                "client_ref": request.client_ref,
                "owner": owner,
            },
        )
        if claim is not None and not idempotency.link_idempotency_key(
            connection, claim.owner, claim.key, message_id
        ):
            # This request outlived its hold (a frozen process): another may own the key.
            raise dependency_problem()
        _sweep_now_and_then(connection, config)
        return row

    row = write_grouped(create, timeout=budget.remaining())
    return _Message(message_id, today, row["from_number"])


def _deliver(
    message: _Message, request: SendRequest, client, config, throttle, claim, budget
) -> SendResult:
    started = time.monotonic()
    outcome = "sent"
    try:
        try:
            throttle.acquire(budget.deadline)
        except NoSlot as error:
            outcome = "throttled"
            problem = Problem(
                503,
                "Service Unavailable",
                type="no-send-slot",
                detail="the outbound throttle has no free slot within the time budget",
                headers={"Retry-After": str(max(1, round(error.retry_after)))},
            )
            raise _not_sent(message, claim, config, budget, str(error), problem) from None
        except ThrottleStorageFailed as error:
            outcome = "throttled"
            detail = f"the throttle's storage failed: {error}"
            raise _not_sent(message, claim, config, budget, detail, dependency_problem()) from None
        if not _mark_vonage_called(message, budget):
            outcome = "not_sent"
            detail = "storage failed before Vonage was called"
            raise _not_sent(message, claim, config, budget, detail, dependency_problem())
        try:
            sent = client.send_sms(
                to=request.to,
                sender=message.from_number,
                text=request.text,
                client_ref=message.id,
                deadline=budget.deadline,
            )
        except VonageError as error:
            outcome = "maybe_sent" if error.maybe_sent else "not_sent"
            raise _problem_for(error, message, claim, config, budget) from None
    finally:
        metrics.VONAGE_LATENCY.labels(outcome).observe(time.monotonic() - started)

    annotate(message_id=message.id, to=mask_number(request.to), attempts=sent.attempts)
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

    _write_outcome(f"sent {message.id}", record, budget)
    return SendResult(202, body)


def _mark_vonage_called(message: _Message, budget: Budget) -> bool:
    """False (never call Vonage) when storage fails or the row was settled meanwhile."""
    try:
        return write_grouped(
            lambda connection: store.mark_vonage_called(connection, message.id),
            timeout=budget.remaining(),
        )
    except STORAGE_ERRORS:
        return False


def _problem_for(error: VonageError, message: _Message, claim, config, budget) -> Problem:
    detail = f"{error.detail} (HTTP {error.status_code})" if error.status_code else error.detail
    if error.maybe_sent:
        status = 504 if isinstance(error, VonageTimeout) else 502
        title = "Vonage timed out" if status == 504 else "Vonage failed"
        problem = Problem(
            status,
            title,
            type="vonage-outcome-unknown",
            detail=f"{error.detail}; the message may have been sent and will be settled by "
            "its status webhook",
            id=message.id,
        )

        def record(connection: Connection) -> None:
            store.mark_outcome(connection, message.id, "unknown", _error_record(problem, detail))
            if claim is not None:
                idempotency.complete_idempotency_key(
                    connection, claim.owner, claim.key, status, json.dumps(problem.to_dict())
                )

        _write_outcome(f"unknown {message.id}", record, budget)
        log.warning("sms outcome unknown", extra={"message_id": message.id})
        return problem
    if isinstance(error, VonageRejected):
        problem = Problem(
            502, "Vonage refused the message", type="vonage-rejected", detail=error.detail
        )
        # Vonage's 4xx is final: a retry of the key replays it instead of sending again.
        return _not_sent(message, claim, config, budget, detail, problem, final=True)
    headers = {"Retry-After": str(max(1, round(error.retry_after)))} if error.retry_after else None
    problem = Problem(
        503,
        "Vonage unavailable",
        type="vonage-unavailable",
        detail=error.detail,
        headers=headers,
    )
    return _not_sent(message, claim, config, budget, detail, problem)


def _error_record(problem: Problem, detail: str) -> dict:
    """The message's `error`: the problem the caller was answered, in Vonage's error shape."""
    return message_error(problem.type, problem.title, detail)


def _not_sent(
    message: _Message,
    claim,
    config,
    budget,
    detail: str,
    problem: Problem,
    *,
    final: bool = False,
) -> Problem:
    """Vonage certainly does not have it: the row `failed`, its daily slot back.

    The key is freed for a transient refusal (retry later), so a retry sends; a
    `final` one is stored, so a retry gets the same answer and sends nothing.
    """
    error = _error_record(problem, detail)

    def record(connection: Connection) -> None:
        store.mark_outcome(connection, message.id, "failed", error)
        if config.send_sms_daily_limit:
            daily_count.give_back_daily_slot(connection, message.day)
        if claim is not None and final:
            idempotency.complete_idempotency_key(
                connection, claim.owner, claim.key, problem.status, json.dumps(problem.to_dict())
            )
        elif claim is not None:
            idempotency.release_idempotency_key(connection, claim.owner, claim.key)

    _write_outcome(f"failed {message.id}", record, budget)
    log.warning("sms not sent", extra={"message_id": message.id, "outcome": "failed"})
    return problem


def _write_outcome(what: str, write: Callable[[Connection], None], budget: Budget) -> None:
    """Write now if storage answers within the budget, else later: the answer stands."""
    try:
        write_grouped(write, timeout=budget.seconds)
    except STORAGE_ERRORS:
        current_app.extensions["deferred_writes"].defer(what, write)


def _release_quietly(claim: Claim, budget: Budget) -> None:
    """Free the key; if storage fails, the claim lapses after its hold instead."""
    try:
        with writing(timeout=budget.seconds) as connection:
            idempotency.release_idempotency_key(connection, claim.owner, claim.key)
    except STORAGE_ERRORS:
        log.warning("idempotency key not released; it lapses after its hold")


def _replay(
    replay: idempotency.IdempotentReplay, body_hash: str, claim: Claim, config
) -> SendResult:
    if replay.request_hash != body_hash:
        raise Problem(
            422,
            "Idempotency-Key reused",
            type="idempotency-key-reused",
            detail="this Idempotency-Key was first used with a different body",
        )
    if replay.response_status is None:
        if replay.abandoned(utcnow()) and replay.message_id is not None:
            return _answer_abandoned(replay.message_id, claim, config)
        raise Problem(
            409,
            "Request in progress",
            type="idempotency-key-in-flight",
            detail="the first request with this Idempotency-Key has not finished yet",
            headers={"Retry-After": "1"},
        )
    body = json.loads(replay.response_body)
    g.idempotent_replay = True
    if replay.response_status >= 400:
        extra = {k: v for k, v in body.items() if k not in ("type", "title", "status", "detail")}
        problem = Problem(
            replay.response_status,
            body["title"],
            detail=body.get("detail"),
            headers=dict(REPLAYED_HEADER),
            **extra,
        )
        problem.type = body["type"]
        raise problem
    return SendResult(replay.response_status, body, dict(REPLAYED_HEADER))


def _answer_abandoned(message_id: str, claim: Claim, config) -> SendResult:
    """The request holding the key died: answer from its message's state, never send."""
    with reading() as connection:
        row = store.find_message(connection, message_id)
    if row is not None and row["status"] == "pending":
        with writing() as connection:
            _give_back_slots(
                connection, config, store.settle_abandoned(connection, utcnow(), message_id)
            )
            row = store.find_message(connection, message_id)
    g.idempotent_replay = True
    if row is not None and row["status"] in VONAGE_STATUSES:
        body = {
            "id": row["id"],
            "message_uuid": row["message_uuid"],
            "to": row["to_number"],
            "from": row["from_number"],
            "status": row["status"],
            "segments": row["segments"],
            "encoding": row["encoding"],
            "client_ref": row["client_ref"],
        }
        return SendResult(202, body, dict(REPLAYED_HEADER))
    if row is not None and row["status"] == "unknown":
        raise Problem(
            504,
            "Send outcome unknown",
            type="vonage-outcome-unknown",
            detail="the first request with this Idempotency-Key stopped while Vonage was "
            "being called; the message may have been sent and will be settled by its "
            "status webhook",
            headers=dict(REPLAYED_HEADER),
            id=message_id,
        )
    with writing() as connection:
        idempotency.release_idempotency_key(connection, claim.owner, claim.key)
    raise Problem(
        503,
        "Send interrupted",
        type="send-interrupted",
        detail="the first request with this Idempotency-Key stopped before Vonage had the "
        "message; nothing was sent; retry to send it",
        headers={"Retry-After": "1", **REPLAYED_HEADER},
        id=message_id,
    )


def settle_abandoned_sends(connection: Connection, config) -> int:
    """Settle rows left `pending` by requests that can no longer be alive."""
    cutoff = utcnow() - timedelta(seconds=hold_seconds(config))
    settled = store.settle_abandoned(connection, cutoff)
    _give_back_slots(connection, config, settled)
    for row in settled:
        log.warning(
            "abandoned send settled", extra={"message_id": row.message_id, "outcome": row.status}
        )
    return len(settled)


def _give_back_slots(connection: Connection, config, settled: list[store.Settled]) -> None:
    if not config.send_sms_daily_limit:
        return
    for row in settled:
        if row.status == "failed":
            daily_count.give_back_daily_slot(connection, row.created_at.date())


_sweep_lock = threading.Lock()
_last_sweep = 0.0


def _sweep_now_and_then(connection: Connection, config) -> None:
    """At most every few seconds per process, inside a send's own write transaction."""
    global _last_sweep
    now = time.monotonic()
    with _sweep_lock:
        if now - _last_sweep < SWEEP_INTERVAL_SECONDS:
            return
        _last_sweep = now
    settle_abandoned_sends(connection, config)


def _seconds_to_utc_midnight() -> int:
    now = datetime.now(UTC)
    return 86400 - (now.hour * 3600 + now.minute * 60 + now.second)
