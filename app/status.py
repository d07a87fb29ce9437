"""Message statuses: the documented set, and their order (a status never moves backwards)."""

from __future__ import annotations

from typing import Any

# Our own states before Vonage answers, then Vonage's (webhook v1) in order.
ORDER = {
    "pending": 0,
    "unknown": 1,
    "failed": 1,
    "submitted": 2,
    "rejected": 3,
    "undeliverable": 3,
    "delivered": 3,
    "read": 4,
}
# Vonage's statuses (webhook v1), in the order the API documents them.
VONAGE_STATUS_LIST = ("submitted", "delivered", "rejected", "undeliverable", "read")
VONAGE_STATUSES = frozenset(VONAGE_STATUS_LIST)
INBOUND_STATUS = "received"
# Every value a message's `status` can take, in the API and its `status` filter.
MESSAGE_STATUSES = (*ORDER, INBOUND_STATUS)
# What a message shows when the only thing known is a status this service does not know.
UNRECOGNISED = "unknown"


def rank(status: str) -> int:
    return ORDER.get(status, -1)


def statuses_below(status: str) -> list[str]:
    """The statuses a message may leave for `status`."""
    target = rank(status)
    return [name for name, value in ORDER.items() if value < target]


def public_status(status: str) -> str:
    """`status` if it is one of MESSAGE_STATUSES, else `unknown`: no undocumented value shows."""
    return status if status in MESSAGE_STATUSES else UNRECOGNISED


def message_error(
    type: str, title: str, detail: str | None = None, instance: str | None = None
) -> dict[str, str | None]:
    """A message's `error`, in Vonage's webhook shape whoever reports it."""
    return {"type": type, "title": title, "detail": detail, "instance": instance}


def as_message_error(raw: Any) -> dict[str, str | None] | None:
    """Any stored error in the one documented shape.

    Vonage's `{type, title, detail, instance}` passes through (values as text);
    rows written before the shape was unified hold `{detail, status_code}`.
    """
    if not isinstance(raw, dict):
        return None

    def text(name: str) -> str | None:
        value = raw.get(name)
        return None if value is None else str(value)

    if "title" in raw or "type" in raw:
        return message_error(
            text("type") or "about:blank", text("title") or "", text("detail"), text("instance")
        )
    code = raw.get("status_code")
    title = f"Vonage answered {code}" if code is not None else "Not sent"
    return message_error("about:blank", title, text("detail"))
