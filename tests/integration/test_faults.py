"""Faults, against the real app under gunicorn as the Procfile starts it.

The database unreachable or locked, Vonage down, overloaded, slow or answering
garbage, kill -9 in the middle of webhook load, and a storm of duplicate
deliveries. The promises under test: a webhook is answered 200 only once its
event is stored (else 5xx, so Vonage retries); a send that may have reached
Vonage keeps its row as `unknown` and is answered with its `id`; nothing hangs.

Each app runs in a process group of its own (`start_new_session`), so a test
can SIGKILL the master and its workers together, and the group is killed in a
`finally` whatever happened. PostgreSQL cases need TEST_POSTGRES_URL and use a
database of their own on that server; without it they are skipped.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, text

from app.simulator.tls import ensure_certificate
from app.vonage_client import MAX_ATTEMPTS
from app.webhooks.payloads import inbound_payload, status_payload
from tests.integration.conftest import (
    START_TIMEOUT_SECONDS,
    Stack,
    fresh_postgres_database,
    wait_until,
)
from tests.support import (
    API_KEY,
    APPLICATION_ID,
    SIGNATURE_SECRET,
    TO,
    VONAGE_NUMBER,
    clean_env,
    free_port,
    signed_headers,
)

pytestmark = pytest.mark.integration

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "")
FAULTS_DATABASE = "sms_faults"
REQUEST_TIMEOUT = 30
CUSTOMER = "14155550123"
WEB = [sys.executable, "-m", "gunicorn", "-c", "python:app.gunicorn_conf", "app:create_app()"]
MIGRATE = [sys.executable, "-m", "flask", "--app", "app", "migrate"]

LOAD_THREADS = 8
LOAD_REQUESTS_PER_THREAD = 300
LOAD_SECONDS = 10
KILL_AFTER_ACKS = 300
DUPLICATES = 24


# -- running the app -------------------------------------------------------------------


@dataclass
class App:
    url: str
    process: subprocess.Popen

    def get(self, path: str, **params) -> requests.Response:
        return requests.get(
            f"{self.url}{path}",
            params=params,
            headers={"Authorization": f"Bearer {API_KEY}"},
            timeout=REQUEST_TIMEOUT,
        )

    def send(self, payload: dict) -> requests.Response:
        return requests.post(
            f"{self.url}/send-sms",
            json=payload,
            headers={"Authorization": f"Bearer {API_KEY}"},
            timeout=REQUEST_TIMEOUT,
        )

    def webhook(self, kind: str, payload: dict, session=requests) -> requests.Response:
        return post_signed(self.url, kind, payload, session)


def post_signed(base_url: str, kind: str, payload: dict, session=requests) -> requests.Response:
    """POST `payload` to /webhooks/<kind>, freshly signed as Vonage signs each attempt."""
    body = json.dumps(payload).encode()
    return session.post(
        f"{base_url}/webhooks/{kind}",
        data=body,
        headers=signed_headers(body),
        timeout=REQUEST_TIMEOUT,
    )


def app_env(workdir: Path, database_url: str, key_file: Path, **overrides: str) -> dict[str, str]:
    settings = dict(
        PORT=str(free_port()),
        HOST="127.0.0.1",
        WEB_CONCURRENCY="2",
        DATABASE_URL=database_url,
        API_KEYS=API_KEY,
        VONAGE_APPLICATION_ID=APPLICATION_ID,
        VONAGE_PRIVATE_KEY_PATH=str(key_file),
        VONAGE_NUMBER="+" + VONAGE_NUMBER,
        VONAGE_SIGNATURE_SECRET=SIGNATURE_SECRET,
        VONAGE_API_HOST=f"127.0.0.1:{free_port()}",
        VONAGE_TIMEOUT_SECONDS="2",
        SEND_SMS_RATE_LIMIT="100000/second",
        VONAGE_MAX_SENDS_PER_SECOND="1000",
        PROMETHEUS_MULTIPROC_DIR=str(workdir / "metrics"),
    )
    return clean_env(**{**settings, **overrides})


def migrate(env: dict[str, str], workdir: Path) -> None:
    """The Procfile's release phase."""
    done = subprocess.run(MIGRATE, env=env, cwd=workdir, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).ok
    except requests.RequestException:
        return False


