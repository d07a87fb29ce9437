"""Why a send was refused, or why its outcome is not known: raised by the sender,
counted by it, rendered as problems by `app.errors` (the one place for their shape)."""

from __future__ import annotations

from typing import Any

from app.failures import Failure


class VonageNotConfigured(Failure):
    outcome = "unavailable"


class TooManyInFlight(Failure):
    """Every send slot of this worker is taken."""

    outcome = "unavailable"

    def __init__(self, limit: int) -> None:
        super().__init__(f"{limit} sends in flight")
        self.limit = limit


class OptedOut(Failure):
    """The recipient replied STOP."""

    outcome = "opted_out"


class DailyLimitReached(Failure):
    outcome = "daily_limit"

    def __init__(self, limit: int, seconds_to_reset: int) -> None:
        super().__init__(f"daily limit {limit} reached")
        self.limit = limit
        self.seconds_to_reset = seconds_to_reset


class NoSendSlot(Failure):
    """The outbound throttle had no slot within the time budget."""

    outcome = "unavailable"

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"no send slot; retry after {retry_after:.1f}s")
        self.retry_after = retry_after


class VonageRefused(Failure):
    """Vonage answered 4xx: final, never retried."""

    outcome = "rejected"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class VonageUnavailable(Failure):
    """Vonage certainly does not have the message (refused, 429, 503): retry later."""

    outcome = "unavailable"

    def __init__(self, detail: str, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after


class OutcomeUnknown(Failure):
    """Vonage may have the message (read timeout, 5xx); its status webhook settles it."""

    outcome = "unknown"

    def __init__(self, detail: str, message_id: str, *, timed_out: bool) -> None:
        super().__init__(detail)
        self.detail = detail
        self.message_id = message_id
        self.timed_out = timed_out


class IdempotencyKeyReused(Failure):
    """The key was first used with another body."""

    outcome = "idempotency_conflict"


class IdempotencyKeyInFlight(Failure):
    """The first request with the key has not finished yet."""

    outcome = "in_flight"


class AbandonedOutcomeUnknown(Failure):
    """The first request with the key stopped while Vonage was being called."""

    outcome = "unknown"
    replayed = True

    def __init__(self, message_id: str) -> None:
        super().__init__(message_id)
        self.message_id = message_id


class SendInterrupted(Failure):
    """The first request with the key stopped before Vonage had the message."""

    outcome = "unavailable"
    replayed = True

    def __init__(self, message_id: str) -> None:
        super().__init__(message_id)
        self.message_id = message_id


class ReplayedFailure(Failure):
    """A stored final failure (refused, outcome unknown), answered again as it was."""

    replayed = True

    def __init__(self, status: int, body: dict[str, Any], outcome: str) -> None:
        super().__init__(body.get("title", ""))
        self.status = status
        self.body = body
        self.outcome = outcome
