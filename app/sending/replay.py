"""A retry with a known Idempotency-Key: the first answer again, never a second send."""

from __future__ import annotations

import json

from sqlalchemy import Engine

from app.sending.abandoned import give_back_slots
from app.sending.failures import (
    AbandonedOutcomeUnknown,
    IdempotencyKeyInFlight,
    IdempotencyKeyReused,
    OutcomeUnknown,
    ReplayedFailure,
    SendInterrupted,
    VonageRefused,
)
from app.sending.outcomes import Claim, Describe
from app.sending.request import SendResult
from app.status import VONAGE_STATUSES
from app.store import idempotency
from app.store import messages as store
from app.store.dialect import utcnow
from app.store.engine import write_transaction


class Replays:
    def __init__(self, engine: Engine, settings, describe: Describe) -> None:
        self._engine = engine
        self._settings = settings
        # The only failures stored as a key's final answer, by the problem type stored.
        self._stored_outcomes = {
            describe(OutcomeUnknown("", "", timed_out=True))["type"]: OutcomeUnknown.outcome,
            describe(VonageRefused(""))["type"]: VonageRefused.outcome,
        }

    def answer(
        self, replay: idempotency.IdempotentReplay, body_hash: str, claim: Claim
    ) -> SendResult:
        if replay.request_hash != body_hash:
            raise IdempotencyKeyReused(claim.key)
        if replay.response_status is None:
            if replay.abandoned(utcnow()) and replay.message_id is not None:
                return self._answer_abandoned(replay.message_id, claim)
            raise IdempotencyKeyInFlight(claim.key)
        body = json.loads(replay.response_body)
        if replay.response_status >= 400:
            outcome = self._stored_outcomes.get(body.get("type"), "invalid")
            raise ReplayedFailure(replay.response_status, body, outcome)
        return SendResult(replay.response_status, body, replayed=True)

    def _answer_abandoned(self, message_id: str, claim: Claim) -> SendResult:
        """The request holding the key died: answer from its message's state, never send."""
        with self._engine.connect().execution_options(readonly=True) as connection:
            row = store.find_message(connection, message_id)
        if row is not None and row["status"] == "pending":
            with write_transaction(self._engine) as connection:
                settled = store.settle_abandoned(connection, utcnow(), message_id)
                give_back_slots(connection, self._settings, settled)
                row = store.find_message(connection, message_id)
        if row is not None and row["status"] in VONAGE_STATUSES:
            body = {
                "id": row["id"],
                "message_uuid": row["message_uuid"],
                "to": row["to_number"],
                "from": row["from_number"],
                # The first answer's status, as the contract's 202 says, however far the
                # message has got since (GET /messages/<id> shows that).
                "status": "submitted",
                "segments": row["segments"],
                "encoding": row["encoding"],
                "client_ref": row["client_ref"],
            }
            return SendResult(202, body, replayed=True)
        if row is not None and row["status"] == "unknown":
            raise AbandonedOutcomeUnknown(message_id)
        with write_transaction(self._engine) as connection:
            idempotency.release_idempotency_key(connection, claim.owner, claim.key)
        raise SendInterrupted(message_id)
