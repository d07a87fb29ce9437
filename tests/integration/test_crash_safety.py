"""A send killed, starved of storage or of Redis, under gunicorn as the Procfile runs it.

The promises under test (README, "What a send survives"): a key whose request
died stops being in flight once that request can no longer be alive, and a
retry then answers from the message's state without sending; after Vonage
accepted, a storage failure is never a retry-later answer; a Redis that stops
answering fails sends closed within their budget and starves nothing; a slow
Vonage never takes the threads webhooks and health need.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from app.config import load_settings
from app.sending import hold_seconds
from app.webhooks.payloads import status_payload
from tests.integration.conftest import Stack, running, wait_until
from tests.integration.test_faults import (
    app_env,
    assert_problem,
    delivered,
    gunicorn,
    inbound,
    kill_group,
    migrate,
    post_signed,
    query,
)
from tests.support import (
    API_KEY,
    APPLICATION_ID,
    SIGNATURE_SECRET,
    TO,
    VONAGE_NUMBER,
    clean_env,
    free_port,
)

pytestmark = pytest.mark.integration

TIMEOUT = "2"
HOLD = hold_seconds(load_settings({"VONAGE_TIMEOUT_SECONDS": TIMEOUT}, environ={}))
# Sends queued behind a 1/s throttle: long enough that most still wait for a slot
# when the app is killed, short enough that their hold (waited out) stays ~17 s.
QUEUED_TIMEOUT = "4"


@contextlib.contextmanager
def simulator(workdir: Path, key_file: Path, app_port: int) -> Iterator[Stack]:
    cert_dir = workdir / "simulator"
    sim_port = free_port()
    env = clean_env(
        VONAGE_APPLICATION_ID=APPLICATION_ID,
        VONAGE_PRIVATE_KEY_PATH=str(key_file),
        VONAGE_SIGNATURE_SECRET=SIGNATURE_SECRET,
        VONAGE_NUMBER=VONAGE_NUMBER,
    )
    args = [
        sys.executable, "-m", "app.simulator",
        "--port", str(sim_port),
        "--webhook-base", f"http://127.0.0.1:{app_port}",
        "--cert-dir", str(cert_dir),
        "--delivery-delay", "0.05",
        "--webhook-attempts", "20",
        "--webhook-backoff", "0.5",
    ]  # fmt: skip
    sim_url = f"https://127.0.0.1:{sim_port}"
    cert_path = cert_dir / "cert.pem"

    def ready():
        return (
            cert_path.exists()
            and requests.get(f"{sim_url}/_sim/health", verify=str(cert_path), timeout=2).ok
        )

    with running("simulator", args, env=env, workdir=workdir, ready=ready):
        yield Stack(
            app_url=f"http://127.0.0.1:{app_port}",
            sim_url=sim_url,
            cert_path=cert_path,
            sim_port=sim_port,
            cert_dir=cert_dir,
            workdir=workdir,
        )


def stack_env(tmp_path: Path, key_file: Path, **overrides: str) -> dict[str, str]:
    settings = {
        "PORT": str(free_port()),
        "WEB_CONCURRENCY": "1",
        "VONAGE_TIMEOUT_SECONDS": TIMEOUT,
        **overrides,
    }
    return app_env(tmp_path, f"sqlite:///{tmp_path / 'sms.db'}", key_file, **settings)


def with_sim(env: dict[str, str], sim: Stack) -> dict[str, str]:
    return {
        **env,
        "VONAGE_API_HOST": f"127.0.0.1:{sim.sim_port}",
        "REQUESTS_CA_BUNDLE": str(sim.cert_path),
    }


def send(url: str, payload: dict, key: str | None = None, timeout: float = 30):
    headers = {"Authorization": f"Bearer {API_KEY}"}
    if key:
        headers["Idempotency-Key"] = key
    return requests.post(f"{url}/send-sms", json=payload, headers=headers, timeout=timeout)


def answer_or_error(call, *args, **kwargs):
    try:
        return call(*args, **kwargs)
    except requests.RequestException as error:
        return error


def called_rows(database_url: str) -> list[tuple]:
    return query(
        database_url,
        "SELECT id, status FROM messages WHERE vonage_called_at IS NOT NULL",
    )


def test_kill_9_while_vonage_is_called_frees_the_key_and_never_resends(tmp_path, key_file):
    """kill -9 while a keyed send waits on Vonage: the retry is 409 while the dead
    request could still be alive, then answers from the message's state (settled by
    its status webhook) with the same id; Vonage received the message once."""
    port = str(free_port())
    with simulator(tmp_path, key_file, int(port)) as sim:
        env = with_sim(stack_env(tmp_path, key_file, PORT=port), sim)
        database_url = env["DATABASE_URL"]
        migrate(env, tmp_path)
        payload = {"to": TO, "text": f"killed {uuid.uuid4()}"}
        sim.faults(hang_seconds=60, times=1)
        with gunicorn(env, tmp_path) as app, ThreadPoolExecutor(1) as pool:
            first = pool.submit(answer_or_error, send, app.url, payload, "kill-me")
            [(message_id, status)] = wait_until(
                lambda: called_rows(database_url), what="the send to reach Vonage"
            )
            killed_at = time.monotonic()
            kill_group(app.process)
            assert isinstance(first.result(timeout=30), requests.RequestException)
        assert status == "pending"

        with gunicorn(env, tmp_path, name="app-restarted") as app:
            early = send(app.url, payload, "kill-me")
            settled = post_signed(
                app.url,
                "status",
                status_payload(
                    message_uuid=str(uuid.uuid4()),
                    status="delivered",
                    to=TO,
                    sender=VONAGE_NUMBER,
                    client_ref=message_id,
                ),
            )
            retry = wait_until(
                lambda: (answer := send(app.url, payload, "kill-me")).status_code != 409 and answer,
                what="the key to stop being in flight",
                timeout=HOLD + 20,
            )
            freed_after = time.monotonic() - killed_at
        sim.sim("POST", "/_sim/release")
        sent = sim.sim_requests_for(message_id)

    assert_problem(early, 409, "idempotency-key-in-flight")
    assert retry.status_code == 202, retry.text
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json()["id"] == message_id
    assert retry.json()["status"] == "submitted"  # the contract's 202; the row says delivered
    assert settled.status_code == 200
    assert freed_after < HOLD + 10
    assert query(database_url, "SELECT id, status FROM messages") == [(message_id, "delivered")]
    assert len(sent) <= 1


def test_kill_9_then_no_status_webhook_settles_unknown_and_retry_is_504(tmp_path, key_file):
    """No webhook ever comes: past the hold the row is `unknown` and the retry is the
    maybe-sent 504 with the same id, not a new send."""
    port = str(free_port())
    with simulator(tmp_path, key_file, int(port)) as sim:
        env = with_sim(stack_env(tmp_path, key_file, PORT=port), sim)
        database_url = env["DATABASE_URL"]
        migrate(env, tmp_path)
        payload = {"to": TO, "text": "killed, never settled"}
        sim.faults(hang_seconds=60, times=1, status=500)
        with gunicorn(env, tmp_path) as app, ThreadPoolExecutor(1) as pool:
            pool.submit(answer_or_error, send, app.url, payload, "no-webhook")
            [(message_id, _)] = wait_until(
                lambda: called_rows(database_url), what="the send to reach Vonage"
            )
            kill_group(app.process)
        with gunicorn(env, tmp_path, name="app-restarted") as app:
            time.sleep(HOLD)
            retry = send(app.url, payload, "no-webhook")
            again = send(app.url, payload, "no-webhook")
        sim.sim("POST", "/_sim/release")

    body = assert_problem(retry, 504, "vonage-outcome-unknown")
    assert body["id"] == message_id
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert assert_problem(again, 504)["id"] == message_id
    assert query(database_url, "SELECT status FROM messages") == [("unknown",)]


def test_storage_locked_after_vonage_accepted_is_202_and_the_retry_sends_nothing(
    tmp_path, key_file
):
    """Another process holds SQLite's write lock when Vonage accepts: the caller gets
    202 with the id within the budget (not 503), the outcome is written once the lock
    is gone, and a retry with the key replays it without a second send."""
    port = str(free_port())
    with simulator(tmp_path, key_file, int(port)) as sim:
        env = with_sim(stack_env(tmp_path, key_file, PORT=port), sim)
        database_url = env["DATABASE_URL"]
        migrate(env, tmp_path)
        payload = {"to": TO, "text": "locked after accept"}
        sim.faults(hang_seconds=60, times=1)
        with gunicorn(env, tmp_path) as app, ThreadPoolExecutor(1) as pool:
            first = pool.submit(send, app.url, payload, "locked")
            wait_until(lambda: called_rows(database_url), what="the send to reach Vonage")
            time.sleep(0.5)  # the row is marked just before the call: let it reach the hang
            holder = sqlite3.connect(tmp_path / "sms.db", isolation_level=None, timeout=10)
            try:
                holder.execute("BEGIN IMMEDIATE")
                released_at = time.monotonic()
                sim.sim("POST", "/_sim/release")
                answer = first.result(timeout=30)
                answered_in = time.monotonic() - released_at
                during_lock = send(app.url, payload, "locked")
                time.sleep(3)
            finally:
                holder.execute("ROLLBACK")
                holder.close()
            wait_until(
                lambda: (
                    query(database_url, "SELECT response_status FROM idempotency_keys") == [(202,)]
                ),
                what="the deferred outcome to be written",
            )
            retry = send(app.url, payload, "locked")
        sent = sim.sim_requests_for(answer.json()["id"])

    assert answer.status_code == 202, answer.text
    assert answered_in < 2 * float(TIMEOUT) + 2
    assert during_lock.status_code in (409, 503)
    assert retry.status_code == 202
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json() == answer.json()
    assert len(sent) == 1
    [(status,)] = query(database_url, "SELECT status FROM messages")
    assert status in ("submitted", "delivered")


def test_ready_is_503_while_writes_are_blocked(tmp_path, key_file):
    env = stack_env(tmp_path, key_file)
    migrate(env, tmp_path)
    with gunicorn(env, tmp_path) as app:
        holder = sqlite3.connect(tmp_path / "sms.db", isolation_level=None, timeout=10)
        try:
            holder.execute("BEGIN IMMEDIATE")
            time.sleep(5.5)  # past the cached probe's interval
            locked = requests.get(f"{app.url}/health/ready", timeout=10)
            health = requests.get(f"{app.url}/health", timeout=10)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        time.sleep(5.5)
        unlocked = requests.get(f"{app.url}/health/ready", timeout=10)

    assert_problem(locked, 503)
    assert health.status_code == 200
    assert unlocked.status_code == 200


# -- Redis -----------------------------------------------------------------------------


@contextlib.contextmanager
def redis_server(workdir: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("needs redis-server")
    port = free_port()
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    process = subprocess.Popen(
        args, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        import redis

        def answers() -> bool:
            try:
                return redis.Redis.from_url(url).ping()
            except redis.RedisError:
                return False

        wait_until(answers, what="redis to start")
        yield url, process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGCONT)
            process.kill()
        process.wait(timeout=10)


def test_redis_that_stops_answering_fails_sends_closed_and_starves_nothing(tmp_path, key_file):
    """A lost Redis host (SIGSTOP: connections open, no answers): every send is 503
    within its budget and never sent later; webhooks and /health still answer."""
    port = str(free_port())
    with (
        redis_server(tmp_path) as (redis_url, redis_process),
        simulator(tmp_path, key_file, int(port)) as sim,
    ):
        env = with_sim(
            stack_env(
                tmp_path, key_file, PORT=port, RATELIMIT_STORAGE_URI=redis_url, GUNICORN_THREADS="8"
            ),
            sim,
        )
        migrate(env, tmp_path)
        with gunicorn(env, tmp_path) as app:
            assert send(app.url, {"to": TO, "text": "redis fine"}).status_code == 202
            os.kill(redis_process.pid, signal.SIGSTOP)
            started = time.monotonic()
            with ThreadPoolExecutor(30) as pool:
                sends = [
                    pool.submit(answer_or_error, send, app.url, {"to": TO, "text": f"stopped {n}"})
                    for n in range(30)
                ]
                time.sleep(0.5)
                health = requests.get(f"{app.url}/health", timeout=5)
                webhook = post_signed(app.url, "inbound", inbound("while redis is lost"))
                answers = [future.result() for future in sends]
            took = time.monotonic() - started
            os.kill(redis_process.pid, signal.SIGCONT)
            time.sleep(2)
        sent = sim.sim("GET", "/_sim/messages").json()["messages"]

    assert health.status_code == 200
    assert webhook.status_code == 200
    assert all(isinstance(answer, requests.Response) for answer in answers), answers
    assert {answer.status_code for answer in answers} == {503}
    assert took < 20
    assert [entry["request"]["text"] for entry in sent] == ["redis fine"]


def test_redis_dying_after_the_send_keeps_the_202(tmp_path, key_file):
    """Redis dies while Vonage is being called: flask-limiter's headers after the view
    fail, and the caller still gets the 202 with its id (not a 500)."""
    port = str(free_port())
    with (
        redis_server(tmp_path) as (redis_url, redis_process),
        simulator(tmp_path, key_file, int(port)) as sim,
    ):
        env = with_sim(
            stack_env(
                tmp_path,
                key_file,
                PORT=port,
                RATELIMIT_STORAGE_URI=redis_url,
                VONAGE_TIMEOUT_SECONDS="10",
            ),
            sim,
        )
        database_url = env["DATABASE_URL"]
        migrate(env, tmp_path)
        sim.faults(hang_seconds=60, times=1)
        with gunicorn(env, tmp_path) as app, ThreadPoolExecutor(1) as pool:
            first = pool.submit(send, app.url, {"to": TO, "text": "redis dies"})
            wait_until(lambda: called_rows(database_url), what="the send to reach Vonage")
            time.sleep(1)  # the row is marked just before the call: let it reach the hang
            redis_process.kill()
            redis_process.wait(timeout=10)
            sim.sim("POST", "/_sim/release")
            answer = first.result(timeout=30)
        sent = sim.sim_requests_for(answer.json()["id"]) if answer.ok else []

    assert answer.status_code == 202, answer.text
    assert len(sent) == 1


# -- a slow Vonage ---------------------------------------------------------------------


def test_slow_vonage_never_takes_the_threads_webhooks_and_health_need(tmp_path, key_file):
    """Vonage answers in 1.5 s and 24 sends arrive at once on a worker of 8 threads:
    sends beyond the cap (6) are 503 with Retry-After at once, and webhooks and
    /health answer quickly throughout."""
    port = str(free_port())
    with simulator(tmp_path, key_file, int(port)) as sim:
        env = with_sim(stack_env(tmp_path, key_file, PORT=port, GUNICORN_THREADS="8"), sim)
        migrate(env, tmp_path)
        sim.faults(latency_ms=1500)
        with gunicorn(env, tmp_path) as app:
            probes: list[float] = []
            stop = threading.Event()

            def probe():
                while not stop.is_set():
                    started = time.monotonic()
                    health = requests.get(f"{app.url}/health", timeout=10)
                    webhook = post_signed(app.url, "status", delivered(str(uuid.uuid4())))
                    assert (health.status_code, webhook.status_code) == (200, 200)
                    probes.append(time.monotonic() - started)
                    time.sleep(0.1)

            with ThreadPoolExecutor(25) as pool:
                prober = pool.submit(probe)
                sends = [
                    pool.submit(send, app.url, {"to": TO, "text": f"slow {n}"}) for n in range(24)
                ]
                answers = [future.result() for future in sends]
                stop.set()
                prober.result()

    statuses = sorted(answer.status_code for answer in answers)
    assert 202 in statuses and 503 in statuses
    assert set(statuses) == {202, 503}
    for answer in answers:
        if answer.status_code == 503:
            assert_problem(answer, 503, "sends-in-flight")
            assert answer.headers["Retry-After"] == "1"
    assert probes and max(probes) < 1.5


def test_kill_9_while_sends_wait_for_a_throttle_slot_fails_them_and_gives_slots_back(
    tmp_path, key_file
):
    """Ten sends at once through a 1/s throttle, kill -9 while most wait for a slot:
    past their hold, those rows are `failed` (Vonage never called) with their daily
    slots given back; the ones that reached Vonage are not `pending` either."""
    port = str(free_port())
    with simulator(tmp_path, key_file, int(port)) as sim:
        env = with_sim(
            stack_env(
                tmp_path,
                key_file,
                PORT=port,
                VONAGE_MAX_SENDS_PER_SECOND="1",
                VONAGE_TIMEOUT_SECONDS=QUEUED_TIMEOUT,
            ),
            sim,
        )
        database_url = env["DATABASE_URL"]
        migrate(env, tmp_path)
        sim.faults(hang_seconds=60)
        with gunicorn(env, tmp_path) as app, ThreadPoolExecutor(10) as pool:
            for n in range(10):
                pool.submit(answer_or_error, send, app.url, {"to": TO, "text": f"queued {n}"})
            wait_until(
                lambda: query(database_url, "SELECT COUNT(*) FROM messages") == [(10,)],
                what="every send to wait for its slot",
            )
            kill_group(app.process)
        sim.sim("POST", "/_sim/release")
        hold = hold_seconds(load_settings({"VONAGE_TIMEOUT_SECONDS": QUEUED_TIMEOUT}, environ={}))
        with gunicorn(env, tmp_path, name="app-restarted") as app:
            time.sleep(hold)
            wait_until(
                lambda: (
                    requests.get(f"{app.url}/health/ready", timeout=5).ok
                    and query(
                        database_url, "SELECT COUNT(*) FROM messages WHERE status = 'pending'"
                    )
                    == [(0,)]
                ),
                what="the abandoned rows to settle",
            )
        rows = query(database_url, "SELECT status, vonage_called_at IS NOT NULL FROM messages")
        [(counted,)] = query(database_url, "SELECT SUM(count) FROM daily_send_counts")

    called = [status for status, was_called in rows if was_called]
    never_called = [status for status, was_called in rows if not was_called]
    assert never_called and set(never_called) == {"failed"}
    assert called and set(called) <= {"unknown", "submitted", "delivered"}
    assert counted == len(called)


def test_throttle_storage_lost_while_a_send_waits_is_503_failed_and_slot_back(tmp_path, key_file):
    """Redis stops answering while a send waits for its throttle slot: 503, the row
    `failed`, its daily slot given back, nothing sent."""
    port = str(free_port())
    with (
        redis_server(tmp_path) as (redis_url, redis_process),
        simulator(tmp_path, key_file, int(port)) as sim,
    ):
        env = with_sim(
            stack_env(
                tmp_path,
                key_file,
                PORT=port,
                RATELIMIT_STORAGE_URI=redis_url,
                VONAGE_MAX_SENDS_PER_SECOND="1",
                VONAGE_TIMEOUT_SECONDS="8",
            ),
            sim,
        )
        database_url = env["DATABASE_URL"]
        migrate(env, tmp_path)
        sim.faults(hang_seconds=60, times=1)
        with gunicorn(env, tmp_path) as app, ThreadPoolExecutor(2) as pool:
            first = pool.submit(answer_or_error, send, app.url, {"to": TO, "text": "first"})
            wait_until(lambda: called_rows(database_url), what="the first send to take the slot")
            second = pool.submit(send, app.url, {"to": TO, "text": "waits"})
            wait_until(
                lambda: query(database_url, "SELECT COUNT(*) FROM messages") == [(2,)],
                what="the second send to wait for a slot",
            )
            os.kill(redis_process.pid, signal.SIGSTOP)
            answer = second.result(timeout=30)
            os.kill(redis_process.pid, signal.SIGCONT)
            sim.sim("POST", "/_sim/release")
            first.result(timeout=30)
        [(status, was_called)] = query(
            database_url,
            "SELECT status, vonage_called_at IS NOT NULL FROM messages WHERE text = 'waits'",
        )
        [(counted,)] = query(database_url, "SELECT SUM(count) FROM daily_send_counts")
        texts = [
            entry["request"]["text"]
            for entry in sim.sim("GET", "/_sim/messages").json()["messages"]
        ]

    assert_problem(answer, 503, "dependency-unavailable")
    assert (status, was_called) == ("failed", False)
    assert counted == 1
    assert "waits" not in texts
