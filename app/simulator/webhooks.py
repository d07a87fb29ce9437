"""Delivering signed webhooks to the app, retrying as Vonage does.

Vonage retries a webhook only when the answer is 429 or 5xx (or no answer at
all), with growing pauses; any other answer is final. The pauses here are
`backoff * 2**n`, capped, for a bounded number of attempts, so tests can make
them short.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests

from app.simulator.state import SimState
from app.webhooks.payloads import post_signed

TIMEOUT_SECONDS = 10
WORKERS = 16

log = logging.getLogger("app.simulator")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    backoff: float = 1.0
    backoff_max: float = 60.0

    def pause(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        return min(self.backoff * 2 ** (attempt - 1), self.backoff_max)


def is_retryable(status: int | None) -> bool:
    return status is None or status == 429 or status >= 500


class WebhookSender:
    def __init__(
        self,
        state: SimState,
        secret: str,
        policy: RetryPolicy,
        *,
        claims: dict[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._state = state
        self._secret = secret
        self._claims = claims or {}
        self._policy = policy
        self._sleep = sleep
        self._executor = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="webhook")

    def attempt(self, url: str, payload: dict[str, Any], *, kind: str, number: int) -> int | None:
        """One signed POST; the answer's status, or None when there was none."""
        record = {
            "kind": kind,
            "url": url,
            "message_uuid": payload.get("message_uuid"),
            "status": payload.get("status"),
            "attempt": number,
            "sent_at": datetime.now(UTC).isoformat(),
            "response_status": None,
            "error": None,
        }
        try:
            # verify= the public CA bundle, not REQUESTS_CA_BUNDLE: that may
            # point at this simulator's own certificate in the same shell.
            response = post_signed(
                url,
                payload,
                self._secret,
                claims=self._claims,
                timeout=TIMEOUT_SECONDS,
                verify=requests.certs.where(),
            )
            record["response_status"] = response.status_code
        except requests.RequestException as error:
            record["error"] = type(error).__name__
        self._state.record_webhook(record)
        log.info(
            "webhook %s %s attempt %d -> %s",
            kind,
            payload.get("status") or "",
            number,
            record["response_status"] or record["error"],
        )
        return record["response_status"]

    def deliver(
        self, url: str, payload: dict[str, Any], *, kind: str, first_attempt: int = 1
    ) -> int | None:
        """Attempt until a final answer or the attempts run out; the last answer."""
        status = None
        for number in range(first_attempt, self._policy.attempts + 1):
            if number > first_attempt:
                self._sleep(self._policy.pause(number - 1))
            status = self.attempt(url, payload, kind=kind, number=number)
            if not is_retryable(status):
                break
        return status

    def deliver_now(self, url: str, payload: dict[str, Any], *, kind: str) -> int | None:
        """The first attempt inline (its answer is returned); retries in the background."""
        status = self.attempt(url, payload, kind=kind, number=1)
        if is_retryable(status) and self._policy.attempts > 1:
            self._executor.submit(self._retry_later, url, payload, kind)
        return status

    def _retry_later(self, url: str, payload: dict[str, Any], kind: str) -> None:
        self._sleep(self._policy.pause(1))
        self.deliver(url, payload, kind=kind, first_attempt=2)

    def in_background(self, job: Callable[[], None]) -> None:
        self._executor.submit(_logged(job))

    def close(self) -> None:
        """Wait for every pending delivery (tests call this before their mocks go away)."""
        self._executor.shutdown(wait=True)


def _logged(job: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        try:
            job()
        except Exception:
            log.exception("background webhook job failed")

    return run
