"""The API's bodies, declared once: the OpenAPI components are generated from these.

Each limit, pattern and list of values is imported from the code that enforces
it (app.status, app.sms, app.api.schemas, app.api.paging, app.api.message_filters,
app.webhooks.events), so the document cannot drift from the behaviour. To
document a new body, add a model here and list it in COMPONENTS; reference it
from app/openapi.py by name.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema, models_json_schema

from app.api.message_filters import DIRECTIONS
from app.api.paging import MAX_LIMIT
from app.api.schemas import MAX_CLIENT_REF
from app.channels import CHANNELS
from app.errors import MAX_ERRORS
from app.sms import E164_DIGITS, GSM7, NUMBER_INPUT_PATTERN, UCS2
from app.status import MESSAGE_STATUSES, UNRECOGNISED
from app.webhooks.events import MAX_ID

MessageStatus = StrEnum("MessageStatus", {name: name for name in MESSAGE_STATUSES})
MessageStatus.__doc__ = (
    "A message's current status; it never moves backwards. `pending`: not yet answered "
    "by Vonage; `failed`: certainly not sent; `unknown`: may have been sent (settled by "
    "its status webhook), or Vonage reported a status this service does not know (shown "
    f"as `{UNRECOGNISED}`; the raw value stays in `events`); `submitted`, `delivered`, "
    "`rejected`, `undeliverable`, `read`: Vonage's; `received`: an inbound message."
)

Direction = StrEnum("Direction", {name: name for name in DIRECTIONS})
Direction.__doc__ = "Which way a message went: from Vonage to us (`inbound`) or sent by us."
Channel = StrEnum("Channel", {name: name for name in CHANNELS})
Channel.__doc__ = (
    "The Vonage channel a message came on; sends are always `sms`. Other channels arrive "
    "on the same webhooks and are kept, never treated as SMS."
)
Encoding = StrEnum("Encoding", {"GSM_7": GSM7, "UCS_2": UCS2})
Encoding.__doc__ = "How the text is encoded on the air; it decides the segment count."
# Present in the body when it applies, never null: omitted from the document's `null`s.
Omittable = SkipJsonSchema[None]


class _Body(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


class FieldError(_Body):
    """One invalid input: the field (or header, or query parameter) and what is wrong."""

    field: str
    message: str


class Problem(_Body):
    """RFC 9457 problem details; `status` repeats the HTTP status. Extension members may appear."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(
        description="`about:blank`, or `urn:sms-service:problem:<name>` (`validation`, "
        "`opted-out`, `idempotency-key-reused`, `daily-limit`, `vonage-rejected`, "
        "`vonage-outcome-unknown`, ...).",
        examples=["urn:sms-service:problem:opted-out"],
    )
    title: str
    status: int = Field(ge=400, le=599, description="The HTTP status code of the answer.")
    detail: str | Omittable = None
    errors: list[FieldError] | Omittable = Field(
        None,
        max_length=MAX_ERRORS,
        description=f"Each invalid field, at most {MAX_ERRORS}; only for `validation` problems.",
    )
    errors_omitted: int | Omittable = Field(
        None, ge=1, description="How many more invalid fields `errors` leaves out."
    )
    id: str | Omittable = Field(
        None,
        description="The service's id for a message Vonage may have accepted (502 and 504 "
        "with type `vonage-outcome-unknown`).",
    )


class ValidationProblem(Problem):
    """A `validation` problem (422): `errors` names every invalid field."""

    errors: list[FieldError] = Field(min_length=1)


