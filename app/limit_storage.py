"""The in-memory rate-limit storage, made safe for threaded workers.

`limits`' `MemoryStorage` restarts its expiry timer on every hit with an unlocked
`if not timer.is_alive(): timer = Timer(...); timer.start()`. Two request threads
(gunicorn gthread, the default `memory://` storage) can both pass the check and
start the same `Timer` twice: a `RuntimeError` inside the request, or a `KeyError`
in `threading._bootstrap_inner` (upstream: alisaifee/limits issue 26). This
subclass serialises that scheduling; everything else is `MemoryStorage`'s own.
`create_app` maps `memory://` to it through `storage_uri`.

It also sweeps at most every `SWEEP_INTERVAL_SECONDS`: upstream starts a new
`Timer` thread (10 ms) whenever the last one has finished, which under load is
a thread started for almost every hit, and `Thread.start()` waits until the new
thread runs (measured: ~5 ms of a send's wall time on a busy 2-core machine).
The sweep only frees memory; counters and windows are checked against their
own expiry on every hit, so a later sweep changes no decision.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from limits.storage import MemoryStorage

SCHEME = "serialised-memory"
SWEEP_INTERVAL_SECONDS = 1.0

# The private method every hit calls (name-mangled); fail loudly if limits renames it,
# rather than silently running unprotected.
_SCHEDULE = "_MemoryStorage__schedule_expiry"
if not callable(getattr(MemoryStorage, _SCHEDULE, None)):
    raise ImportError(
        f"limits.storage.MemoryStorage has no {_SCHEDULE}: review app/limit_storage.py"
    )


class SerialisedMemoryStorage(MemoryStorage):
    """`MemoryStorage` whose expiry timer is (re)started by one thread at a time."""

    STORAGE_SCHEME = [SCHEME]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options: Any):
        self._schedule_lock = threading.Lock()
        self._next_sweep = 0.0
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)

    def _MemoryStorage__schedule_expiry(self) -> None:
        with self._schedule_lock:
            now = time.monotonic()
            if now < self._next_sweep:
                return
            self._next_sweep = now + SWEEP_INTERVAL_SECONDS
            getattr(super(), _SCHEDULE)()

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_schedule_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._schedule_lock = threading.Lock()
        self._next_sweep = 0.0
        super().__setstate__(state)


def storage_uri(configured: str) -> str:
    """The URI to give flask-limiter: `memory://` becomes the serialised storage."""
    if configured.startswith("memory://"):
        return SCHEME + configured[len("memory") :]
    return configured
