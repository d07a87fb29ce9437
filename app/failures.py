"""Failures the domain raises: typed, Flask-free; `app.errors` renders each as a problem.

Each says what happened, carries what the answer needs (a message id, a delay),
and names the `sms_sends_total` outcome it is counted as.
"""

from __future__ import annotations


class Failure(Exception):
    """Something the caller is answered with an error, decided by the domain."""

    outcome = "invalid"
    #: Answered again from a stored Idempotency-Key record, not decided now.
    replayed = False


class DependencyUnavailable(Failure):
    """The database or the limit storage does not answer: the caller retries later."""

    outcome = "unavailable"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail or "a backing service does not answer")
        self.detail = detail
