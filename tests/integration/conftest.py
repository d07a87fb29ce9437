"""Real processes for end-to-end tests: the Vonage simulator and the app under
gunicorn, started as the Procfile starts it, each on a free port of 127.0.0.1.

Every process writes to a log file in the test's temp dir (never a pipe that
could fill up) and is terminated in a `finally`, whatever the test did.
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support import (
    API_KEY,
    APPLICATION_ID,
    SIGNATURE_SECRET,
    VONAGE_NUMBER,
    clean_env,
    free_port,
)

START_TIMEOUT_SECONDS = 30
WAIT_TIMEOUT_SECONDS = 20


def wait_until(check: Callable[[], Any], *, what: str, timeout: float = WAIT_TIMEOUT_SECONDS):
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
        except (requests.RequestException, AssertionError) as error:
            last_error, result = error, None
        if result:
            return result
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}" + (f": {last_error}" if last_error else ""))


@contextlib.contextmanager
def running(
    name: str,
    args: list[str],
    *,
    env: dict[str, str],
    workdir: Path,
    ready: Callable[[], Any],
    stop_signal: int = signal.SIGTERM,
) -> Iterator[subprocess.Popen]:
    """`args` running until the block ends, then stopped with `stop_signal`.

    SIGINT for gunicorn when the test is done with it: its quick shutdown, where
    SIGTERM's graceful one waits out kept-alive connections (~5 s a stop).
    """
    log_path = workdir / f"{name}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(args, env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            if process.poll() is not None:
                pytest.fail(f"{name} exited with {process.returncode}:\n{log_path.read_text()}")
            try:
                if ready():
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"{name} did not start in time:\n{log_path.read_text()}")
            time.sleep(0.1)
        yield process
    finally:
        process.send_signal(stop_signal)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Stack:
    """A running simulator + app, and the calls the tests make to them."""

    app_url: str
    sim_url: str
    cert_path: Path
    sim_port: int
    cert_dir: Path
    workdir: Path
    app_env: dict[str, str] = dataclasses.field(default_factory=dict)

    @contextlib.contextmanager
    def worker(self, name: str = "worker") -> Iterator[subprocess.Popen]:
        """The Procfile's `worker:` (the event dispatcher), with the app's environment."""
        log_path = self.workdir / f"{name}.log"
        args = [sys.executable, "-m", "flask", "--app", "app", "dispatch"]
        with running(
            name,
            args,
            env=self.app_env,
            workdir=self.workdir,
            ready=lambda: log_path.exists() and b"dispatcher started" in log_path.read_bytes(),
        ) as process:
            yield process

    def send(self, payload: dict, **headers) -> requests.Response:
        return requests.post(
            f"{self.app_url}/send-sms",
            json=payload,
            headers={"Authorization": f"Bearer {API_KEY}", **headers},
            timeout=30,
        )

    def app_get(self, path: str, **params) -> requests.Response:
        return requests.get(
            f"{self.app_url}{path}",
            params=params,
            headers={"Authorization": f"Bearer {API_KEY}"},
            timeout=10,
        )

    def message(self, identifier: str) -> dict:
        response = self.app_get(f"/messages/{identifier}")
        assert response.status_code == 200, response.text
        return response.json()

    def sim(self, method: str, path: str, **kwargs) -> requests.Response:
        return requests.request(
            method, f"{self.sim_url}{path}", verify=str(self.cert_path), timeout=10, **kwargs
        )

    def faults(self, **faults) -> None:
        response = self.sim("POST", "/_sim/faults", json=faults)
        assert response.status_code == 200, response.text

    def sim_requests_for(self, message_id: str) -> list[dict]:
        """The sends the simulator received for the app's message `id` (its client_ref)."""
        received = self.sim("GET", "/_sim/messages").json()["messages"]
        return [
            entry
            for entry in received
            if isinstance(entry["request"], dict)
            and entry["request"].get("client_ref") == message_id
        ]

    def webhooks_for(self, message_uuid: str) -> list[dict]:
        attempts = self.sim("GET", "/_sim/webhooks").json()["webhooks"]
        return [entry for entry in attempts if entry["message_uuid"] == message_uuid]


@pytest.fixture(scope="session")
def key_file(tmp_path_factory, private_key_pem) -> Path:
    """The application's RSA key, generated for this run (never committed)."""
    path = tmp_path_factory.mktemp("keys") / "private.key"
    path.write_text(private_key_pem)
    return path