@contextlib.contextmanager
def gunicorn(
    env: dict[str, str], workdir: Path, *, name: str = "app", ready_path: str = "/health/ready"
) -> Iterator[App]:
    """The Procfile's web process in its own process group, stopped with its workers."""
    url = f"http://127.0.0.1:{env['PORT']}"
    log_path = workdir / f"{name}.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            WEB, env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not _answers(url + ready_path):
            if process.poll() is not None:
                pytest.fail(f"{name} exited with {process.returncode}:\n{log_path.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"{name} did not start in time:\n{log_path.read_text()}")
            time.sleep(0.1)
        yield App(url, process)
    finally:
        stop_group(process)


def stop_group(process: subprocess.Popen) -> None:
    """Quick shutdown (SIGINT) of the master and its workers, then SIGKILL what is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGINT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)
    kill_group(process)


def kill_group(process: subprocess.Popen) -> None:
    """kill -9 the gunicorn master and every worker at once."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


# -- checking answers and rows ---------------------------------------------------------


def assert_problem(response: requests.Response, status: int, kind: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    if kind is not None:
        assert body["type"].endswith(":" + kind), body
    return body


def query(database_url: str, sql: str, **params) -> list[tuple]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(sql), params)]
    finally:
        engine.dispose()


def inbound(text: str = "hello", message_uuid: str | None = None) -> dict:
    return inbound_payload(
        sender=CUSTOMER, recipient=VONAGE_NUMBER, text=text, message_uuid=message_uuid
    )


def delivered(message_uuid: str) -> dict:
    return status_payload(
        message_uuid=message_uuid, status="delivered", to=TO, sender=VONAGE_NUMBER
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path) -> Iterator[str]:
    """A fresh database: SQLite in the test's folder, or one of our own on TEST_POSTGRES_URL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'sms.db'}"
        return
    if not POSTGRES_URL:
        pytest.skip("needs TEST_POSTGRES_URL (see .ci/run)")
    with fresh_postgres_database(POSTGRES_URL, FAULTS_DATABASE) as url:
        yield url


# -- 1. the database does not answer ---------------------------------------------------


def test_postgres_unreachable_answers_503_everywhere_but_health(tmp_path, key_file):
    """Nothing listens on the database port: liveness stays up, everything else is a 503
    problem (a webhook above all: a 200 would tell Vonage to drop an unsaved event)."""
    nowhere = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/x"
    env = app_env(tmp_path, nowhere, key_file)

    with gunicorn(env, tmp_path, ready_path="/health") as app:
        health = requests.get(f"{app.url}/health", timeout=REQUEST_TIMEOUT)
        ready = requests.get(f"{app.url}/health/ready", timeout=REQUEST_TIMEOUT)
        inbound_answer = app.webhook("inbound", inbound())
        status_answer = app.webhook("status", delivered(str(uuid.uuid4())))
        send = app.send({"to": TO, "text": "database down"})
        history = app.get("/messages")

    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    assert_problem(ready, 503)
    assert_problem(inbound_answer, 503, "dependency-unavailable")
    assert_problem(status_answer, 503, "dependency-unavailable")
    assert_problem(send, 503, "dependency-unavailable")
    assert_problem(history, 503, "dependency-unavailable")


def answer_or_none(call, *args) -> requests.Response | None:
    """The answer, or None when none came within REQUEST_TIMEOUT: the app hung."""
    try:
        return call(*args)
    except requests.Timeout:
        return None


def test_sqlite_locked_past_busy_timeout_writes_503_and_the_retry_is_stored(tmp_path, key_file):
    """Another process holds SQLite's write lock longer than the busy timeout (a stuck
    job, a long backup): each concurrent webhook is 503, not 200, and the send stops
    before Vonage, each within the busy timeout rather than queued behind the others.
    Once the lock is gone, Vonage's retry of the same events is stored."""
    database_file = tmp_path / "sms.db"
    database_url = f"sqlite:///{database_file}"
    env = app_env(tmp_path, database_url, key_file)
    migrate(env, tmp_path)
    events = [("inbound", inbound("locked 1")), ("inbound", inbound("locked 2"))]
    events.append(("status", delivered(str(uuid.uuid4()))))

    with gunicorn(env, tmp_path) as app:
        holder = sqlite3.connect(database_file, isolation_level=None, timeout=10)
        try:
            holder.execute("BEGIN IMMEDIATE")
            with ThreadPoolExecutor(len(events) + 1) as pool:
                pending = [pool.submit(answer_or_none, app.webhook, *event) for event in events]
                pending.append(pool.submit(answer_or_none, app.send, {"to": TO, "text": "lock"}))
                health = requests.get(f"{app.url}/health", timeout=REQUEST_TIMEOUT)
                ready = requests.get(f"{app.url}/health/ready", timeout=REQUEST_TIMEOUT)
                locked = [future.result() for future in pending]
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        retried = [app.webhook(*event) for event in events]

    assert health.status_code == 200
    # /health/ready may still share its last probe's 200 here (one write every 5 s);
    # test_crash_safety checks it turns 503 once writes are blocked past that.
    assert ready.status_code in (200, 503)
    answered = [None if answer is None else answer.status_code for answer in locked]
    assert answered == [503] * len(locked)
    for answer in locked[:-1]:
        assert_problem(answer, 503, "dependency-unavailable")
    assert_problem(locked[-1], 503, "dependency-unavailable")
    assert [answer.status_code for answer in retried] == [200] * len(events)
    assert [answer.json()["duplicate"] for answer in retried] == [False] * len(events)
    assert query(database_url, "SELECT COUNT(*) FROM messages") == [(2,)]
    assert query(database_url, "SELECT COUNT(*) FROM message_events") == [(1,)]


