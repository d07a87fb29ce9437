"""gunicorn's threaded worker, but a request reaches a thread only once it has fully arrived.

gunicorn's `gthread` reads each request inside a pool thread with a blocking
socket: a client that dribbles its headers, or announces a 60 000-byte body
and sends it a byte at a time, holds that thread. Seventy such connections
held all 64 threads of two workers, and `/health` and Vonage's webhooks
stopped being answered.

Here the worker's event loop (the thread that already accepts connections and
watches kept-alive ones) reads every request without blocking until its head
and body are complete, then hands the bytes to the pool, where gunicorn parses
them as usual without ever waiting on the client. A request that is not
complete within `REQUEST_READ_TIMEOUT_SECONDS`, whose head is over
`MAX_HEAD_BYTES`, or whose body (declared or chunked) is over the app's 64 KiB
limit is answered (408, 431, 413) from the loop and the connection closed,
without touching a thread. A slow connection then costs a socket and at most
~130 KiB of buffer; `worker_connections` bounds how many a worker holds.

A worker at `worker_connections` stopped accepting, so two thousand idle
connections held every slot of two workers and `/health` waited for their
10 s timeout. Now a new connection that fills the last slot makes room at
once: the oldest idle kept-alive connection, else the oldest connection whose
request is still arriving, is closed (503 if it had sent part of a request).
Requests already in a thread are never touched.

gunicorn's own error pages (400, 414, 431 from its parser) are HTML; the
worker answers them as RFC 9457 problem+json like the app does.
"""

from __future__ import annotations

import errno
import json
import re
import selectors
import socket
import time
from collections import deque
from functools import partial

from gunicorn import http, util
from gunicorn.workers.gthread import ThreadWorker

from app import MAX_BODY_BYTES

REQUEST_READ_TIMEOUT_SECONDS = 10.0
MAX_HEAD_BYTES = 64 * 1024
_RECV_BYTES = 64 * 1024
_HEAD_END = b"\r\n\r\n"
_MAX_CHUNK_LINE_BYTES = 1024
_MAX_LENGTH_DIGITS = 12
_TOO_LARGE = 1 << 62
_CHUNK_SIZE_LINE = re.compile(rb"([0-9A-Fa-f]{1,16})(?:[ \t]*;[^\r\n]*)?")
_SHED_DETAIL = "too many connections at once; this one had waited longest; retry"
_HEADER = re.compile(rb"^([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*(.*?)[ \t]*$")


class Incomplete(Exception):
    """More bytes are needed."""