class SendRequest(_Body):
    """What to send. Unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")

    to: str = Field(
        pattern=f"^{NUMBER_INPUT_PATTERN}$",
        description="A valid phone number in international form: `+14155550100`, "
        "`14155550100` or `0014155550100`, spaces, dashes, dots and parentheses allowed, a "
        "trunk 0 after the country code ignored. Sent, stored, answered and compared (opt-outs, "
        "history, Idempotency-Key) in one canonical E.164 form: digits, no `+`.",
    )
    text: str = Field(
        min_length=1,
        description="NFC-normalised and stripped of control characters (newlines kept); must "
        "be non-empty after that and at most `SMS_MAX_LENGTH` characters (default 1600).",
    )
    client_ref: str | None = Field(
        None, max_length=MAX_CLIENT_REF, description="Stored and returned; never sent to Vonage."
    )


class SendAccepted(_Body):
    """Vonage accepted the message."""

    id: str = Field(description="The service's own id for the message.")
    message_uuid: str = Field(description="Vonage's id for the message.")
    to: str = Field(pattern=f"^{E164_DIGITS}$", description="The recipient, digits only.")
    from_: str = Field(alias="from", description="The sender number or name.")
    status: Literal["submitted"]
    segments: int = Field(ge=1, description="What the carrier will bill.")
    encoding: Encoding
    client_ref: str | None = Field(max_length=MAX_CLIENT_REF, description="As sent, or null.")


class MessageError(_Body):
    """Why a message's current status is a failure, in Vonage's webhook error shape.

    Vonage's errors carry their numeric code in `title`; the service's own (a send
    that failed or may have failed) carry the problem `type` and `title` the caller
    was answered. It describes the current status: a later status without an error
    (e.g. `delivered` after `unknown`) clears it to null.
    """

    type: str = Field(examples=["https://developer.vonage.com/api-errors/messages#1320"])
    title: str = Field(examples=["1320"])
    detail: str | None
    instance: str | None


Timestamp = Annotated[datetime, Field(description="ISO 8601, UTC.")]


class Message(_Body):
    """One message, either direction."""

    id: str | None = Field(description="Null for a message known only from status webhooks.")
    message_uuid: str | None = Field(description="Vonage's id; null until Vonage accepts it.")
    direction: Direction
    channel: Channel
    message_type: str | None = Field(description="`text`, `image`, `audio`, ... as Vonage says.")
    media_url: str | None = Field(description="Vonage's link to an inbound message's media.")
    from_: str | None = Field(
        alias="from", description="A number, or an id on Messenger/Viber, as Vonage writes it."
    )
    to: str | None
    text: str | None
    status: MessageStatus
    segments: int | None
    encoding: Encoding | None
    client_ref: str | None
    error: MessageError | None
    price: str | None = Field(
        description="Vonage's `usage.price`: of an inbound message, or as an outbound "
        "message's status webhooks report it."
    )
    currency: str | None
    network_code: str | None = Field(description="The sender's network (inbound `origin`).")
    created_at: Timestamp
    updated_at: Timestamp


class StatusEvent(_Body):
    """One status webhook as Vonage sent it: the message's history."""

    status: str = Field(
        description="Vonage's status exactly as received (the message's own `status` shows "
        "only documented values).",
        examples=["delivered"],
    )
    timestamp: datetime | None
    error: MessageError | None
    price: str | None
    currency: str | None
    segments: int | None
    network_code: str | None = Field(description="The recipient's network (`destination`).")
    received_at: Timestamp


class MessageWithEvents(Message):
    """A message and its status history, oldest first."""

    events: list[StatusEvent]


class MessagePage(_Body):
    """One page of messages, newest first."""

    messages: list[Message] = Field(max_length=MAX_LIMIT)
    next_cursor: str | None = Field(
        min_length=1, description="Pass as `cursor` for the next page; null on the last page."
    )


class Erasure(_Body):
    """What `DELETE /numbers/<number>` erased. The opt-out is kept, never erased."""

    number: str = Field(description="The number as stored (canonical E.164 digits for a phone).")
    messages_erased: int = Field(ge=0, description="Messages to or from it, both directions.")
    events_erased: int = Field(ge=0, description="Their status events.")
    idempotency_keys_erased: int = Field(ge=0, description="Stored answers naming it.")
    outbox_events_erased: int = Field(
        ge=0, description="Events for client services (and their deliveries) naming it."
    )
    dead_letters_erased: int = Field(ge=0, description="Raw uninterpretable webhooks naming it.")
    opt_out_kept: bool = Field(description="The number had opted out, and still has.")