# -- 2. Vonage down, overloaded, slow, or answering garbage ----------------------------


@pytest.fixture(scope="module")
def one_worker_stack(start_stack) -> Iterator[Stack]:
    """The simulator and one gunicorn worker with a 2 s Vonage timeout."""
    with start_stack(WEB_CONCURRENCY="1", VONAGE_TIMEOUT_SECONDS="2") as stack:
        yield stack


@pytest.fixture
def vonage_stack(one_worker_stack) -> Iterator[Stack]:
    one_worker_stack.sim("DELETE", "/_sim/faults")
    try:
        yield one_worker_stack
    finally:
        one_worker_stack.sim("DELETE", "/_sim/faults")
        one_worker_stack.sim("POST", "/_sim/release")


def outbound_row(stack: Stack, text: str) -> dict:
    """The outbound message with this (test-unique) text."""
    listed = stack.app_get("/messages", direction="outbound", limit=200).json()["messages"]
    [row] = [message for message in listed if message["text"] == text]
    return row


def test_vonage_unreachable_send_is_503_and_the_row_failed(tmp_path, key_file):
    """Connection refused is certain non-acceptance: retried inside the budget, then 503."""
    env = app_env(tmp_path, f"sqlite:///{tmp_path / 'sms.db'}", key_file)

    with gunicorn(env, tmp_path) as app:
        sends = [app.send({"to": TO, "text": f"nobody listens {n}"}) for n in range(2)]
        health = requests.get(f"{app.url}/health", timeout=REQUEST_TIMEOUT)
        rows = app.get("/messages", direction="outbound").json()["messages"]

    for send in sends:
        body = assert_problem(send, 503, "vonage-unavailable")
        assert "id" not in body
    assert health.status_code == 200
    assert sorted(row["status"] for row in rows) == ["failed", "failed"]


def test_vonage_overloaded_send_is_retried_a_bounded_number_of_times_then_503(vonage_stack):
    vonage_stack.faults(status=503)

    response = vonage_stack.send({"to": TO, "text": "vonage overloaded"})

    assert_problem(response, 503, "vonage-unavailable")
    row = outbound_row(vonage_stack, "vonage overloaded")
    assert row["status"] == "failed"
    attempts = vonage_stack.sim_requests_for(row["id"])
    assert 2 <= len(attempts) <= MAX_ATTEMPTS
    assert {attempt["response_status"] for attempt in attempts} == {503}


def test_vonage_500_is_502_with_the_id_never_retried_and_the_row_unknown(vonage_stack):
    vonage_stack.faults(status=500)

    response = vonage_stack.send({"to": TO, "text": "vonage broke"})

    body = assert_problem(response, 502, "vonage-outcome-unknown")
    assert len(vonage_stack.sim_requests_for(body["id"])) == 1
    assert vonage_stack.message(body["id"])["status"] == "unknown"


