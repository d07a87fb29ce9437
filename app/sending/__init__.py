"""Sending one SMS, without Flask: `Sender` (built in `create_app()`), what it takes
(`SendRequest`), what it answers (`SendResult`) or raises (`app.sending.failures`).

Crash safety (README, "What a send survives"): an Idempotency-Key claim holds
the key only for as long as its request can be alive (`hold_seconds`), and
records the message it created in the same transaction as the row.
"""

from app.sending.abandoned import settle_abandoned_sends
from app.sending.budget import hold_seconds
from app.sending.request import SendRequest, SendResult, request_hash
from app.sending.sender import Sender

__all__ = [
    "SendRequest",
    "SendResult",
    "Sender",
    "hold_seconds",
    "request_hash",
    "settle_abandoned_sends",
]
