"""Sending one SMS: the checks, the row, the throttle, the call, the outcome.

The row is written before Vonage is called, with our own id as Vonage's
`client_ref`, so a status webhook that overtakes Vonage's answer finds it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import g

from app import metrics
from app.api.schemas import SendRequest
from app.errors import Problem
from app.extensions import reading, settings, vonage, writing
from app.observability import annotate
from app.sms import mask_number
from app.status import message_error
from app.store import guards
from app.store import messages as store
from app.throttle import NoSlot
from app.vonage_client import VonageError, VonageRejected, VonageTimeout

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SendResult:
    status: int
    body: dict[str, Any]


def request_hash(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def send(
    request: SendRequest,
    *,
    owner: str,
    idempotency_key: str | None,
    body_hash: str,
    throttle,
) -> SendResult:
    config = settings()
    client = vonage()
    if client is None:
        raise Problem(503, "Service Unavailable", detail="Vonage is not configured")
    if idempotency_key is not None:
        # Before any other check: a retry of a request that was answered replays
        # that answer, even if the recipient has opted out since.
        with writing() as connection:
            replay = guards.claim_idempotency_key(connection, owner, idempotency_key, body_hash)
        if replay is not None:
            return _replay(replay, body_hash)

    try:
        _refuse_opted_out(request.to)
        result = _send_claimed(request, client, config, throttle, owner)
    except Problem as problem:
        if idempotency_key is not None:
            _finish_key(owner, idempotency_key, problem.status, problem.to_dict(), problem)
        raise
    except BaseException:
        if idempotency_key is not None:
            with writing() as connection:
                guards.release_idempotency_key(connection, owner, idempotency_key)
        raise
    if idempotency_key is not None:
        _finish_key(owner, idempotency_key, result.status, result.body, None)
    return result


def _refuse_opted_out(number: str) -> None:
    with reading() as connection:
        if guards.is_opted_out(connection, number):
            raise Problem(
                422,
                "Recipient opted out",
                type="opted-out",
                detail="the recipient replied STOP; they must reply START before you can text them",
            )


def _send_claimed(request: SendRequest, client, config, throttle, owner: str) -> SendResult:
    message_id = str(uuid.uuid4())
    today = datetime.now(UTC).date()
    with writing() as connection:
        if config.send_sms_daily_limit and not guards.take_daily_slot(
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

    started = time.monotonic()
    deadline = started + config.vonage_timeout_seconds
    outcome = "sent"
    try:
        throttle.acquire(deadline)
        sent = client.send_sms(
            to=request.to,
            sender=row["from_number"],
            text=request.text,
            client_ref=message_id,
            deadline=deadline,
        )
    except NoSlot as error:
        outcome = "throttled"
        problem = Problem(
            503,
            "Service Unavailable",
            type="no-send-slot",
            detail="the outbound throttle has no free slot within the time budget",
            headers={"Retry-After": str(max(1, round(error.retry_after)))},
        )
        _settle_failure(message_id, today, "failed", _error_record(problem, str(error)), config)
        raise problem from None
    except VonageError as error:
        outcome = "maybe_sent" if error.maybe_sent else "not_sent"
        raise _problem_for(error, message_id, today, config) from None
    finally:
        metrics.VONAGE_LATENCY.labels(outcome).observe(time.monotonic() - started)

    with writing() as connection:
        store.mark_sent(connection, message_id, sent.message_uuid)
    annotate(message_id=message_id, to=mask_number(request.to), attempts=sent.attempts)
    return SendResult(
        202,
        {
            "id": message_id,
            "message_uuid": sent.message_uuid,
            "to": request.to,
            "from": row["from_number"],
            "status": "submitted",
            "segments": request.segmentation.segments,
            "encoding": request.segmentation.encoding,
            "client_ref": request.client_ref,
        },
    )


def _problem_for(error: VonageError, message_id: str, today, config) -> Problem:
    problem = _vonage_problem(error, message_id)
    status = "unknown" if error.maybe_sent else "failed"
    detail = f"{error.detail} (HTTP {error.status_code})" if error.status_code else error.detail
    _settle_failure(message_id, today, status, _error_record(problem, detail), config)
    return problem


def _vonage_problem(error: VonageError, message_id: str) -> Problem:
    if error.maybe_sent:
        status = 504 if isinstance(error, VonageTimeout) else 502
        title = "Vonage timed out" if status == 504 else "Vonage failed"
        return Problem(
            status,
            title,
            type="vonage-outcome-unknown",
            detail=f"{error.detail}; the message may have been sent and will be settled by "
            "its status webhook",
            id=message_id,
        )
    if isinstance(error, VonageRejected):
        return Problem(
            502, "Vonage refused the message", type="vonage-rejected", detail=error.detail
        )
    headers = {"Retry-After": str(max(1, round(error.retry_after)))} if error.retry_after else None
    return Problem(
        503, "Vonage unavailable", type="vonage-unavailable", detail=error.detail, headers=headers
    )


def _error_record(problem: Problem, detail: str) -> dict:
    """The message's `error`: the problem the caller was answered, in Vonage's error shape."""
    return message_error(problem.type, problem.title, detail)


def _settle_failure(message_id: str, today, status: str, error: dict, config) -> None:
    with writing() as connection:
        store.mark_outcome(connection, message_id, status, error)
        if status == "failed" and config.send_sms_daily_limit:
            guards.give_back_daily_slot(connection, today)
    log.warning("sms not sent", extra={"message_id": message_id, "outcome": status})


def _finish_key(owner: str, key: str, status: int, body: dict, problem: Problem | None) -> None:
    """Keep the answer when a message may exist; forget the key when nothing was sent."""
    keep = problem is None or problem.type.endswith("vonage-outcome-unknown")
    with writing() as connection:
        if keep:
            guards.complete_idempotency_key(connection, owner, key, status, json.dumps(body))
        else:
            guards.release_idempotency_key(connection, owner, key)


def _replay(replay: guards.IdempotentReplay, body_hash: str) -> SendResult:
    if replay.request_hash != body_hash:
        raise Problem(
            422,
            "Idempotency-Key reused",
            type="idempotency-key-reused",
            detail="this Idempotency-Key was first used with a different body",
        )
    if replay.response_status is None:
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
        problem = Problem(replay.response_status, body["title"], detail=body.get("detail"), **extra)
        problem.type = body["type"]
        raise problem
    return SendResult(replay.response_status, body)


def _seconds_to_utc_midnight() -> int:
    now = datetime.now(UTC)
    return 86400 - (now.hour * 3600 + now.minute * 60 + now.second)
