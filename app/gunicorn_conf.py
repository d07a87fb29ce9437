"""gunicorn settings for the Procfile: `gunicorn -c python:app.gunicorn_conf "app:create_app()"`.

Threaded workers: a send waits up to VONAGE_TIMEOUT_SECONDS on Vonage, and a
sync worker would stop serving webhooks for that long. The worker class is
gthread's, except that a request reaches a thread only once it has fully
arrived (app/buffering_worker.py), so slow clients cannot hold the threads.
"""

import os
import shutil
import tempfile

from dotenv import load_dotenv

from app.config import dotenv_path

# .env may set HOST, PORT and FORWARDED_ALLOW_IPS too; the environment wins.
load_dotenv(dotenv_path(), override=False)


def _whole_number(name: str, default: int) -> int:
    raw = os.environ.get(name) or str(default)
    if not (raw.isascii() and raw.isdigit() and int(raw) > 0):
        raise SystemExit(f"configuration error: {name} must be a whole number above 0, got {raw!r}")
    return int(raw)


bind = f"{os.environ.get('HOST') or '0.0.0.0'}:{_whole_number('PORT', 3000)}"
workers = _whole_number("WEB_CONCURRENCY", 2)
worker_class = "app.buffering_worker.BufferingThreadWorker"
# Connections a worker holds at once, slow ones included (each costs a socket
# and at most ~130 KiB of buffer while its request arrives).
worker_connections = 1000
threads = _whole_number("GUNICORN_THREADS", 96)
timeout = 60
graceful_timeout = 30
keepalive = 5
accesslog = None
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS") or "127.0.0.1"
# gunicorn 23+ opens one control socket per user by default; two instances on
# one host (blue/green, or the tests) would fight over it.
control_socket_disable = True

# Metrics from every worker are added up from files in this folder; it must be
# set before prometheus_client is imported and emptied before workers start.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="sms-service-metrics-"))


def on_starting(server):
    """In the master, before any worker: a bad configuration stops gunicorn here
    with one block naming every problem, instead of each worker's traceback."""
    import logging

    from app import startup
    from app.config import ConfigError
    from app.observability import ScrubFilter
    from app.vonage_client import build_client

    # Workers inherit the filter: their refusals quote what the client sent.
    logging.getLogger("gunicorn.error").addFilter(ScrubFilter())
    settings = startup.settings_or_exit()
    try:
        build_client(settings)
    except ConfigError as error:
        startup.exit_with_config_error(error)
    server.sms_settings = settings
    folder = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder, exist_ok=True)


def when_ready(server):
    """The start-up summary, once, from the master."""
    from flask import Flask

    from app import startup

    settings = server.sms_settings
    urls = [str(listener) for listener in server.LISTENERS]
    startup.announce(settings, urls=urls, instance_path=Flask("app").instance_path)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def post_worker_init(worker):
    """Once the app is loaded in a worker: what is alive now (modules, the app, its
    engine) lives as long as the worker, so it is moved out of the garbage
    collector's sight. The oldest generation's collections walk every tracked
    object with every thread stopped: 75-136 ms pauses every few seconds under
    64 concurrent sends before, 1-28 ms after (README "Performance", "Sends now")."""
    import gc

    gc.collect()
    gc.freeze()
