"""`python -m app`: the service on its embedded defaults, one process, on $PORT.

An event dispatcher runs inside on a background thread, so the one-command
start also pushes events (in production the Procfile's `worker:` does).

`python -m app --with-simulator` also starts the local Vonage simulator
(`python -m app.simulator`, a separate process) and points the app at it, so
a first try needs one command and cannot reach the real Vonage.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import requests

from app import startup
from app.config import ConfigError

DEFAULT_HOST = "127.0.0.1"
SIMULATOR_START_SECONDS = 30


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m app",
        description="Run the service in one process (development). "
        "Production runs the Procfile's gunicorn instead.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--with-simulator",
        action="store_true",
        help="also start the local Vonage simulator and send to it, never to the real Vonage",
    )
    parser.add_argument("--simulator-port", type=int, default=8443)
    parser.add_argument(
        "--simulator-cert-dir",
        default="instance/simulator",
        help="where the simulator keeps its self-signed certificate",
    )
    return parser


@contextlib.contextmanager
def simulator(port: int, cert_dir: str, app_port: int) -> Iterator[None]:
    """The simulator in a child process, and this process's settings pointed at it."""
    cert_path = Path(cert_dir).resolve() / "cert.pem"
    command = [
        sys.executable, "-m", "app.simulator",
        "--port", str(port),
        "--cert-dir", cert_dir,
        "--webhook-base", f"http://127.0.0.1:{app_port}",
    ]  # fmt: skip
    child = subprocess.Popen(command)
    try:
        deadline = time.monotonic() + SIMULATOR_START_SECONDS
        while not _answers(f"https://127.0.0.1:{port}/_sim/health", cert_path):
            if child.poll() is not None:
                raise SystemExit(f"the simulator exited with {child.returncode}")
            if time.monotonic() > deadline:
                raise SystemExit("the simulator did not start in time")
            time.sleep(0.1)
        os.environ["VONAGE_API_HOST"] = f"127.0.0.1:{port}"
        os.environ["VONAGE_CA_BUNDLE"] = str(cert_path)
        yield
    finally:
        child.terminate()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()


def _answers(url: str, cert_path: Path) -> bool:
    try:
        return cert_path.exists() and requests.get(url, verify=str(cert_path), timeout=2).ok
    except requests.RequestException:
        return False


def serve() -> None:
    from app import create_app

    try:
        app = create_app()
    except ConfigError as error:
        startup.exit_with_config_error(error)
    settings = app.extensions["settings"]
    # Read after create_app() has loaded .env; gunicorn's config reads it the same way.
    host = os.environ.get("HOST") or DEFAULT_HOST
    startup.announce(
        settings, urls=[f"http://{host}:{settings.port}"], instance_path=app.instance_path
    )
    from app.events.dispatcher import Dispatcher

    dispatcher = Dispatcher(app.extensions["db"], settings)
    threading.Thread(target=dispatcher.run, name="dispatcher", daemon=True).start()
    app.run(host=host, port=settings.port, threaded=True)


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    if not args.with_simulator:
        serve()
        return
    settings = startup.settings_or_exit()
    # A plain `kill` must stop the simulator too: SystemExit runs the `finally`.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with simulator(args.simulator_port, args.simulator_cert_dir, settings.port):
        serve()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
