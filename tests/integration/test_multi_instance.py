"""Two app instances (two gunicorn processes) on one PostgreSQL and one Redis:
rate limits, the daily cap, idempotency and webhook dedupe hold across them.

Needs TEST_POSTGRES_URL and TEST_REDIS_URL (set by .ci/run); skipped otherwise.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
import requests

from tests.integration.conftest import fresh_postgres_database, running
from tests.support import (
    API_KEY,
    APPLICATION_ID,
    OTHER_API_KEY,
    SIGNATURE_SECRET,
    VONAGE_NUMBER,
    clean_env,
    free_port,
    inbound_payload,
    signed_headers,
)

pytestmark = pytest.mark.integration

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "")
RATE_LIMIT = 12
DAILY_LIMIT = 14


@pytest.fixture
def shared_database():
    if not (POSTGRES_URL and REDIS_URL):
        pytest.skip("needs TEST_POSTGRES_URL and TEST_REDIS_URL (see .ci/run)")
    redis.Redis.from_url(REDIS_URL).flushdb()
    with fresh_postgres_database(POSTGRES_URL, "sms_multi_instance") as url:
        yield url


@pytest.fixture
def two_instances(shared_database, tmp_path, key_file):
    sim_port, ports = free_port(), (free_port(), free_port())
    cert = tmp_path / "simulator" / "cert.pem"
    settings = dict(
        HOST="127.0.0.1",
        WEB_CONCURRENCY="2",
        DATABASE_URL=shared_database,
        RATELIMIT_STORAGE_URI=REDIS_URL,
        API_KEYS=f"{API_KEY},{OTHER_API_KEY}",
        SEND_SMS_RATE_LIMIT=f"{RATE_LIMIT}/minute",
        SEND_SMS_DAILY_LIMIT=str(DAILY_LIMIT),
        VONAGE_APPLICATION_ID=APPLICATION_ID,
        VONAGE_PRIVATE_KEY_PATH=str(key_file),
        VONAGE_NUMBER="+" + VONAGE_NUMBER,
        VONAGE_SIGNATURE_SECRET=SIGNATURE_SECRET,
        VONAGE_API_HOST=f"127.0.0.1:{sim_port}",
        REQUESTS_CA_BUNDLE=str(cert),
    )
    migrate = [sys.executable, "-m", "flask", "--app", "app", "migrate"]
    done = subprocess.run(
        migrate, env=clean_env(**settings), cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    sim = [
        sys.executable, "-m", "app.simulator", "--port", str(sim_port),
        "--webhook-base", f"http://127.0.0.1:{ports[0]}", "--cert-dir", str(cert.parent),
        "--delivery-delay", "0.05", "--webhook-backoff", "0.1",
    ]  # fmt: skip
    web = [sys.executable, "-m", "gunicorn", "-c", "python:app.gunicorn_conf", "app:create_app()"]

    def ready(port):
        return lambda: requests.get(f"http://127.0.0.1:{port}/health/ready", timeout=2).ok

    def sim_ready():
        url = f"https://127.0.0.1:{sim_port}/_sim/health"
        return cert.exists() and requests.get(url, verify=str(cert), timeout=2).ok

    sim_env = clean_env(**{k: v for k, v in settings.items() if k.startswith("VONAGE_")})
    with contextlib.ExitStack() as stack:
        stack.enter_context(running("sim", sim, env=sim_env, workdir=tmp_path, ready=sim_ready))
        for index, port in enumerate(ports):
            env = clean_env(**settings, PORT=str(port))
            stack.enter_context(
                running(f"app{index}", web, env=env, workdir=tmp_path, ready=ready(port))
            )
        yield [f"http://127.0.0.1:{port}" for port in ports], (sim_port, cert)


def post_send(base, key, payload, **headers):
    return requests.post(
        f"{base}/send-sms",
        json=payload,
        headers={"Authorization": f"Bearer {key}", **headers},
        timeout=30,
    )


def test_limits_idempotency_and_dedupe_hold_across_instances(two_instances):
    bases, (sim_port, cert) = two_instances
    sim = f"https://127.0.0.1:{sim_port}"

    # Idempotency: ten concurrent requests, one key, spread over both instances.
    payload = {"to": "+14155550100", "text": "one SMS only"}
    with ThreadPoolExecutor(10) as pool:
        answers = list(
            pool.map(
                lambda i: post_send(bases[i % 2], API_KEY, payload, **{"Idempotency-Key": "k-1"}),
                range(10),
            )
        )
    statuses = [answer.status_code for answer in answers]
    assert set(statuses) <= {202, 409} and 202 in statuses, statuses
    ids = {answer.json()["id"] for answer in answers if answer.status_code == 202}
    assert len(ids) == 1
    received = requests.get(f"{sim}/_sim/messages", verify=str(cert), timeout=10).json()
    assert [m["request"]["client_ref"] for m in received["messages"]] == [ids.pop()]

    # Webhook dedupe: one inbound message delivered ten times to both instances at once.
    body = json.dumps(inbound_payload("hello", sender="14155550123")).encode()

    def deliver(index):
        return requests.post(
            f"{bases[index % 2]}/webhooks/inbound",
            data=body,
            headers=signed_headers(body),
            timeout=10,
        ).status_code

    with ThreadPoolExecutor(10) as pool:
        assert list(pool.map(deliver, range(10))) == [200] * 10
    inbound = requests.get(
        f"{bases[1]}/messages",
        params={"direction": "inbound"},
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=10,
    ).json()["messages"]
    assert len(inbound) == 1

    # Rate limit per key, counted in Redis: RATE_LIMIT pass in all, not per instance.
    results = [
        post_send(bases[i % 2], OTHER_API_KEY, {"to": "+14155550100", "text": f"n{i}"}).status_code
        for i in range(RATE_LIMIT + 2)
    ]
    assert results.count(202) == RATE_LIMIT
    assert results[RATE_LIMIT:] == [429, 429]

    # Daily cap, counted in PostgreSQL: 1 + RATE_LIMIT sent so far, one more fits.
    first = post_send(bases[0], API_KEY, {"to": "+14155550100", "text": "last"})
    second = post_send(bases[1], API_KEY, {"to": "+14155550100", "text": "over"})
    assert first.status_code == 202
    assert second.status_code == 429
    assert second.json()["type"].endswith("daily-limit")