class Refused(Exception):
    """The request cannot be served; answer `status` and close."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail


def request_end(data: bytes | bytearray, max_body: int = MAX_BODY_BYTES) -> int:
    """The length of the first complete HTTP/1.x request in `data`.

    Raises `Incomplete` when more bytes are needed and `Refused` for a head or
    body over the limits. Framing this scan does not understand (a malformed
    Content-Length, an unknown coding) counts as complete at the end of the
    head: gunicorn's parser then refuses it without reading a body.
    """
    head_end = data.find(_HEAD_END)
    if head_end < 0:
        if len(data) > MAX_HEAD_BYTES:
            raise Refused(431, "Request Header Fields Too Large", "the request head is too large")
        raise Incomplete
    if head_end > MAX_HEAD_BYTES:
        raise Refused(431, "Request Header Fields Too Large", "the request head is too large")
    body_start = head_end + len(_HEAD_END)
    length, chunked = _framing(bytes(data[:head_end]))
    if chunked:
        return _chunked_end(data, body_start, max_body)
    if length is None:
        return body_start
    if length > max_body:
        raise Refused(413, "Content Too Large", f"the body is over {max_body // 1024} KiB")
    if len(data) < body_start + length:
        raise Incomplete
    return body_start + length


def _framing(head: bytes) -> tuple[int | None, bool]:
    length, chunked = None, False
    for line in head.split(b"\r\n")[1:]:
        match = _HEADER.match(line)
        if not match:
            continue
        name, value = match.group(1).lower(), match.group(2)
        if name == b"transfer-encoding":
            chunked = chunked or b"chunked" in value.lower()
        elif name == b"content-length" and value.isdigit():
            # Python refuses to read over 4 300 digits (a ValueError that ended the
            # worker); anything over a dozen is far beyond any body limit anyway.
            length = int(value) if len(value) <= _MAX_LENGTH_DIGITS else _TOO_LARGE
    return (None if chunked else length), chunked


def _chunked_end(data: bytes | bytearray, position: int, max_body: int) -> int:
    """Where a chunked body ends. A chunk-size line that is not 1 to 16 hex
    digits (with an optional `;ext`), or chunk data not closed by CRLF, is
    refused here: `int()` alone took `-6` and moved the scan backwards forever,
    and `zz` reached the app as a 500."""
    total = 0
    while True:
        line_end = data.find(b"\r\n", position)
        if line_end < 0:
            if len(data) - position > _MAX_CHUNK_LINE_BYTES:
                raise _malformed_chunked()
            raise Incomplete
        match = _CHUNK_SIZE_LINE.fullmatch(bytes(data[position:line_end]))
        if match is None:
            raise _malformed_chunked()
        size = int(match.group(1), 16)
        total += size
        if total > max_body:
            raise Refused(413, "Content Too Large", f"the body is over {max_body // 1024} KiB")
        position = line_end + 2
        if size == 0:
            trailers_end = data.find(b"\r\n", position)
            while trailers_end > position:  # skip trailer fields up to the empty line
                position = trailers_end + 2
                trailers_end = data.find(b"\r\n", position)
            if trailers_end < 0:
                raise Incomplete
            return trailers_end + 2
        if len(data) < position + size + 2:
            raise Incomplete
        if data[position + size : position + size + 2] != b"\r\n":
            raise _malformed_chunked()
        position += size + 2


def _malformed_chunked() -> Refused:
    return Refused(400, "Bad Request", "malformed chunked body")


def problem_bytes(status: int, title: str, detail: str) -> bytes:
    body = json.dumps(
        {"type": "about:blank", "title": title, "status": status, "detail": detail}
    ).encode()
    head = (
        f"HTTP/1.1 {status} {title}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/problem+json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


def _write_problem_error(sock, status_int, reason, mesg) -> None:
    """gunicorn's `util.write_error`, as problem+json instead of an HTML page."""
    util.write_nonblock(sock, problem_bytes(status_int, reason, mesg or reason))


class _Pending:
    """A connection whose request is still arriving."""

    __slots__ = ("conn", "data", "deadline", "continued")

    def __init__(self, conn, data: bytes, deadline: float) -> None:
        self.conn = conn
        self.data = bytearray(data)
        self.deadline = deadline
        self.continued = False


