"""DELETE /numbers/<number>: erase everything the service keeps about one number (GDPR)."""

from __future__ import annotations

from flask import jsonify

from app.api import message_filters
from app.api.auth import require_api_key
from app.errors import validation_problem
from app.extensions import settings, writing
from app.observability import annotate
from app.sms import InvalidNumber, canonical_address, mask_number
from app.store import privacy

OWN_NUMBER = (
    "is this service's own number (VONAGE_NUMBER), in every message: "
    "erasing it would erase them all"
)


def refusal(number: str, own_number: str) -> str | None:
    """Why the canonical `number` may not be erased, or None.

    Every inbound message is to the service's number and every send from it, so
    erasing it would erase the whole history of every key: never a data subject's
    request.
    """
    if own_number and number == canonical_address(own_number):
        return OWN_NUMBER
    return None


def erase_number(number: str):
    """Erase the number's messages (both directions), their events and stored answers.

    Its opt-out is kept: see `privacy.erase_number`.
    """
    require_api_key()
    try:
        number = message_filters.number_filter(number)
    except InvalidNumber as error:
        raise validation_problem([{"field": "number", "message": str(error)}]) from None
    refused = refusal(number, settings().vonage_number)
    if refused:
        raise validation_problem([{"field": "number", "message": refused}])
    with writing() as connection:
        erased = privacy.erase_number(connection, number)
    annotate(number=mask_number(number), erased_messages=erased.messages)
    return jsonify(erasure_json(number, erased))


def erasure_json(number: str, erased: privacy.Erasure) -> dict:
    return {
        "number": number,
        "messages_erased": erased.messages,
        "events_erased": erased.events,
        "idempotency_keys_erased": erased.idempotency_keys,
        "outbox_events_erased": erased.outbox_events,
        "dead_letters_erased": erased.dead_letters,
        "opt_out_kept": erased.opted_out,
    }