def test_vonage_slower_than_the_timeout_is_504_while_the_worker_keeps_serving(vonage_stack):
    """The one worker waits on Vonage in one thread and answers /health in others; the
    late acceptance is settled by its status webhook through `client_ref`."""
    vonage_stack.faults(hang_seconds=20, times=1)
    health_during_wait = []

    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(vonage_stack.send, {"to": TO, "text": "vonage is slow"})
        for _ in range(400):
            if pending.done():
                break
            health = requests.get(f"{vonage_stack.app_url}/health", timeout=REQUEST_TIMEOUT)
            if not pending.done():
                health_during_wait.append(health.status_code)
            time.sleep(0.02)
        response = pending.result(timeout=REQUEST_TIMEOUT)

    body = assert_problem(response, 504, "vonage-outcome-unknown")
    assert health_during_wait and set(health_during_wait) == {200}
    assert vonage_stack.message(body["id"])["status"] == "unknown"
    vonage_stack.sim("POST", "/_sim/release")
    wait_until(
        lambda: vonage_stack.message(body["id"])["status"] == "delivered",
        what="the late send to be settled by its status webhooks",
    )
    assert len(vonage_stack.sim_requests_for(body["id"])) == 1


@dataclass
class CannedVonage:
    """A Messages API over TLS that answers every send with one fixed answer."""

    port: int
    cert_path: Path
    status: int = 202
    content_type: str = "application/json"
    body: bytes = b"{}"
    client_refs: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def canned_vonage(tmp_path_factory) -> Iterator[CannedVonage]:
    cert_path, key_path = ensure_certificate(tmp_path_factory.mktemp("canned-vonage"))
    canned = CannedVonage(port=0, cert_path=cert_path)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            sent = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            canned.client_refs.append(sent.get("client_ref"))
            self.send_response(canned.status)
            self.send_header("Content-Type", canned.content_type)
            self.send_header("Content-Length", str(len(canned.body)))
            self.end_headers()
            self.wfile.write(canned.body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    canned.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield canned
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def garbage_app(tmp_path_factory, key_file, canned_vonage) -> Iterator[App]:
    workdir = tmp_path_factory.mktemp("garbage")
    env = app_env(
        workdir,
        f"sqlite:///{workdir / 'sms.db'}",
        key_file,
        VONAGE_API_HOST=f"127.0.0.1:{canned_vonage.port}",
        REQUESTS_CA_BUNDLE=str(canned_vonage.cert_path),
    )
    with gunicorn(env, workdir) as app:
        yield app


HTML_ERROR = b"<html><body><h1>Internal Server Error</h1></body></html>"


@pytest.mark.parametrize(
    ("status", "content_type", "body"),
    [
        pytest.param(500, "text/html", HTML_ERROR, id="500-html"),
        pytest.param(502, "text/html", b"<html>Bad Gateway</html>", id="502-proxy-html"),
        pytest.param(
            202,
            "text/html",
            b"<html>ok</html>",
            id="202-html",
        ),
        pytest.param(
            202,
            "application/json",
            b'{"uuid": "not the field"}',
            id="202-without-message-uuid",
        ),
        pytest.param(202, "application/json", b'{"message_uuid": ""}', id="202-empty-message-uuid"),
    ],
)
def test_vonage_garbage_answer_is_502_with_the_id_and_the_row_unknown(
    garbage_app, canned_vonage, status, content_type, body
):
    """An answer that might follow an accepted send but cannot be read: maybe sent,
    so 502 with our `id`, the row kept `unknown`, and no second (paid) attempt."""
    canned_vonage.status, canned_vonage.content_type, canned_vonage.body = (
        status,
        content_type,
        body,
    )
    text_sent = f"garbage {status} {uuid.uuid4()}"

    response = garbage_app.send({"to": TO, "text": text_sent})

    listed = garbage_app.get("/messages", direction="outbound", limit=200).json()["messages"]
    [row] = [message for message in listed if message["text"] == text_sent]
    assert canned_vonage.client_refs.count(row["id"]) == 1
    assert row["status"] == "unknown"
    problem = assert_problem(response, 502, "vonage-outcome-unknown")
    assert problem["id"] == row["id"]


# -- 3. kill -9 under webhook load -----------------------------------------------------


@dataclass
class Load:
    killed: threading.Event = field(default_factory=threading.Event)
    acked: list[str] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)
    errors_before_kill: list[str] = field(default_factory=list)
    errors_after_kill: int = 0


