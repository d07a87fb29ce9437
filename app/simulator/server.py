"""The simulator's Flask app: the Messages API send call and the `/_sim/` controls."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from app.channels import CHANNELS, MEDIA_TYPES, SMS
from app.simulator import vonage_api
from app.simulator.state import Faults, InvalidFaults, SimState
from app.simulator.webhooks import RetryPolicy, WebhookSender
from app.sms import segment
from app.webhooks.payloads import (
    INBOUND_PATH,
    STATUS_PATH,
    V1,
    WEBHOOK_VERSIONS,
    inbound_payload,
    status_payload,
)

PROBLEM_JSON = "application/problem+json"

# Test numbers: recipient -> the status events after the send is accepted.
REJECTED_NUMBER = "14155550110"
UNDELIVERABLE_NUMBER = "14155550111"
NO_RECEIPT_NUMBER = "14155550112"
OUTCOMES: dict[str, list[tuple[str, int | None, str | None]]] = {
    REJECTED_NUMBER: [("rejected", 1250, "Unroutable: the carrier refused the message")],
    UNDELIVERABLE_NUMBER: [("undeliverable", 1260, "Destination unreachable")],
    NO_RECEIPT_NUMBER: [("submitted", None, None)],
}
DEFAULT_OUTCOME = [("submitted", None, None), ("delivered", None, None)]


@dataclass(frozen=True)
class SimConfig:
    application_id: str
    public_key: bytes
    signature_secret: str
    webhook_base: str = "http://127.0.0.1:3000"
    number: str = ""
    delivery_delay: float = 0.5
    retry: RetryPolicy = RetryPolicy()
    api_key: str = "simulator"


def create_simulator(config: SimConfig, state: SimState | None = None) -> Flask:
    state = state or SimState()
    # Vonage signs `iat, jti, iss, payload_hash, api_key, application_id`.
    claims = {"api_key": config.api_key, "application_id": config.application_id}
    sender = WebhookSender(state, config.signature_secret, config.retry, claims=claims)
    app = Flask(__name__)
    app.extensions["sim_state"] = state
    app.extensions["sim_sender"] = sender
    _add_send_route(app, config, state, sender)
    _add_control_routes(app, state)
    _add_inbound_route(app, config, sender)
    app.register_error_handler(HTTPException, _http_error)
    return app


def _add_send_route(app: Flask, config: SimConfig, state: SimState, sender: WebhookSender) -> None:
    """`POST /v1/messages`: Vonage's send call, with the injected faults applied."""

    @app.post("/v1/messages")
    def send_message():
        faults = state.take_faults()
        body, is_json = _json_body()
        entry = {
            "received_at": datetime.now(UTC).isoformat(),
            "request": body if is_json else request.get_data(as_text=True),
            "response_status": None,
            "message_uuid": None,
        }
        if faults.latency_ms:
            time.sleep(faults.latency_ms / 1000)
        refusal = vonage_api.check_jwt(
            request.headers.get("Authorization"),
            public_key=config.public_key,
            application_id=config.application_id,
        )
        if refusal:
            return _answer(state, entry, 401, vonage_api.unauthorized(refusal))
        if not is_json:
            return _answer(state, entry, 400, vonage_api.invalid_json_problem())
        errors = vonage_api.invalid_parameters(body)
        if errors:
            return _answer(state, entry, 422, vonage_api.invalid_params_problem(errors))
        if faults.hang_seconds:
            state.hang(faults.hang_seconds)
        if faults.status:
            headers = {"Retry-After": str(faults.retry_after)} if faults.retry_after else None
            return _answer(
                state, entry, faults.status, vonage_api.fault_problem(faults.status), headers
            )

        message_uuid = str(uuid.uuid4())
        entry["message_uuid"] = message_uuid
        message = {**body, "message_uuid": message_uuid}
        url = body.get("webhook_url") or config.webhook_base.rstrip("/") + STATUS_PATH
        deliver = partial(
            _deliver_statuses, config, sender, message, url, faults.duplicate_webhooks
        )
        if faults.webhook_first:
            deliver()
        else:
            sender.in_background(deliver)
        return _answer(state, entry, 202, {"message_uuid": message_uuid})


def _json_body() -> tuple[Any, bool]:
    """The body's JSON value and whether it was JSON, whatever its Content-Type says."""
    try:
        return json.loads(request.get_data(cache=True)), True
    except ValueError:
        return None, False


def _answer(
    state: SimState, entry: dict[str, Any], status: int, body: dict, headers=None
) -> Response:
    """Record the send as answered with `status`, then answer it."""
    entry["response_status"] = status
    state.record_message(entry)
    response = jsonify(body)
    response.status_code = status
    if status >= 400:
        response.mimetype = PROBLEM_JSON
    response.headers.update(headers or {})
    return response


