"""gunicorn settings for the Procfile: `gunicorn -c python:app.gunicorn_conf "app:create_app()"`.

Threaded workers: a send waits up to VONAGE_TIMEOUT_SECONDS on Vonage, and a
sync worker would stop serving webhooks for that long.
"""

import os
import shutil
import tempfile

from dotenv import load_dotenv

# .env may set HOST, PORT and FORWARDED_ALLOW_IPS too; the environment wins.
load_dotenv(override=False)

bind = f"{os.environ.get('HOST') or '0.0.0.0'}:{os.environ.get('PORT') or '3000'}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "32"))
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
    from app import startup
    from app.config import ConfigError
    from app.vonage_client import build_client

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