class BufferingThreadWorker(ThreadWorker):
    """`gthread` whose pool threads only ever see requests that have fully arrived."""

    def init_process(self) -> None:
        self.arriving: deque[_Pending] = deque()
        util.write_error = _write_problem_error
        super().init_process()

    def accept(self, listener) -> None:
        """gunicorn's accept, then room for the next one: a full worker stops
        accepting, and a flood of idle connections would keep it full."""
        super().accept(listener)
        while self.nr_conns >= self.worker_connections and self._shed_oldest():
            pass

    def _shed_oldest(self) -> bool:
        """Close the oldest idle kept-alive connection, else the oldest still
        arriving; False when every connection is being served."""
        if self.keepalived_conns:
            conn = self.keepalived_conns.popleft()
            try:
                self.poller.unregister(conn.sock)
            except (KeyError, ValueError, OSError):
                pass
            self.nr_conns -= 1
            conn.close()
            return True
        if len(self.arriving) > 1:  # never the connection just accepted
            pending = self.arriving[0]
            self._forget(pending)
            if pending.data:
                self._refuse(pending, Refused(503, "Service Unavailable", _SHED_DETAIL))
            else:
                self.nr_conns -= 1
                pending.conn.close()
            return True
        return False

    def enqueue_req(self, conn) -> None:
        """Every path to the pool (new, kept-alive, pipelined) comes here: read first."""
        if self.cfg.is_ssl:
            super().enqueue_req(conn)
            return
        read_ahead = conn.parser.unreader.take_buffered() if conn.parser is not None else b""
        pending = _Pending(conn, read_ahead, time.monotonic() + REQUEST_READ_TIMEOUT_SECONDS)
        conn.sock.setblocking(False)
        if read_ahead and self._dispatch_safely(pending):
            return
        self.arriving.append(pending)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_bytes, pending))

    def _on_bytes(self, pending: _Pending, _sock) -> None:
        try:
            chunk = pending.conn.sock.recv(_RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(pending)
            return
        if not chunk:
            self._drop(pending)
            return
        pending.data += chunk
        self._dispatch_safely(pending)

    def _dispatch_safely(self, pending: _Pending) -> bool:
        """`_try_dispatch`, but one connection's bad bytes never end the worker and
        every request it holds: that connection alone is closed."""
        try:
            return self._try_dispatch(pending)
        except Exception:
            self.log.exception("Dropped a request the worker could not frame")
            self._drop(pending)
            return True

    def _try_dispatch(self, pending: _Pending) -> bool:
        """Hand a complete request to the pool, or refuse it; False while incomplete."""
        try:
            request_end(pending.data)
        except Incomplete:
            self._maybe_continue(pending)
            return False
        except Refused as refusal:
            self._forget(pending)
            self._refuse(pending, refusal)
            return True
        self._forget(pending)
        conn = pending.conn
        if conn.parser is None:
            conn.initialized = True
            conn.parser = http.get_parser(self.cfg, conn.sock, conn.client)
        conn.parser.unreader.unread(bytes(pending.data))
        conn.data_ready = True
        conn.sock.setblocking(True)
        super().enqueue_req(conn)
        return True

    def _maybe_continue(self, pending: _Pending) -> None:
        """Answer `Expect: 100-continue` once the head is in, so the client sends its body."""
        if pending.continued:
            return
        head_end = pending.data.find(_HEAD_END)
        if head_end >= 0 and b"100-continue" in pending.data[:head_end].lower():
            pending.continued = True
            self._send_quietly(pending.conn.sock, b"HTTP/1.1 100 Continue\r\n\r\n")

    def _forget(self, pending: _Pending) -> None:
        try:
            self.poller.unregister(pending.conn.sock)
        except (KeyError, ValueError, OSError):
            pass
        try:
            self.arriving.remove(pending)
        except ValueError:
            pass

    def _drop(self, pending: _Pending) -> None:
        self._forget(pending)
        self.nr_conns -= 1
        pending.conn.close()

    def _refuse(self, pending: _Pending, refusal: Refused) -> None:
        self.log.warning(
            "Refused request from ip=%s: %s %s",
            pending.conn.client[0] if pending.conn.client else "-",
            refusal.status,
            refusal.detail,
        )
        self._send_quietly(
            pending.conn.sock, problem_bytes(refusal.status, refusal.title, refusal.detail)
        )
        self.nr_conns -= 1
        pending.conn.close()

    @staticmethod
    def _send_quietly(sock: socket.socket, data: bytes) -> None:
        """A small answer into the socket's buffer; a client that does not read loses it."""
        try:
            sock.send(data)
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN):
                raise

    def murder_pending(self) -> None:
        """Besides gunicorn's own, close connections whose request is overdue."""
        super().murder_pending()
        now = time.monotonic()
        for pending in [p for p in self.arriving if p.deadline <= now]:
            self._forget(pending)
            if pending.data:
                timeout = REQUEST_READ_TIMEOUT_SECONDS
                self._refuse(
                    pending,
                    Refused(
                        408, "Request Timeout", f"the request took over {timeout:g} s to arrive"
                    ),
                )
            else:
                self.nr_conns -= 1
                pending.conn.close()
