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
UPDATE_FIELDS = SUBSCRIPTION_FIELDS | {"enabled"}
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
    errors = _unknown_fields(body, SUBSCRIPTION_FIELDS)
    url = body.get("url")
    if url is None:
        errors.append({"field": "url", "message": "is required"})
    else:
        errors += _url_errors(url, https_only=https_only, allow_private=allow_private)
    events = body.get("events")
    if events is None:
        errors.append({"field": "events", "message": "is required"})
    else:
        errors += _events_errors(events)
    scope = body.get("scope", "own")
    errors += _scope_errors(scope)
    if errors:
        raise validation_problem(errors)
    return NewSubscription(url, list(dict.fromkeys(events)), scope)


def parse_subscription_update(
    body: dict[str, Any], *, https_only: bool, allow_private: bool
) -> dict[str, Any]:
    """The columns a PATCH changes: any of `url`, `events`, `scope`, `enabled`.

    All or nothing: one invalid field and nothing changes (422).
    """
    errors = _unknown_fields(body, UPDATE_FIELDS)
    if not body:
        message = "give at least one of: " + ", ".join(sorted(UPDATE_FIELDS))
        errors.append({"field": "body", "message": message})
    changes: dict[str, Any] = {}
    if "url" in body:
        errors += _url_errors(body["url"], https_only=https_only, allow_private=allow_private)
        changes["url"] = body["url"]
    if "events" in body:
        events_errors = _events_errors(body["events"])
        errors += events_errors
        if not events_errors:
            changes["event_types"] = list(dict.fromkeys(body["events"]))
    if "scope" in body:
        errors += _scope_errors(body["scope"])
        changes["scope"] = body["scope"]
    if "enabled" in body:
        if not isinstance(body["enabled"], bool):
            errors.append({"field": "enabled", "message": "must be true or false"})
        changes["enabled"] = body["enabled"]
    if errors:
        raise validation_problem(errors)
    return changes


def _unknown_fields(body: dict[str, Any], known: frozenset[str]) -> list[dict[str, str]]:
    unknown = sorted(set(body) - known)
    return [{"field": name, "message": "is not a known field"} for name in unknown]


def _url_errors(url: object, *, https_only: bool, allow_private: bool) -> list[dict[str, str]]:
    try:
        check_subscription_url(url, https_only=https_only, allow_private=allow_private)
    except UnsafeDestination as error:
        return [{"field": "url", "message": str(error)}]
    return []


def _events_errors(events: object) -> list[dict[str, str]]:
    allowed = ", ".join(EVENT_TYPES)
    if (
        not isinstance(events, list)
        or not events
        or not all(isinstance(name, str) for name in events)
    ):
        return [{"field": "events", "message": f'must be a non-empty list of: {allowed}, or ["*"]'}]
    if WILDCARD in events and len(events) > 1:
        return [{"field": "events", "message": '"*" must be the only entry'}]
    unknown = sorted({name for name in events if name not in EVENT_TYPES and name != WILDCARD})
    if unknown:
        return [{"field": "events", "message": f"unknown event types {unknown}; known: {allowed}"}]
    return []


def _scope_errors(scope: object) -> list[dict[str, str]]:
    if scope not in SCOPES:
        return [{"field": "scope", "message": "must be own or all"}]
    return []


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
        errors.append({"field": "status", "message": "must be one of " + ", ".join(EVENT_STATES)})
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
