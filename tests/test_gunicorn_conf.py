"""The Procfile's gunicorn settings: hooks that run in every worker."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.support import clean_env, free_port

ROOT = Path(__file__).resolve().parent.parent

# A stand-in app: what its module creates at import must be frozen by the time
# it answers (gc.get_objects() lists only what the collector still walks).
PROBE_APP = """
import gc

LOADED_WITH_THE_APP = ["made when the worker loaded the app"]


def app(environ, start_response):
    walked = any(o is LOADED_WITH_THE_APP for o in gc.get_objects())
    body = f"{gc.get_freeze_count()} {walked}".encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
"""


def test_a_worker_freezes_what_the_loaded_app_keeps_alive(tmp_path):
    """Once gunicorn has loaded the app in a worker, its long-lived objects are out of
    the collector's sight, so the oldest generation's collections (every thread
    stopped) no longer walk them."""
    (tmp_path / "probe_app.py").write_text(PROBE_APP)
    port = free_port()
    # clean_env: blank settings, so a developer's .env (which gunicorn_conf loads)
    # changes nothing here.
    env = clean_env(
        PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]),
        HOST="127.0.0.1",
        PORT=str(port),
        WEB_CONCURRENCY="1",
        GUNICORN_THREADS="2",
        APP_ENV="development",
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"),
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "python:app.gunicorn_conf", "probe_app:app"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = requests.get(f"http://127.0.0.1:{port}/", timeout=2)
                break
            except requests.ConnectionError:
                assert server.poll() is None, "gunicorn exited"
                assert time.monotonic() < deadline, "gunicorn did not answer"
                time.sleep(0.1)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    frozen, walked = answer.text.split()
    assert int(frozen) > 10_000
    assert walked == "False"