class WebhookAck(_Body):
    status: Literal["ok"]
    duplicate: bool = Field(description="Already stored; nothing new.")
    dead_letter: Literal[True] | Omittable = Field(
        None,
        description="Signed but not interpretable (v0.1, another shape, odd JSON): kept raw "
        "for an operator (`flask dead-letters list`), never lost.",
    )


class Health(_Body):
    status: Literal["ok"]
    database: Literal["ok"] | Omittable = None


class IndexLinks(_Body):
    docs: str = Field(description="The interactive API page.")
    openapi: str = Field(description="This document.")
    health: str = Field(description="The liveness check.")


class Index(_Body):
    service: str
    links: IndexLinks


class VonageUsage(_Body):
    price: str | Omittable = None
    currency: str | Omittable = None


class VonageError(_Body):
    """Vonage's error in a status webhook, its numeric code in `title`."""

    type: str | Omittable = None
    title: str | int | Omittable = Field(
        None, description="The numeric code, as text (some events carry it as a number)."
    )
    detail: str | Omittable = None
    instance: str | Omittable = None


class VonageInboundMessage(_Body):
    """An inbound message on any channel, Vonage Messages API webhook v1.

    Other fields are ignored. A signed body of another shape (v0.1, unknown) is
    kept as a dead letter and still answered 200.
    """

    model_config = ConfigDict(extra="allow")

    channel: Channel | Omittable = None
    message_type: str | Omittable = None
    message_uuid: str = Field(min_length=1, max_length=MAX_ID)
    from_: str = Field(alias="from", min_length=1, max_length=32)
    to: str = Field(min_length=1, max_length=32)
    timestamp: datetime | Omittable = None
    text: str | Omittable = None
    sms: dict[str, Any] | Omittable = Field(
        None, description="`num_messages` and `total_count` (digits) and `keyword`."
    )
    usage: VonageUsage | Omittable = None
    origin: dict[str, Any] | Omittable = Field(None, description="`network_code`.")


class VonageStatusEvent(_Body):
    """A delivery status event, Vonage Messages API webhook v1. Other fields are ignored."""

    model_config = ConfigDict(extra="allow")

    message_uuid: str = Field(min_length=1, max_length=MAX_ID)
    status: str = Field(
        min_length=1,
        max_length=20,
        examples=["submitted", "delivered", "rejected", "undeliverable", "read"],
    )
    timestamp: datetime
    to: str | Omittable = None
    from_: str | Omittable = Field(None, alias="from")
    channel: Channel | Omittable = None
    client_ref: str | Omittable = Field(None, min_length=1, max_length=MAX_CLIENT_REF)
    error: VonageError | Omittable = None
    usage: VonageUsage | Omittable = None
    sms: dict[str, Any] | Omittable = Field(None, description="`count_total` (digits).")
    destination: dict[str, Any] | Omittable = Field(None, description="`network_code`.")


COMPONENTS: tuple[type[BaseModel], ...] = (
    Problem,
    ValidationProblem,
    SendRequest,
    SendAccepted,
    Message,
    MessageWithEvents,
    MessagePage,
    Erasure,
    WebhookAck,
    Health,
    Index,
    VonageInboundMessage,
    VonageStatusEvent,
)
REF_TEMPLATE = "#/components/schemas/{model}"


def component_schemas() -> dict[str, Any]:
    """COMPONENTS and every model and enum they use, as OpenAPI 3.1 schemas by name."""
    _, document = models_json_schema(
        [(model, "serialization") for model in COMPONENTS],
        ref_template=REF_TEMPLATE,
    )
    return {name: _tidy(schema) for name, schema in document["$defs"].items()}


def _tidy(schema: Any) -> Any:
    """Drop pydantic's per-property titles and `default: null`: noise in generated clients."""
    if isinstance(schema, list):
        return [_tidy(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    tidy = {}
    for key, value in schema.items():
        if key == "properties":
            tidy[key] = {name: _untitled(_tidy(prop)) for name, prop in value.items()}
        elif key == "default" and value is None:
            continue
        else:
            tidy[key] = _tidy(value)
    return tidy


def _untitled(schema: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in schema.items() if key != "title"}
