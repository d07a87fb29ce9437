"""A Python client generated from the served /openapi.json, used as a team would use it.

openapi-python-client must generate it without a single warning (each warning is
a response or model the client silently drops), and the generated code must
parse the app's real answers, errors included, into its typed models.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from werkzeug.serving import make_server

from app import create_app
from app.config import load_settings
from tests.support import API_KEY, accepted, count_rows, inbound_payload

pytestmark = pytest.mark.integration

PACKAGE = "sms_client"
GENERATOR_CONFIG = "post_hooks: []\n"


@pytest.fixture
def base_url(app, vonage_api) -> Iterator[str]:
    """The app served over real HTTP on 127.0.0.1 (Vonage answered by `responses`)."""
    accepted(vonage_api)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


@pytest.fixture(scope="module")
def generated_package(tmp_path_factory) -> Path:
    """Generated once per module from the document an app serves; the directory holding it."""
    directory = tmp_path_factory.mktemp("generated")
    app = create_app(load_settings({"DATABASE_URL": f"sqlite:///{directory}/x.db"}, environ={}))
    spec_path = directory / "openapi.json"
    spec_path.write_bytes(app.test_client().get("/openapi.json").data)
    app.extensions["db"].dispose()
    config_path = directory / "generator.yaml"
    config_path.write_text(GENERATOR_CONFIG)
    generated = subprocess.run(
        [
            sys.executable,
            "-m",
            "openapi_python_client",
            "generate",
            f"--path={spec_path}",
            f"--config={config_path}",
            f"--output-path={directory / PACKAGE}",
            "--meta=none",
            "--fail-on-warning",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = generated.stdout + generated.stderr
    assert generated.returncode == 0, output
    assert "warning" not in output.lower(), output
    return directory


@pytest.fixture
def sms_client(generated_package, base_url) -> Iterator[SimpleNamespace]:
    """The generated package, imported, and its modules by short name."""
    sys.path.insert(0, str(generated_package))
    try:
        yield SimpleNamespace(
            client=importlib.import_module(PACKAGE),
            models=importlib.import_module(f"{PACKAGE}.models"),
            send_sms=importlib.import_module(f"{PACKAGE}.api.messages.send_sms"),
            list_messages=importlib.import_module(f"{PACKAGE}.api.messages.list_messages"),
            get_message=importlib.import_module(f"{PACKAGE}.api.messages.get_message"),
        )
    finally:
        sys.path.remove(str(generated_package))
        for name in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
            del sys.modules[name]


def test_generated_client_sends_lists_and_reads_messages(sms_client, base_url, app, vonage_api):
    generated, models = sms_client, sms_client.models
    client = generated.client.AuthenticatedClient(
        base_url=base_url, token=API_KEY, raise_on_unexpected_status=True
    )

    with client as http:
        first = generated.send_sms.sync_detailed(
            client=http, body=models.SendRequest(to="+14155550100", text="Hi", client_ref="o-1")
        )
        second = generated.send_sms.sync_detailed(
            client=http, body=models.SendRequest(to="14155550101", text="Привет")
        )
        page = generated.list_messages.sync(client=http, limit=1)
        rest = generated.list_messages.sync(client=http, limit=1, cursor=page.next_cursor)
        filtered = generated.list_messages.sync(client=http, status=models.MessageStatus.SUBMITTED)
        one = generated.get_message.sync(client=http, identifier=first.parsed.id)

    assert first.status_code == 202
    assert isinstance(first.parsed, models.SendAccepted)
    assert first.parsed.client_ref == "o-1"
    assert second.parsed.client_ref is None
    assert second.parsed.encoding == models.Encoding.UCS_2
    assert len(vonage_api.calls) == 2
    assert isinstance(page, models.MessagePage)
    assert [m.id for m in page.messages + rest.messages] == [second.parsed.id, first.parsed.id]
    assert isinstance(page.next_cursor, str) and rest.next_cursor is None
    assert {m.status for m in filtered.messages} == {models.MessageStatus.SUBMITTED}
    assert isinstance(one, models.MessageWithEvents)
    assert one.status == models.MessageStatus.SUBMITTED and one.error is None
    assert one.direction == models.Direction.OUTBOUND and one.events == []
    assert count_rows(app, "messages") == 2


def test_generated_client_parses_problems_as_typed_models(sms_client, base_url, app, vonage_api):
    generated, models = sms_client, sms_client.models
    client = generated.client.AuthenticatedClient(
        base_url=base_url, token=API_KEY, raise_on_unexpected_status=True
    )
    anonymous = generated.client.Client(base_url=base_url, raise_on_unexpected_status=True)

    with client as http, anonymous as no_key:
        invalid = generated.send_sms.sync_detailed(
            client=http, body=models.SendRequest(to="not-a-number", text="Hi")
        )
        bad_filter = generated.list_messages.sync_detailed(client=http, limit=0)
        unauthorized = generated.list_messages.sync_detailed(client=no_key)
        missing = generated.get_message.sync_detailed(client=http, identifier="never-seen")

    assert invalid.status_code == 422
    assert isinstance(invalid.parsed, models.Problem)
    assert invalid.parsed.status == 422
    assert invalid.parsed.type_ == "urn:sms-service:problem:validation"
    assert [error.field for error in invalid.parsed.errors] == ["to"]
    assert isinstance(bad_filter.parsed, models.ValidationProblem)
    assert [error.field for error in bad_filter.parsed.errors] == ["limit"]
    assert isinstance(unauthorized.parsed, models.Problem)
    assert unauthorized.parsed.status == 401
    assert isinstance(missing.parsed, models.Problem) and missing.parsed.status == 404
    assert len(vonage_api.calls) == 0
    assert count_rows(app, "messages") == 0


def test_generated_client_reads_a_message_known_only_by_an_undocumented_status(
    sms_client, base_url, signed_webhook
):
    generated, models = sms_client, sms_client.models
    signed_webhook(
        "/webhooks/status",
        {"message_uuid": "seen-only-here", "status": "accepted", "timestamp": "2025-01-01"},
    )
    client = generated.client.AuthenticatedClient(
        base_url=base_url, token=API_KEY, raise_on_unexpected_status=True
    )

    with client as http:
        message = generated.get_message.sync(client=http, identifier="seen-only-here")

    assert message.status == models.MessageStatus.UNKNOWN
    assert [event.status for event in message.events] == ["accepted"]


def test_generated_client_reads_the_event_feed_with_typed_data(
    sms_client, base_url, signed_webhook
):
    """A subscription, then a reply and a STOP: the feed's `data` is a message or a change."""
    generated, models = sms_client, sms_client.models
    list_events = importlib.import_module(f"{PACKAGE}.api.events.list_events")
    create_subscription = importlib.import_module(f"{PACKAGE}.api.events.create_subscription")
    client = generated.client.AuthenticatedClient(
        base_url=base_url, token=API_KEY, raise_on_unexpected_status=True
    )

    with client as http:
        created = create_subscription.sync_detailed(
            client=http,
            body=models.SubscriptionRequest(
                url="https://example.com/sms-events",
                events=[models.SubscriptionRequestEventsItem("*")],
                scope=models.SubscriptionRequestScope.ALL,
            ),
        )
        signed_webhook("/webhooks/inbound", inbound_payload("STOP"))
        feed = list_events.sync(client=http)

    assert created.status_code == 201 and created.parsed.secret.startswith("whsec_")
    assert [str(item) for item in created.parsed.events] == ["*"]
    by_type = {str(event.type_): event.data for event in feed.events}
    assert set(by_type) == {"message.received", "contact.opted_out"}
    assert isinstance(by_type["message.received"], models.MessageWithEvents)
    assert by_type["message.received"].text == "STOP"
    assert isinstance(by_type["contact.opted_out"], models.ContactChange)
    assert by_type["contact.opted_out"].opted_out is True
