"""One HTTP attempt to a subscriber, to the address the SSRF guard checked.

`requests` with a pinned adapter: the URL's host is resolved once, checked,
and the connection goes to that address, with the original `Host` header and,
for https, the original name for SNI and certificate verification. Redirects
are never followed, proxies from the environment are ignored (they would
connect elsewhere), and at most 64 KiB of an answer is read.

An attempt has a wall-clock limit (`TIMEOUT_SECONDS`) from connect to the last
byte read: `requests`' timeout restarts on every read, so a server trickling
header or body bytes could hold an attempt for ever. A watchdog timer shuts
the socket down at the deadline and the attempt counts as a timeout (retried).
"""

from __future__ import annotations

import ipaddress
import os
import socket
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import requests
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from app.events.ssrf import Destination, parse_url, resolve

TIMEOUT_SECONDS = 10.0
MAX_ANSWER_BYTES = 64 * 1024
USER_AGENT = "sms-service-events/1"


@dataclass(frozen=True)
class Answer:
    """What one attempt got: an HTTP status, or an error (timeout, refused, blocked)."""

    status_code: int | None
    retry_after: float | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class _Connections:
    """The connections a pool made, so a watchdog can cut the one in use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._made: list = []

    def add(self, connection) -> None:
        with self._lock:
            self._made = [*(c for c in self._made if c.sock is not None), connection]

    def cut(self) -> None:
        """Shut every live socket down: a read blocked on it returns at once."""
        with self._lock:
            made = list(self._made)
        for connection in made:
            sock = connection.sock
            if sock is not None:
                try:
                    # socket.socket's own shutdown: for TLS too, without touching
                    # the SSL object the sending thread is using.
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)
                except OSError:
                    pass


def _tracked(pool_class: type, connections: _Connections) -> type:
    class Tracked(pool_class):
        def _new_conn(self):
            connection = super()._new_conn()
            connections.add(connection)
            return connection

    return Tracked


class _PinnedAdapter(HTTPAdapter):
    """Verifies the certificate against, and sends SNI for, the URL's host name."""

    def __init__(self, hostname: str, connections: _Connections) -> None:
        self._hostname = hostname
        self._connections = connections
        super().__init__(pool_connections=1, pool_maxsize=1, max_retries=0)

    def init_poolmanager(self, connections, maxsize, block=False, **pool_kwargs):
        pool_kwargs.update(server_hostname=self._hostname, assert_hostname=self._hostname)
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _tracked(HTTPConnectionPool, self._connections),
            "https": _tracked(HTTPSConnectionPool, self._connections),
        }


class Endpoint:
    """A subscriber's URL, resolved and checked once, with a keep-alive connection."""

    def __init__(
        self,
        url: str,
        *,
        https_only: bool,
        allow_private: bool,
        deadline: float = TIMEOUT_SECONDS,
    ) -> None:
        destination = parse_url(url, https_only=https_only)
        address = resolve(destination, allow_private=allow_private)
        self._target = _target_url(destination, address)
        self._host_header = _host_header(destination)
        self._deadline = deadline
        self._connections = _Connections()
        self._session = requests.Session()
        self._session.trust_env = False
        self._session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or True
        adapter = _PinnedAdapter(destination.host, self._connections)
        self._session.mount(f"{destination.scheme}://", adapter)

    def post(self, body: bytes, headers: dict[str, str]) -> Answer:
        """One attempt, over within `deadline` seconds whatever the server does."""
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            self._connections.cut()

        watchdog = threading.Timer(self._deadline, expire)
        watchdog.daemon = True
        watchdog.start()
        try:
            answer = self._post(body, headers)
        except Exception:
            if not expired.is_set():
                raise
            answer = None
        finally:
            watchdog.cancel()
        if expired.is_set():
            # Cut mid-answer: the server may have been sent the event, but it
            # did not answer in time, so it is retried (same webhook-id).
            self._session.close()
            return Answer(None, error="timed out")
        return answer

    def _post(self, body: bytes, headers: dict[str, str]) -> Answer:
        started = time.monotonic()
        all_headers = {
            **headers,
            "Host": self._host_header,
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
        }
        try:
            with self._session.post(
                self._target,
                data=body,
                headers=all_headers,
                timeout=self._deadline,
                allow_redirects=False,
                stream=True,
            ) as response:
                _drain(response, started, self._deadline)
                return Answer(response.status_code, _retry_after(response.headers))
        except requests.Timeout:
            return Answer(None, error="timed out")
        except requests.ConnectionError:
            return Answer(None, error="connection failed")
        except requests.RequestException as error:
            return Answer(None, error=type(error).__name__)

    def close(self) -> None:
        self._session.close()


def _drain(response: requests.Response, started: float, deadline: float) -> None:
    """Read a little of the answer (so the connection can be reused), within the deadline."""
    read = 0
    for chunk in response.iter_content(8192):
        read += len(chunk)
        if read > MAX_ANSWER_BYTES or time.monotonic() - started > deadline:
            break


def _target_url(destination: Destination, address: str) -> str:
    shown = f"[{address}]" if ipaddress.ip_address(address).version == 6 else address
    return f"{destination.scheme}://{shown}:{destination.port}{destination.path}"


def _host_header(destination: Destination) -> str:
    host = f"[{destination.host}]" if ":" in destination.host else destination.host
    default = 443 if destination.scheme == "https" else 80
    return host if destination.port == default else f"{host}:{destination.port}"


def _retry_after(headers) -> float | None:
    """`Retry-After` in seconds (a number or an HTTP date), or None."""
    value = headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # isdigit() alone takes "²", which float() refuses
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
