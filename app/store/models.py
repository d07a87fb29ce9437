"""Tables. Schema changes only through the migrations beside this file."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    JSON,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from app.sms import MAX_CLIENT_REF


class Base(DeclarativeBase):
    pass


# The rows of `ix_messages_owned_to`. A query uses that index only when its own
# WHERE has these very terms; the literal, not a bound parameter, lets every plan
# of a prepared statement use it (PostgreSQL's generic plans cannot otherwise).
# Unqualified names, inside an AND: only for a query on `messages` alone.
OWNED_OUTBOUND = text("direction = 'outbound' AND owner IS NOT NULL")


class Message(Base):
    """One message, either direction. `id` is ours; `message_uuid` is Vonage's.

    Sends are SMS; inbound messages may come from any channel of the Vonage
    application (`channel`), with their `message_type` and media URL.
    """

    __tablename__ = "messages"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    message_uuid: Mapped[str | None] = mapped_column(String(64), unique=True)
    direction: Mapped[str] = mapped_column(String(8))
    from_number: Mapped[str] = mapped_column("from_number", String(32))
    to_number: Mapped[str] = mapped_column("to_number", String(32))
    text: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20))
    segments: Mapped[int | None] = mapped_column(Integer)
    encoding: Mapped[str | None] = mapped_column(String(8))
    client_ref: Mapped[str | None] = mapped_column(String(MAX_CLIENT_REF))
    error: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)
    channel: Mapped[str] = mapped_column(String(16), server_default="sms")
    message_type: Mapped[str | None] = mapped_column(String(32))
    media_url: Mapped[str | None] = mapped_column(Text)
    price: Mapped[str | None] = mapped_column(String(32))
    currency: Mapped[str | None] = mapped_column(String(8))
    network_code: Mapped[str | None] = mapped_column(String(16))
    # The sending API key's fingerprint (never the key): routes its events.
    owner: Mapped[str | None] = mapped_column(String(64))
    # Set just before Vonage is called: a `pending` row without it was certainly not sent.
    vonage_called_at: Mapped[datetime | None] = mapped_column(DateTime)

    __table_args__ = (
        Index("ix_messages_created", "created_at", "id"),
        Index("ix_messages_channel_created", "channel", "created_at"),
        Index("ix_messages_status_created", "status", "created_at"),
        Index("ix_messages_to_created", "to_number", "created_at"),
        Index("ix_messages_from_created", "from_number", "created_at"),
        # Sends that route replies and opt-out events (`REPLY_ROUTING_DAYS`): every
        # inbound webhook asks whether its sender was sent to by a key. Through
        # `ix_messages_to_created` that read every message to the number in the
        # window, which at a million stored messages halved webhook ingest.
        Index(
            "ix_messages_owned_to",
            "to_number",
            "created_at",
            sqlite_where=OWNED_OUTBOUND,
            postgresql_where=OWNED_OUTBOUND,
        ),
    )


class MessageEvent(Base):
    """A status webhook, kept even when its message is not (yet) known."""

    __tablename__ = "message_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # Looked up through the unique index below, whose first column it is.
    message_uuid: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20))
    timestamp: Mapped[datetime] = mapped_column(DateTime)
    client_ref: Mapped[str | None] = mapped_column(String(MAX_CLIENT_REF))
    error: Mapped[dict | None] = mapped_column(JSON)
    price: Mapped[str | None] = mapped_column(String(32))
    currency: Mapped[str | None] = mapped_column(String(8))
    segments: Mapped[int | None] = mapped_column(Integer)
    received_at: Mapped[datetime] = mapped_column(DateTime)
    channel: Mapped[str | None] = mapped_column(String(16))
    network_code: Mapped[str | None] = mapped_column(String(16))

    __table_args__ = (UniqueConstraint("message_uuid", "status", "timestamp"),)


class DeadLetter(Base):
    """A correctly signed webhook the service could not interpret, kept raw.

    Vonage does not retry a 4xx, so such a body is acknowledged 200 and kept
    here until an operator reprocesses it (`flask dead-letters reprocess`).
    One row per kind and body: a replayed body is stored once.
    """

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    body_sha256: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    reprocessed_at: Mapped[datetime | None] = mapped_column(DateTime)
    outcome: Mapped[str | None] = mapped_column(String(16))

    __table_args__ = (UniqueConstraint("kind", "body_sha256"),)


class OptOut(Base):
    __tablename__ = "opt_outs"

    number: Mapped[str] = mapped_column(String(32), primary_key=True)
    opted_out_at: Mapped[datetime] = mapped_column(DateTime)
    message_uuid: Mapped[str | None] = mapped_column(String(64))


class IdempotencyKey(Base):
    """A caller's Idempotency-Key, scoped to the API key that used it."""

    __tablename__ = "idempotency_keys"

    owner: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    # The message this request created, written with its row, and the moment past
    # which the request holding the key can no longer be alive.
    message_id: Mapped[str | None] = mapped_column(String(36))
    in_flight_until: Mapped[datetime | None] = mapped_column(DateTime)


class DailySendCount(Base):
    """Sends per UTC day, the global cap's counter shared by every worker."""

    __tablename__ = "daily_send_counts"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    count: Mapped[int] = mapped_column(Integer)


class Subscription(Base):
    """A client service's endpoint for events; `secret` signs every delivery."""

    __tablename__ = "subscriptions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner: Mapped[str] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(Text)
    event_types: Mapped[list] = mapped_column(JSON)
    scope: Mapped[str] = mapped_column(String(8))
    secret: Mapped[str] = mapped_column(String(128))
    previous_secret: Mapped[str | None] = mapped_column(String(128))
    previous_secret_until: Mapped[datetime | None] = mapped_column(DateTime)
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime)
    disabled_reason: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (Index("ix_subscriptions_owner", "owner", "created_at"),)


class Event(Base):
    """One event for one API key (the outbox); `body` is the exact JSON delivered."""

    __tablename__ = "events"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    owner: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(32))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (Index("ix_events_owner_created", "owner", "created_at", "id"),)


class Delivery(Base):
    """An event on its way to one subscription: the dispatcher's queue row."""

    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(40), ForeignKey("events.id", ondelete="CASCADE"))
    subscription_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("subscriptions.id", ondelete="CASCADE")
    )
    status: Mapped[str] = mapped_column(String(12))
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime)
    locked_by: Mapped[str | None] = mapped_column(String(36))
    last_attempt_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(200))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (
        UniqueConstraint("event_id", "subscription_id"),
        Index("ix_deliveries_lane", "subscription_id", "status", "next_attempt_at"),
        Index("ix_deliveries_status_created", "status", "created_at"),
    )


class ReadinessProbe(Base):
    """One tiny row per probe name, rewritten by /health/ready to prove writes work."""

    __tablename__ = "readiness_probes"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    probed_at: Mapped[datetime] = mapped_column(DateTime)
