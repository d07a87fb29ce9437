"""Validation of the subscription and event-feed input, into plain values or a 422."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.api import paging
from app.errors import validation_problem
from app.events.outbox import EVENT_TYPES
from app.events.ssrf import UnsafeDestination, check_subscription_url
from app.store import outbox as store

SUBSCRIPTION_FIELDS = frozenset({"url", "events", "scope"})
SCOPES = ("own", "all")
WILDCARD = "*"
EVENT_STATES = (*store.DELIVERY_STATES, store.NOT_PUSHED)
MAX_ID = 64


@dataclass(frozen=True)
class NewSubscription:
    url: str
    events: list[str]
    scope: str


def parse_subscription(
    body: dict[str, Any], *, https_only: bool, allow_private: bool
) -> NewSubscription:
    errors: list[dict[str, str]] = []
    for name in sorted(set(body) - SUBSCRIPTION_FIELDS):
        errors.append({"field": name, "message": "is not a known field"})

    url = body.get("url")
    if url is None:
        errors.append({"field": "url", "message": "is required"})
    else:
        try:
            check_subscription_url(url, https_only=https_only, allow_private=allow_private)
        except UnsafeDestination as error:
            errors.append({"field": "url", "message": str(error)})

    events = body.get("events")
    allowed = ", ".join(EVENT_TYPES)
    if events is None:
        errors.append({"field": "events", "message": "is required"})
    elif (
        not isinstance(events, list)
        or not events
        or not all(isinstance(name, str) for name in events)
    ):
        message = f'must be a non-empty list of: {allowed}, or ["*"]'
        errors.append({"field": "events", "message": message})
    elif WILDCARD in events and len(events) > 1:
        errors.append({"field": "events", "message": '"*" must be the only entry'})
    else:
        unknown = sorted({name for name in events if name not in EVENT_TYPES and name != WILDCARD})
        if unknown:
            errors.append(
                {"field": "events", "message": f"unknown event types {unknown}; known: {allowed}"}
            )

    scope = body.get("scope", "own")
    if scope not in SCOPES:
        errors.append({"field": "scope", "message": "must be own or all"})

    if errors:
        raise validation_problem(errors)
    return NewSubscription(url, list(dict.fromkeys(events)), scope)


def parse_event_query(args) -> tuple[store.EventFilter, int, Any]:
    errors: list[dict[str, str]] = []
    for name in sorted(set(args) - {"type", "status", "limit", "cursor"}):
        errors.append({"field": name, "message": "is not a known filter"})
    for name in sorted({"type", "status", "limit", "cursor"} & set(args)):
        if len(args.getlist(name)) > 1:
            errors.append({"field": name, "message": "must be given once"})
    event_type = args.get("type")
    if event_type is not None and event_type not in EVENT_TYPES:
        errors.append({"field": "type", "message": "must be one of " + ", ".join(EVENT_TYPES)})
    status = args.get("status")
    if status is not None and status not in EVENT_STATES:
        errors.append({"field": "status", "message": "must be pending, delivered or failed"})
    limit = paging.DEFAULT_LIMIT
    raw_limit = args.get("limit")
    if raw_limit is not None:
        if not (raw_limit.isascii() and raw_limit.isdigit()) or not (
            1 <= int(raw_limit) <= paging.MAX_LIMIT
        ):
            message = f"must be a whole number from 1 to {paging.MAX_LIMIT}"
            errors.append({"field": "limit", "message": message})
        else:
            limit = int(raw_limit)
    if errors:
        raise validation_problem(errors)
    cursor = args.get("cursor")
    after = paging.decode_cursor(cursor) if cursor else None
    return store.EventFilter(event_type, status), limit, after


def valid_id(identifier: str) -> bool:
    return 0 < len(identifier) <= MAX_ID and identifier.isascii() and identifier.isprintable()
