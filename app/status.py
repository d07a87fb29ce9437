"""The order of delivery statuses: a message's status never moves backwards."""

from __future__ import annotations

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
VONAGE_STATUSES = frozenset({"submitted", "delivered", "rejected", "undeliverable", "read"})


def rank(status: str) -> int:
    return ORDER.get(status, -1)


def statuses_below(status: str) -> list[str]:
    """The statuses a message may leave for `status`."""
    target = rank(status)
    return [name for name, value in ORDER.items() if value < target]