def _deliver_statuses(
    config: SimConfig,
    sender: WebhookSender,
    message: dict[str, Any],
    url: str,
    duplicate: bool,
) -> None:
    """The status webhooks of an accepted send, as its recipient's test outcome says."""
    events = OUTCOMES.get(message["to"], DEFAULT_OUTCOME)
    for index, (status, error_code, error_detail) in enumerate(events):
        if index:
            time.sleep(config.delivery_delay)
        payload = status_payload(
            message_uuid=message["message_uuid"],
            status=status,
            to=message["to"],
            sender=message["from"],
            client_ref=message.get("client_ref"),
            error_code=error_code,
            error_detail=error_detail,
            segments=segment(message["text"]).segments,
            webhook_version=message.get("webhook_version") or V1,
        )
        for _ in range(2 if duplicate else 1):
            sender.deliver(url, payload, kind="status")


def _add_control_routes(app: Flask, state: SimState) -> None:
    """`/_sim/`: health, the faults to inject, and what the simulator has seen."""

    @app.get("/_sim/health")
    def health():
        return jsonify(status="ok")

    @app.get("/_sim/faults")
    def get_faults():
        return jsonify(state.faults().to_dict())

    @app.post("/_sim/faults")
    def set_faults():
        try:
            faults = Faults.parse(request.get_json(silent=True))
        except InvalidFaults as error:
            return _problem(400, "Invalid faults", str(error))
        state.set_faults(faults)
        return jsonify(faults.to_dict())

    @app.delete("/_sim/faults")
    def reset_faults():
        state.set_faults(Faults())
        return jsonify(Faults().to_dict())

    @app.post("/_sim/release")
    def release():
        """Let every send held by `hang_seconds` go on now."""
        state.release_hung()
        return jsonify(status="released")

    @app.get("/_sim/messages")
    def list_messages():
        return jsonify(messages=state.snapshot()[0])

    @app.get("/_sim/webhooks")
    def list_webhooks():
        return jsonify(webhooks=state.snapshot()[1])


def _add_inbound_route(app: Flask, config: SimConfig, sender: WebhookSender) -> None:
    """`POST /_sim/inbound`: deliver an inbound message webhook, as a handset's reply would."""

    @app.post("/_sim/inbound")
    def inject_inbound():
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return _problem(400, "Bad Request", "send a JSON object with from and text")
        recipient = body.get("to") or config.number
        problems = _inbound_problems(body, recipient)
        if problems:
            return _problem(400, "Bad Request", "; ".join(problems))
        text = body.get("text")
        payload = inbound_payload(
            sender=body.get("from"),
            recipient=recipient,
            text=text if isinstance(text, str) else None,
            message_uuid=body.get("message_uuid"),
            channel=body.get("channel") or SMS,
            message_type=body.get("message_type") or "text",
            media_url=body.get("media_url") if isinstance(body.get("media_url"), str) else None,
            webhook_version=body.get("webhook_version") or V1,
        )
        url = config.webhook_base.rstrip("/") + INBOUND_PATH
        response_status = sender.deliver_now(url, payload, kind="inbound")
        return jsonify(
            message_uuid=payload["message_uuid"],
            url=url,
            response_status=response_status,
            payload=payload,
        )


def _inbound_problems(body: dict[str, Any], recipient: Any) -> list[str]:
    """What is wrong with a `/_sim/inbound` request; empty when it can be delivered."""
    channel = body.get("channel") or SMS
    message_type = body.get("message_type") or "text"
    version = body.get("webhook_version") or V1
    required = [("from", body.get("from")), ("to", recipient)]
    if message_type == "text":
        required.append(("text", body.get("text")))
    problems = [
        f"{name} is required" for name, value in required if not isinstance(value, str) or not value
    ]
    if channel not in CHANNELS:
        problems.append(f"channel must be one of {', '.join(CHANNELS)}")
    if message_type != "text" and message_type not in MEDIA_TYPES:
        problems.append(f"message_type must be text or one of {', '.join(MEDIA_TYPES)}")
    if version not in WEBHOOK_VERSIONS:
        problems.append("webhook_version must be v1 or v0.1")
    return problems


def _http_error(error: HTTPException):
    return _problem(error.code or 500, error.name, error.description or "")


def _problem(status: int, title: str, detail: str):
    response = jsonify(vonage_api.problem(f"#{status}", title, detail))
    response.status_code = status
    response.mimetype = PROBLEM_JSON
    return response
