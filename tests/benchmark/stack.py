"""The processes a benchmark run starts, and the guarantee that it stops them all.

Each child runs in its own session, so its whole group (gunicorn's master and
workers) is signalled by the child's own id; output goes to a log file in the
run's temp dir, never to a pipe that could fill up.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests

from tests.support import clean_env

START_TIMEOUT_SECONDS = 60
STOP_TIMEOUT_SECONDS = 10
# The Procfile's worker settings, passed through unchanged to the app and the baseline.
GUNICORN_ENV = ("WEB_CONCURRENCY", "GUNICORN_THREADS")


class StartError(RuntimeError):
    pass


def gunicorn_settings() -> dict[str, str]:
    """WEB_CONCURRENCY and GUNICORN_THREADS as this shell has them (blank: the defaults)."""
    return {name: os.environ[name] for name in GUNICORN_ENV if os.environ.get(name)}


@dataclass
class Child:
    name: str
    process: subprocess.Popen
    log_path: Path

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class Processes:
    """Every child started by the run; `stop_all()` ends each of them, by its own id."""

    workdir: Path
    children: list[Child] = field(default_factory=list)

    def start(
        self, name: str, args: list[str], *, env: dict[str, str], ready: Callable[[], bool]
    ) -> Child:
        log_path = self.workdir / f"{name}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                args,
                env=env,
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        child = Child(name, process, log_path)
        self.children.append(child)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            if process.poll() is not None:
                raise StartError(f"{name} exited with {process.returncode}:\n{child.log_tail()}")
            try:
                if ready():
                    return child
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise StartError(f"{name} did not start in time:\n{child.log_tail()}")
            time.sleep(0.1)

    def stop(self, child: Child) -> None:
        process = child.process
        if process.poll() is None:
            _signal_group(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                pass
        # Workers outlive a master that died abruptly; the group id is the child's own.
        _signal_group(process.pid, signal.SIGKILL)
        if process.poll() is None:
            process.wait()
        if child in self.children:
            self.children.remove(child)

    def stop_all(self) -> None:
        for child in reversed(list(self.children)):
            self.stop(child)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def gunicorn(
    processes: Processes, name: str, wsgi_app: str, port: int, env: dict[str, str]
) -> Child:
    """`gunicorn -c python:app.gunicorn_conf <wsgi_app>`, as the Procfile runs the service."""
    metrics_dir = processes.workdir / f"metrics-{name}"
    child_env = clean_env(
        HOST="127.0.0.1",
        PORT=str(port),
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
        **gunicorn_settings(),
        **env,
    )
    args = [sys.executable, "-m", "gunicorn", "-c", "python:app.gunicorn_conf", wsgi_app]
    url = f"http://127.0.0.1:{port}/health"
    return processes.start(
        name,
        args,
        env=child_env,
        ready=lambda: requests.get(url, timeout=2).status_code == 200,
    )


def simulator(
    processes: Processes,
    port: int,
    *,
    cert_dir: Path,
    webhook_base: str,
    env: dict[str, str],
) -> Child:
    """`python -m app.simulator` with its status callbacks parked (see `cli.SEND_NOTE`)."""
    args = [
        sys.executable, "-m", "app.simulator",
        "--port", str(port),
        "--cert-dir", str(cert_dir),
        "--webhook-base", webhook_base,
        "--delivery-delay", "3600",
        "--webhook-attempts", "1",
    ]  # fmt: skip
    url = f"https://127.0.0.1:{port}/_sim/health"
    cert = cert_dir / "cert.pem"
    return processes.start(
        "simulator",
        args,
        env=clean_env(**env),
        ready=lambda: (
            cert.exists() and requests.get(url, verify=str(cert), timeout=2).status_code == 200
        ),
    )


def migrate(processes: Processes, env: dict[str, str]) -> None:
    """The Procfile's release phase (`flask --app app migrate`), bounded, for a database URL."""
    log_path = processes.workdir / "migrate.log"
    with log_path.open("wb") as log:
        done = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "app", "migrate"],
            env=clean_env(**env),
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=120,
            check=False,
        )
    if done.returncode != 0:
        raise RuntimeError(f"migrate failed:\n{log_path.read_text(errors='replace')[-2000:]}")
