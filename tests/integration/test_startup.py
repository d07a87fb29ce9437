"""Starting the service as a person does: the summary it prints once, the one
block a bad configuration prints instead of a traceback, readable logs at a
terminal, and `python -m app --with-simulator` sending end to end."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.integration.conftest import running, wait_until
from tests.support import (
    API_KEY,
    APPLICATION_ID,
    SIGNATURE_SECRET,
    VONAGE_NUMBER,
    clean_env,
    free_port,
)

pytestmark = pytest.mark.integration

GUNICORN = [sys.executable, "-m", "gunicorn", "-c", "python:app.gunicorn_conf", "app:create_app()"]
PYTHON_M_APP = [sys.executable, "-m", "app"]
MISSING_IN_PRODUCTION = (
    "VONAGE_APPLICATION_ID",
    "VONAGE_PRIVATE_KEY or VONAGE_PRIVATE_KEY_PATH",
    "VONAGE_NUMBER",
    "VONAGE_SIGNATURE_SECRET",
    "DATABASE_URL",
)
TEXT_TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d"


def configured_env(workdir: Path, key_file: Path, port: int, **extra: str) -> dict[str, str]:
    settings = {
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "DATABASE_URL": f"sqlite:///{workdir / 'sms.db'}",
        "API_KEYS": f"{API_KEY},second-key-0123456789abcdef",
        "VONAGE_APPLICATION_ID": APPLICATION_ID,
        "VONAGE_PRIVATE_KEY_PATH": str(key_file),
        "VONAGE_NUMBER": "+" + VONAGE_NUMBER,
        "VONAGE_SIGNATURE_SECRET": SIGNATURE_SECRET,
    }
    return clean_env(**{**settings, **extra})


def answers(url: str):
    return lambda: requests.get(url, timeout=2).ok


def assert_no_secret_in(output: str, key_file: Path) -> None:
    for secret in (API_KEY, SIGNATURE_SECRET, key_file.read_text().splitlines()[1]):
        assert secret not in output


def test_python_m_app_prints_the_summary_once(tmp_path, key_file):
    port = free_port()
    env = configured_env(tmp_path, key_file, port, LOG_FORMAT="text")

    with running(
        "app",
        PYTHON_M_APP,
        env=env,
        workdir=tmp_path,
        ready=answers(f"http://127.0.0.1:{port}/health/ready"),
    ):
        requests.get(f"http://127.0.0.1:{port}/health", timeout=5)
    output = (tmp_path / "app.log").read_text()

    assert output.count("sms-service listening on") == 1
    assert f"listening on http://127.0.0.1:{port}" in output
    assert "environment:  development" in output
    assert "database:     sqlite:///sms.db" in output  # relative to where it runs
    assert "API keys:     2" in output
    assert "disabled:     nothing" in output
    assert_no_secret_in(output, key_file)
    assert "Context impl" not in output


def test_gunicorn_prints_the_summary_once_from_the_master(tmp_path, key_file):
    port = free_port()
    env = configured_env(
        tmp_path, key_file, port, WEB_CONCURRENCY="2", API_KEYS="", VONAGE_SIGNATURE_SECRET=""
    )

    with running(
        "app",
        GUNICORN,
        env=env,
        workdir=tmp_path,
        ready=answers(f"http://127.0.0.1:{port}/health/ready"),
    ):
        wait_until(
            lambda: (tmp_path / "app.log").read_text().count("Booting worker") == 2,
            what="both workers",
        )
    output = (tmp_path / "app.log").read_text()

    summaries = [line for line in output.splitlines() if '"logger": "app.startup"' in line]
    assert len(summaries) == 1
    assert f'"urls": ["http://127.0.0.1:{port}"]' in summaries[0]
    assert '"api_keys": 0' in summaries[0]
    assert "webhooks refused (503): VONAGE_SIGNATURE_SECRET is not set" in summaries[0]
    assert "sends and history refused (401): API_KEYS is not set" in summaries[0]
    assert_no_secret_in(output, key_file)


@pytest.mark.parametrize(
    "command",
    [
        PYTHON_M_APP,
        GUNICORN,
        [sys.executable, "-m", "flask", "--app", "app", "migrate"],
        [sys.executable, "-m", "flask", "--app", "app", "send-sms", "--to", "+1415", "--text", "x"],
    ],
    ids=["python -m app", "gunicorn", "flask migrate", "flask send-sms"],
)
def test_a_misconfigured_production_start_prints_one_block_and_fails(tmp_path, command):
    env = clean_env(APP_ENV="production", API_KEYS="k", PORT=str(free_port()))

    result = subprocess.run(
        command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )

    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Traceback" not in output
    assert "sms-service cannot start" in output
    for name in MISSING_IN_PRODUCTION:
        assert name in output
    assert output.count("sms-service cannot start") == 1
    assert "Booting worker" not in output


def test_flask_help_opens_no_database_and_prints_no_alembic_lines(tmp_path):
    database = tmp_path / "sms.db"
    env = clean_env(DATABASE_URL=f"sqlite:///{database}")

    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", "--help"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert "messages" in result.stdout and "send-sms" in result.stdout
    assert not database.exists()
    assert "Context impl" not in result.stdout + result.stderr


def test_logs_are_text_at_a_terminal_in_development(tmp_path, key_file):
    """stdout a terminal, stderr (the logs) a file: the logs are for a person."""
    port = free_port()
    env = configured_env(tmp_path, key_file, port, LOG_FORMAT="")
    terminal, other_end = pty.openpty()
    log_path = tmp_path / "app.log"
    try:
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                PYTHON_M_APP, env=env, cwd=tmp_path, stdout=other_end, stderr=log
            )
        try:
            wait_until(answers(f"http://127.0.0.1:{port}/health/ready"), what="the app")
            requests.get(
                f"http://127.0.0.1:{port}/messages?limit=2",
                headers={"Authorization": f"Bearer {API_KEY}"},
                timeout=5,
            )
        finally:
            process.terminate()
            process.wait(timeout=10)
    finally:
        os.close(terminal)
        os.close(other_end)
    output = log_path.read_text()

    assert "sms-service listening on" in output
    access = [line for line in output.splitlines() if "GET /messages 200" in line]
    assert len(access) == 1
    assert re.match(
        TEXT_TIME + r" INFO +app\.access \[[0-9a-f]{32}\] GET /messages 200 [\d.]+ms", access[0]
    )
    assert "{" not in output


def test_with_simulator_starts_both_and_a_send_is_delivered(tmp_path, key_file):
    """Even where the system sets REQUESTS_CA_BUNDLE, as many do."""
    port, sim_port = free_port(), free_port()
    env = configured_env(tmp_path, key_file, port, REQUESTS_CA_BUNDLE=requests.certs.where())
    command = [
        *PYTHON_M_APP, "--with-simulator",
        "--simulator-port", str(sim_port),
        "--simulator-cert-dir", str(tmp_path / "simulator"),
    ]  # fmt: skip

    with running(
        "dev",
        command,
        env=env,
        workdir=tmp_path,
        ready=answers(f"http://127.0.0.1:{port}/health/ready"),
    ):
        sent = requests.post(
            f"http://127.0.0.1:{port}/send-sms",
            json={"to": "+14155550100", "text": "One command"},
            headers={"Authorization": f"Bearer {API_KEY}"},
            timeout=30,
        )
        assert sent.status_code == 202, sent.text

        def delivered():
            message = requests.get(
                f"http://127.0.0.1:{port}/messages/{sent.json()['id']}",
                headers={"Authorization": f"Bearer {API_KEY}"},
                timeout=5,
            ).json()
            return message["status"] == "delivered"

        wait_until(delivered, what="the delivery receipt")
    output = (tmp_path / "dev.log").read_text()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"https://127.0.0.1:{sim_port}/_sim/health", verify=False, timeout=2)
    assert f"Vonage host:  127.0.0.1:{sim_port} (a local simulator)" in output or (
        f'"vonage_host": "127.0.0.1:{sim_port} (a local simulator)"' in output
    )