def fire_inbound(base_url: str, load: Load, worker: int) -> None:
    """Distinct signed inbound webhooks until the app dies (bounded in count and time)."""
    deadline = time.monotonic() + LOAD_SECONDS
    with requests.Session() as session:
        for n in range(LOAD_REQUESTS_PER_THREAD):
            if time.monotonic() > deadline:
                return
            message = inbound(f"load {worker}-{n}")
            try:
                answer = post_signed(base_url, "inbound", message, session)
            except requests.RequestException as error:
                if load.killed.is_set():
                    load.errors_after_kill += 1
                else:
                    load.errors_before_kill.append(repr(error))
                return
            load.answers.append(answer.status_code)
            if answer.status_code == 200:
                load.acked.append(message["message_uuid"])


def test_every_acknowledged_webhook_survives_kill_9(database, tmp_path, key_file):
    """SIGKILL the master and all workers mid-load: every message_uuid answered 200 is
    stored once the app is back on the same database (ack only after commit)."""
    env = app_env(tmp_path, database, key_file)
    migrate(env, tmp_path)
    load = Load()

    with gunicorn(env, tmp_path) as app:
        threads = [
            threading.Thread(target=fire_inbound, args=(app.url, load, worker))
            for worker in range(LOAD_THREADS)
        ]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + LOAD_SECONDS / 2
        while len(load.acked) < KILL_AFTER_ACKS and time.monotonic() < deadline:
            time.sleep(0.01)
        load.killed.set()
        kill_group(app.process)
        for thread in threads:
            thread.join(timeout=REQUEST_TIMEOUT + LOAD_SECONDS)
        assert not any(thread.is_alive() for thread in threads)

    restarted = app_env(tmp_path, database, key_file)
    with gunicorn(restarted, tmp_path, name="app-restarted") as app:
        for message_uuid in load.acked[-20:]:
            assert app.get(f"/messages/{message_uuid}").status_code == 200
    stored = {row[0] for row in query(database, "SELECT message_uuid FROM messages")}

    assert load.errors_before_kill == []
    assert load.errors_after_kill > 0, "the kill should land while requests are in flight"
    assert set(load.answers) == {200}
    assert len(load.acked) > 0
    assert set(load.acked) - stored == set()


# -- 4. a storm of duplicate deliveries ------------------------------------------------


def test_concurrent_duplicate_deliveries_store_one_row_and_one_event(database, tmp_path, key_file):
    """Vonage re-delivers one status event and one inbound SMS 24 times at once across
    two workers: every delivery is 200, exactly one of each is new, one row each."""
    env = app_env(tmp_path, database, key_file)
    migrate(env, tmp_path)
    message = inbound("said once, delivered 24 times")
    event = delivered(str(uuid.uuid4()))
    deliveries = [("inbound", message), ("status", event)] * DUPLICATES

    with gunicorn(env, tmp_path) as app:
        with ThreadPoolExecutor(2 * DUPLICATES) as pool:
            answers = list(pool.map(lambda delivery: app.webhook(*delivery), deliveries))
        shown = app.get(f"/messages/{event['message_uuid']}").json()

    assert [answer.status_code for answer in answers] == [200] * len(deliveries)
    for kind in ("inbound", "status"):
        new = [
            answer.json()["duplicate"] is False
            for (sent_kind, _), answer in zip(deliveries, answers, strict=True)
            if sent_kind == kind
        ]
        assert new.count(True) == 1, kind
    assert query(
        database, "SELECT COUNT(*) FROM messages WHERE message_uuid = :u", u=message["message_uuid"]
    ) == [(1,)]
    assert query(
        database,
        "SELECT COUNT(*) FROM message_events WHERE message_uuid = :u",
        u=event["message_uuid"],
    ) == [(1,)]
    assert [item["status"] for item in shown["events"]] == ["delivered"]
