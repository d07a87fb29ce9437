"""A local event receiver for the walkthrough and tests: listens, verifies, prints.

It is what a client service does, in a dozen lines: verify the Standard
Webhooks signature with the `standardwebhooks` library, then answer 2xx.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook, WebhookVerificationError

MAX_BODY = 1024 * 1024


def make_server(
    host: str, port: int, secret: str, on_event: Callable[[dict, dict], None]
) -> ThreadingHTTPServer:
    """A server that calls `on_event(headers, event)` for each verified event."""
    verifier = Webhook(secret)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 <= length <= MAX_BODY:
                self._answer(413)
                return
            body = self.rfile.read(length)
            headers = {name.lower(): value for name, value in self.headers.items()}
            try:
                event = verifier.verify(body, headers)
            except (WebhookVerificationError, ValueError) as error:
                self._answer(401, f"signature not verified: {error}")
                return
            on_event(headers, event)
            self._answer(204)

        def _answer(self, status: int, text: str = "") -> None:
            payload = text.encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format, *args) -> None:  # quiet: events are printed instead
            pass

    return ThreadingHTTPServer((host, port), Handler)


def print_event(headers: dict, event: dict) -> None:
    print(
        json.dumps({"webhook-id": headers.get("webhook-id"), **event}, indent=2),
        flush=True,
    )
