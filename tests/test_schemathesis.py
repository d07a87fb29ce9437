"""Schemathesis against the WSGI app, driven by the app's own /openapi.json.

Every operation gets generated valid and invalid requests (API key supplied for
the API routes; Vonage answered by `responses`); no answer may be a server
error, and every answer must be one the document describes: status code,
content type, headers and body schema. Bounded and derandomized so CI runs the
same examples every time.

The schema is loaded from `build_spec()` (what `/openapi.json` serves, see
tests/test_openapi.py) and each case is sent to a fresh app through
`call_and_validate(app=...)`. Not `schemathesis.pytest.from_fixture`: its lazy
loader writes pytest's private `Function._nodeid`, which pytest 9.2 removed.
"""

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.openapi import build_spec
from tests.support import accepted, auth_headers

WEBHOOK_PATHS = {"/webhooks/inbound", "/webhooks/status"}
PUBLIC_PATHS = {"/", "/docs", "/health", "/health/ready", "/openapi.json"}


@pytest.fixture
def api_app(make_app, vonage_api):
    accepted(vonage_api)
    app = make_app()
    # A crash must reach the checks as the 500 a client would get, not as an exception.
    app.testing = False
    return app


def not_a_server_error_but_an_unsigned_webhook(ctx, response, case):
    """5xx is a failure, except the 503 that tells Vonage to retry an unsigned webhook.

    Vonage is mocked and the database is up, so no other 5xx is expected here,
    even where the document lists one (502/503/504 on a send).
    """
    if case.operation.path in WEBHOOK_PATHS and response.status_code == 503:
        assert "Authorization" not in (case.headers or {}), "a 503 for a webhook that was signed"
        assert response.json()["type"].endswith(":unsigned-webhook")
        return None
    return not_a_server_error(ctx, response, case)


CHECKS = [
    not_a_server_error_but_an_unsigned_webhook,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]

schema = schemathesis.openapi.from_dict(build_spec())


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        # One app per operation is the point: its examples share it, as a server's calls would.
        HealthCheck.function_scoped_fixture,
    ],
)
def test_every_answer_is_documented_and_none_is_a_server_error(case, api_app):
    secured = case.operation.path not in WEBHOOK_PATHS | PUBLIC_PATHS
    case.call_and_validate(app=api_app, headers=auth_headers() if secured else None, checks=CHECKS)
