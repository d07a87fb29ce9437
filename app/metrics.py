"""Prometheus metrics, correct under several gunicorn workers.

With PROMETHEUS_MULTIPROC_DIR set (the Procfile's gunicorn config prepares it
before any worker starts) each worker writes its own files and /metrics adds
them up; without it (tests, `python -m app`) the default registry is used.
"""

from __future__ import annotations

import os
from http import HTTPStatus

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

SENDS = Counter(
    "sms_sends_total",
    "POST /send-sms outcomes: submitted, rejected, unavailable, unknown, opted_out, "
    "daily_limit, throttled, replayed, invalid",
    ["outcome"],
)
WEBHOOKS = Counter(
    "sms_webhooks_total",
    "Webhook calls by kind (inbound, status) and outcome (stored, duplicate, dead_letter, "
    "bad_signature, unsigned, invalid, unavailable)",
    ["kind", "outcome"],
)
DEAD_LETTERS = Counter(
    "sms_webhook_dead_letters_total",
    "Signed webhooks kept raw because they could not be interpreted, by kind and reason "
    "(webhook_version, wrong_kind, odd_json, unknown_shape); see `flask dead-letters list`",
    ["kind", "reason"],
)
STATUS_EVENTS = Counter(
    "sms_status_events_total",
    "Status events stored, by status and whether they moved the message forward",
    ["status", "effect"],
)
OPT_OUTS = Counter("sms_opt_out_changes_total", "Opt-out keyword messages", ["change"])
EVENT_DELIVERIES = Counter(
    "sms_event_deliveries_total",
    "Event delivery attempts by outcome (delivered, retry, failed, gone, blocked), "
    "counted by the dispatcher that made them",
    ["outcome"],
)
REQUEST_LATENCY = Histogram(
    "http_request_duration_seconds",
    "Time to answer a request, by route, method and status",
    ["route", "method", "status"],
    buckets=_LATENCY_BUCKETS,
)
VONAGE_LATENCY = Histogram(
    "vonage_send_duration_seconds",
    "Time spent in one send to Vonage, retries and throttle wait included, by outcome",
    ["outcome"],
    buckets=_LATENCY_BUCKETS,
)


KNOWN_STATUSES = frozenset({"submitted", "delivered", "rejected", "undeliverable", "read"})


# Every label value comes from a fixed set: a value taken from the request as is
# (a made-up method, a path) would add a time series per distinct value, and in
# multiprocess mode a file entry per worker, until /metrics and the disk choke.
OTHER = "other"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
KNOWN_HTTP_STATUSES = frozenset(status.value for status in HTTPStatus)


def request_labels(route: str | None, method: str, status: int) -> tuple[str, str, str]:
    """(route, method, status) for the latency histogram, each from a fixed set.

    `route` is the matched URL rule (the app's own, finite) or None; anything
    unknown is folded into `other`.
    """
    return (
        route or OTHER,
        method if method in KNOWN_METHODS else OTHER,
        str(status) if status in KNOWN_HTTP_STATUSES else OTHER,
    )


def render(extra: tuple = ()) -> tuple[bytes, str]:
    """The exposition text for every worker's metrics, then `extra` collectors' (read now)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        body = generate_latest(registry)
    else:
        body = generate_latest()
    if extra:
        registry = CollectorRegistry()
        for collector in extra:
            registry.register(collector)
        body += generate_latest(registry)
    return body, CONTENT_TYPE_LATEST
