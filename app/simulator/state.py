"""What the simulator has seen and the faults it is told to inject; thread-safe."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field, replace
from typing import Any

FAULT_FIELDS = {
    "latency_ms": int,
    "status": int,
    "retry_after": int,
    "hang_seconds": float,
    "webhook_first": bool,
    "duplicate_webhooks": bool,
    "times": int,
}


class InvalidFaults(ValueError):
    pass


@dataclass(frozen=True)
class Faults:
    """Faults for the next sends.

    latency_ms: wait before answering every send.
    status, retry_after: answer with this HTTP status (and Retry-After seconds).
    hang_seconds: wait this long, or until `POST /_sim/release`, before
        answering (the send still succeeds), so a client with a shorter read
        timeout gives up first.
    webhook_first: deliver the status webhooks before answering the send.
    duplicate_webhooks: deliver every status webhook twice.
    times: apply to the next N sends only, then clear (omitted: until reset).
    """

    latency_ms: int = 0
    status: int | None = None
    retry_after: int | None = None
    hang_seconds: float = 0
    webhook_first: bool = False
    duplicate_webhooks: bool = False
    times: int | None = None

    @classmethod
    def parse(cls, body: Any) -> Faults:
        if not isinstance(body, dict):
            raise InvalidFaults("the body must be a JSON object")
        unknown = sorted(set(body) - set(FAULT_FIELDS))
        if unknown:
            raise InvalidFaults(f"unknown fault(s): {', '.join(unknown)}")
        values = {}
        for name, value in body.items():
            kind = FAULT_FIELDS[name]
            if value is None:
                continue
            if kind is bool and not isinstance(value, bool):
                raise InvalidFaults(f"{name} must be true or false")
            if kind is not bool and (
                isinstance(value, bool) or not isinstance(value, int | float) or value < 0
            ):
                raise InvalidFaults(f"{name} must be a non-negative number")
            values[name] = kind(value)
        if values.get("times") == 0:
            raise InvalidFaults("times must be at least 1 (omit it for until reset)")
        status = values.get("status")
        if status is not None and not 400 <= status <= 599:
            raise InvalidFaults("status must be an HTTP error status (400-599)")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SimState:
    messages: list[dict[str, Any]] = field(default_factory=list)
    webhooks: list[dict[str, Any]] = field(default_factory=list)
    _faults: Faults = field(default_factory=Faults)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _wake: threading.Condition = field(default_factory=threading.Condition)
    _generation: int = 0

    def set_faults(self, faults: Faults) -> None:
        with self._lock:
            self._faults = faults

    def faults(self) -> Faults:
        with self._lock:
            return self._faults

    def take_faults(self) -> Faults:
        """The faults for one send, counting it against `times`."""
        with self._lock:
            current = self._faults
            if current.times is not None:
                remaining = current.times - 1
                self._faults = replace(current, times=remaining) if remaining else Faults()
            return current

    def hang(self, seconds: float) -> None:
        """Block up to `seconds`, or until `release_hung()` is called."""
        with self._wake:
            generation = self._generation
            self._wake.wait_for(lambda: self._generation != generation, timeout=seconds)

    def release_hung(self) -> None:
        with self._wake:
            self._generation += 1
            self._wake.notify_all()

    def record_message(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.messages.append(entry)

    def record_webhook(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.webhooks.append(entry)

    def snapshot(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        with self._lock:
            return list(self.messages), list(self.webhooks)

    def clear(self) -> None:
        with self._lock:
            self.messages.clear()
            self.webhooks.clear()
            self._faults = Faults()