@pytest.fixture(scope="session")
def start_stack(tmp_path_factory, key_file) -> Callable:
    """A context manager: `with start_stack(VONAGE_TIMEOUT_SECONDS="1") as stack:`."""

    @contextlib.contextmanager
    def start(**overrides: str) -> Iterator[Stack]:
        workdir = tmp_path_factory.mktemp("stack")
        cert_dir = workdir / "simulator"
        app_port, sim_port = free_port(), free_port()
        sim_url = f"https://127.0.0.1:{sim_port}"
        cert_path = cert_dir / "cert.pem"
        sim_env = clean_env(
            VONAGE_APPLICATION_ID=APPLICATION_ID,
            VONAGE_PRIVATE_KEY_PATH=str(key_file),
            VONAGE_SIGNATURE_SECRET=SIGNATURE_SECRET,
            VONAGE_NUMBER=VONAGE_NUMBER,
        )
        sim_args = [
            sys.executable, "-m", "app.simulator",
            "--port", str(sim_port),
            "--webhook-base", f"http://127.0.0.1:{app_port}",
            "--cert-dir", str(cert_dir),
            "--delivery-delay", "0.05",
            "--webhook-attempts", "4",
            "--webhook-backoff", "0.1",
        ]  # fmt: skip
        app_settings = dict(
            PORT=str(app_port),
            HOST="127.0.0.1",
            WEB_CONCURRENCY="2",
            DATABASE_URL=f"sqlite:///{workdir / 'sms.db'}",
            API_KEYS=API_KEY,
            VONAGE_APPLICATION_ID=APPLICATION_ID,
            VONAGE_PRIVATE_KEY_PATH=str(key_file),
            VONAGE_NUMBER="+" + VONAGE_NUMBER,
            VONAGE_SIGNATURE_SECRET=SIGNATURE_SECRET,
            VONAGE_API_HOST=f"127.0.0.1:{sim_port}",
            REQUESTS_CA_BUNDLE=str(cert_path),
            VONAGE_TIMEOUT_SECONDS="5",
            SEND_SMS_RATE_LIMIT="1000/second",
            VONAGE_MAX_SENDS_PER_SECOND="1000",
        )
        app_env = clean_env(**{**app_settings, **overrides})
        release = [sys.executable, "-m", "flask", "--app", "app", "migrate"]
        migrated = subprocess.run(release, env=app_env, cwd=workdir, capture_output=True, text=True)
        assert migrated.returncode == 0, migrated.stdout + migrated.stderr
        web = [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "python:app.gunicorn_conf",
            "app:create_app()",
        ]

        def sim_ready():
            return (
                cert_path.exists()
                and requests.get(f"{sim_url}/_sim/health", verify=str(cert_path), timeout=2).ok
            )

        def app_ready():
            return requests.get(f"http://127.0.0.1:{app_port}/health/ready", timeout=2).ok

        with (
            running("simulator", sim_args, env=sim_env, workdir=workdir, ready=sim_ready),
            running(
                "app", web, env=app_env, workdir=workdir, ready=app_ready, stop_signal=signal.SIGINT
            ),
        ):
            yield Stack(
                app_url=f"http://127.0.0.1:{app_port}",
                sim_url=sim_url,
                cert_path=cert_path,
                sim_port=sim_port,
                cert_dir=cert_dir,
                workdir=workdir,
                app_env=app_env,
            )

    return start


@pytest.fixture(scope="package")
def default_stack(start_stack) -> Iterator[Stack]:
    """One stack on the default settings for every module here that uses `stack`.

    Their tests find their own messages by id, uuid or unique text, so they can
    share it; starting and stopping one took 20-30 s of the loaded CI machine.
    A module whose tests count every stored message overrides this fixture with
    a stack of its own (tests/integration/test_end_to_end.py).
    """
    with start_stack() as stack:
        yield stack


@pytest.fixture
def stack(default_stack) -> Iterator[Stack]:
    """The default stack with no faults set, and none left behind."""
    default_stack.sim("DELETE", "/_sim/faults")
    yield default_stack
    default_stack.sim("DELETE", "/_sim/faults")
    default_stack.sim("POST", "/_sim/release")


@contextlib.contextmanager
def fresh_postgres_database(server_url: str, name: str) -> Iterator[str]:
    """A new, empty database `name` on the server of `server_url`, dropped afterwards,
    so integration tests never disturb the unit tests' database."""
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(server_url)
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(False)

    def drop() -> None:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    drop()
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    try:
        yield url.set(database=name).render_as_string(False)
    finally:
        drop()
