"""/metrics under gunicorn with two workers: every worker's counts are added up."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.support import inbound_payload, signed_headers

pytestmark = pytest.mark.integration

DELIVERIES = 40


def counter(text: str, name: str, **labels) -> float:
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    match = re.search(rf"^{name}{{{re.escape(wanted)}}} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_counts_from_every_worker_are_summed(stack):
    """40 deliveries over 8 connections reach both workers; /metrics, answered by
    either one, must count all 40 (a per-process registry would count only its own)."""
    before = stack.app_get("/metrics").text

    def deliver(_):
        body = json.dumps(inbound_payload("count me", sender="14155550123")).encode()
        answer = requests.post(
            f"{stack.app_url}/webhooks/inbound", data=body, headers=signed_headers(body), timeout=30
        )
        return answer.status_code

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(deliver, range(DELIVERIES))) == [200] * DELIVERIES

    after = stack.app_get("/metrics").text
    labels = {"kind": "inbound", "outcome": "stored"}
    assert (
        counter(after, "sms_webhooks_total", **labels)
        - counter(before, "sms_webhooks_total", **labels)
        == DELIVERIES
    )
