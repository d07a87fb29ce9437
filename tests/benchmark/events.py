"""Events mode: what the outbox costs webhook ingest, and how fast events are pushed.

The service runs as the Procfile runs it (gunicorn `web:` and the `worker:`
dispatcher) with the benchmark's mixed inbound + status webhook load. Each
repeat measures ingest twice, back to back:

- `outbox idle`: no subscription, so the hooks only look for receivers;
- `outbox on`: one `scope: all` subscription for every event type, so every
  webhook also writes an event and a delivery, and the dispatcher pushes each
  one over HTTPS to a local receiver while the load runs.

Lag is measured at the receiver for each event: arrival time minus the
event's own `timestamp` (taken inside the webhook's transaction, just before
the commit and the 200), so it is, if anything, a little longer than the lag
from the webhook's acknowledgement.
"""

from __future__ import annotations

import json
import ssl
import statistics
import sys
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

from tests.benchmark import report, stack
from tests.support import clean_env, free_port

TARGETS = {"ingest_ratio": 0.9, "lag_p99_s": 1.0}
DRAIN_TIMEOUT_SECONDS = 60.0


class LagReceiver:
    """An HTTPS endpoint that answers 204 and notes each event's lag and id."""

    def __init__(self, cert_path: str, key_path: str) -> None:
        self.lock = threading.Lock()
        self.arrivals: list[tuple[float, float, str]] = []  # (arrived, lag, webhook-id)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                arrived = time.time()
                created = datetime.fromisoformat(json.loads(body)["timestamp"].replace("Z", ""))
                lag = arrived - created.replace(tzinfo=UTC).timestamp()
                with receiver.lock:
                    receiver.arrivals.append((arrived, lag, self.headers["webhook-id"]))
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_path, key_path)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}/events"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def take(self) -> list[tuple[float, float, str]]:
        with self.lock:
            taken, self.arrivals = self.arrivals, []
        return taken

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _pending(port: int, api_key: str) -> float:
    text = requests.get(
        f"http://127.0.0.1:{port}/metrics",
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=10,
    ).text
    for line in text.splitlines():
        if line.startswith('sms_event_deliveries_waiting{state="pending"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def run(bench, api_key: str) -> dict[str, Any]:
    database = bench.workdir / "events.db"
    env = {**bench.service_env(database), "EVENT_ALLOW_PRIVATE_URLS": "true"}
    port = free_port()
    stack.gunicorn(bench.processes, "service-events", "app:create_app()", port, env)
    worker_log = bench.workdir / "dispatcher.log"
    bench.processes.start(
        "dispatcher",
        [sys.executable, "-m", "flask", "--app", "app", "dispatch"],
        env=clean_env(**env),
        ready=lambda: worker_log.exists() and b"dispatcher started" in worker_log.read_bytes(),
    )
    bench.log(f"service-events on 127.0.0.1:{port}, dispatcher started")
    receiver = LagReceiver(str(bench.cert_dir / "cert.pem"), str(bench.cert_dir / "key.pem"))
    headers = {"Authorization": f"Bearer {api_key}"}
    runs: dict[str, list] = {"idle": [], "on": []}
    try:
        for _ in range(bench.args.repeats):
            runs["idle"].append(
                bench.webhook_run(port, database, ("inbound", "status"), "events: outbox idle")
            )
            subscription = requests.post(
                f"http://127.0.0.1:{port}/subscriptions",
                json={"url": receiver.url, "events": ["*"], "scope": "all"},
                headers=headers,
                timeout=10,
            ).json()
            receiver.take()
            result = bench.webhook_run(port, database, ("inbound", "status"), "events: outbox on")
            ended = time.time()
            deadline = time.monotonic() + DRAIN_TIMEOUT_SECONDS
            while _pending(port, api_key) > 0 and time.monotonic() < deadline:
                time.sleep(0.2)
            drained = time.time()
            arrivals = receiver.take()
            times = [arrived for arrived, _, _ in arrivals]
            active = max(times, default=0.0) - min(times, default=0.0)
            lags = [lag for _, lag, _ in arrivals]
            ids = [event_id for _, _, event_id in arrivals]
            result["events"] = {
                "delivered": len(arrivals),
                "duplicates": len(ids) - len(set(ids)),
                "per_s": round(len(arrivals) / max(active, 1e-9), 1),
                "drain_s": round(max(0.0, drained - ended), 2),
                "lag_p50_s": round(_percentile(lags, 0.5), 3),
                "lag_p99_s": round(_percentile(lags, 0.99), 3),
                "lag_max_s": round(max(lags, default=0.0), 3),
            }
            bench.log(f"events: {result['events']}")
            runs["on"].append(result)
            requests.delete(
                f"http://127.0.0.1:{port}/subscriptions/{subscription['id']}",
                headers=headers,
                timeout=10,
            )
    finally:
        receiver.close()
    idle = report.summarize(runs["idle"])
    on = report.summarize(runs["on"])
    # Each repeat's outbox-on run against the idle run just before it.
    for idle_run, on_run in zip(runs["idle"], runs["on"], strict=True):
        on_run["vs_idle"] = round(on_run["rps"] / idle_run["rps"], 3)
    lag_p99 = statistics.median(run["events"]["lag_p99_s"] for run in runs["on"])
    return {
        "idle": {"runs": runs["idle"], "median": idle},
        "on": {"runs": runs["on"], "median": on},
        "ingest_ratio": statistics.median(run["vs_idle"] for run in runs["on"]),
        "events_per_s": statistics.median(run["events"]["per_s"] for run in runs["on"]),
        "lag_p99_s": lag_p99,
        "targets": TARGETS,
    }


def markdown(events: dict[str, Any]) -> list[str]:
    idle, on = events["idle"]["median"], events["on"]["median"]
    met_ingest = events["ingest_ratio"] >= TARGETS["ingest_ratio"]
    met_lag = events["lag_p99_s"] <= TARGETS["lag_p99_s"]
    idle_repeats = " / ".join(f"{run['rps']:.0f}" for run in events["idle"]["runs"])
    out = [
        "### Events: outbox cost on webhook ingest, and push lag",
        "",
        "| scenario | req/s per repeat | median req/s | vs. the idle run before it "
        "| p50 ms | p99 ms | events/s pushed | lag p50 s | lag p99 s | drain s | duplicates |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        f"| mixed webhooks, outbox idle (no subscription) "
        f"| {idle_repeats} "
        f"| {idle['rps']:.0f} | 1.00 | {idle['p50_ms']:.1f} | {idle['p99_ms']:.1f} "
        "| - | - | - | - | - |",
    ]
    for run in events["on"]["runs"]:
        ev = run["events"]
        out.append(
            f"| outbox on: every webhook pushed (one repeat) | {run['rps']:.0f} | - "
            f"| {run['vs_idle']:.2f} | {run['p50_ms']:.1f} | {run['p99_ms']:.1f} "
            f"| {ev['per_s']:.0f} | {ev['lag_p50_s']:.3f} | {ev['lag_p99_s']:.3f} "
            f"| {ev['drain_s']:.1f} | {ev['duplicates']} |"
        )
    out += [
        "",
        f"Median ingest with the outbox on: {on['rps']:.0f} req/s; median of the paired "
        f"ratios {events['ingest_ratio']:.2f} x the idle outbox "
        f"(target >= {TARGETS['ingest_ratio']}: {'met' if met_ingest else '**not met**'}); "
        f"lag p99 {events['lag_p99_s']:.3f} s "
        f"(target <= {TARGETS['lag_p99_s']:.0f} s: {'met' if met_lag else '**not met**'}).",
        "",
    ]
    return out
