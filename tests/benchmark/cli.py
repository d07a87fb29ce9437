"""The command: start everything, run the scenarios, print the table, write JSON.

Every process it starts is stopped and its temp dir removed at the end, also
when a run fails or the command is interrupted (Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.benchmark import events, loadgen, payloads, report, seed, stack
from tests.integration.conftest import fresh_postgres_database
from tests.support import free_port

API_KEY = "benchmark-api-key-0123456789abcdef"
SIGNATURE_SECRET = "benchmark-signature-secret-0123456789abcdef"
APPLICATION_ID = "22222222-3333-4444-8555-666666666666"
WEBHOOK_MAX_AGE_SECONDS = 300  # the service's default, deliberately not raised
SEND_LATENCY_MS = 200
BASELINE_APP = "tests.benchmark.baseline_app:create_app()"
FLOOR_APP = "tests.benchmark.floor_app:create_app()"
SERVICE_APP = "app:create_app()"
SEND_NOTE = (
    "The simulator's status callbacks are parked (--delivery-delay 3600) during the send "
    "runs, so its webhook traffic does not compete for the CPUs; webhook ingest is "
    "measured on its own above."
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.benchmark",
        description="Bounded load benchmark on 127.0.0.1: webhook ingest, growth, /send-sms.",
    )
    parser.add_argument("--out", type=Path, default=None, help="write the JSON results here")
    parser.add_argument(
        "--quick", action="store_true", help="sizes 0/10k/100k and 5 s runs (about 3 minutes)"
    )
    parser.add_argument(
        "--sizes", default=None, help="comma-separated stored-message counts for the growth runs"
    )
    parser.add_argument("--duration", type=float, default=None, help="seconds per run")
    parser.add_argument("--repeats", type=int, default=2, help="runs per scenario (at least 2)")
    parser.add_argument("--connections", type=int, default=16, help="webhook connections")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--clients", default="1,8,32,64", help="/send-sms concurrency levels")
    parser.add_argument(
        "--only",
        default="webhooks,growth,send,events",
        help="comma-separated subset of: webhooks, growth, send, events",
    )
    parser.add_argument(
        "--postgres",
        default=None,
        metavar="URL",
        help="also measure webhook ingest on this PostgreSQL server (SQLAlchemy URL; a fresh "
        "database sms_benchmark, and sms_benchmark_floor for the floor, is created on it and "
        "dropped afterwards)",
    )
    parser.add_argument(
        "--no-floor",
        dest="floor",
        action="store_false",
        help="skip the floor (floor_app.py: verify + one durable insert) in the webhook runs",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, databases)")
    args = parser.parse_args(argv)
    if args.repeats < 2:
        parser.error("--repeats must be at least 2")
    if args.duration is None:
        args.duration = 5.0 if args.quick else 10.0
    if args.sizes is None:
        args.sizes = "0,10000,100000" if args.quick else "0,100000,1000000"
    try:
        args.sizes = [int(size.replace("_", "")) for size in args.sizes.split(",")]
        args.clients = [int(clients) for clients in args.clients.split(",")]
    except ValueError:
        parser.error("--sizes and --clients take comma-separated whole numbers")
    args.only = {name.strip() for name in args.only.split(",")}
    unknown = args.only - {"webhooks", "growth", "send", "events"}
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    return args


def _interrupt(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


class Benchmark:
    def __init__(self, args: argparse.Namespace, workdir: Path, processes: stack.Processes):
        self.args = args
        self.workdir = workdir
        self.processes = processes
        self.runs = 0
        self.best_baseline_rps = 0.0
        self.key_path = workdir / "private.key"
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.private_key = key
        self.key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        self.key_path.chmod(0o600)  # production refuses a key file others can read
        self.cert_dir = workdir / "simulator"
        self.sim_port = free_port()

    def log(self, message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    def service_env(self, database: Path | str) -> dict[str, str]:
        return {
            "APP_ENV": "production",
            "DATABASE_URL": database if isinstance(database, str) else f"sqlite:///{database}",
            "API_KEYS": API_KEY,
            "VONAGE_APPLICATION_ID": APPLICATION_ID,
            "VONAGE_PRIVATE_KEY_PATH": str(self.key_path),
            "VONAGE_NUMBER": "+" + payloads.SERVICE_NUMBER,
            "VONAGE_SIGNATURE_SECRET": SIGNATURE_SECRET,
            "VONAGE_API_HOST": f"127.0.0.1:{self.sim_port}",
            "REQUESTS_CA_BUNDLE": str(self.cert_dir / "cert.pem"),
            "WEBHOOK_MAX_AGE_SECONDS": str(WEBHOOK_MAX_AGE_SECONDS),
            "SEND_SMS_RATE_LIMIT": "100000/second",
            "SEND_SMS_DAILY_LIMIT": "0",
            "VONAGE_MAX_SENDS_PER_SECOND": "100000",
        }

    def start_service(self, name: str, database: Path | str, app: str = SERVICE_APP) -> int:
        port = free_port()
        # The Procfile's order: release (migrate), then web.
        stack.migrate(self.processes, self.service_env(database))
        stack.gunicorn(self.processes, name, app, port, self.service_env(database))
        self.log(f"{name} up on 127.0.0.1:{port}")
        return port

    # -- webhooks ---------------------------------------------------------

    def webhook_count(self) -> int:
        """Enough distinct requests that none is sent twice, judged by the baseline."""
        expected = max(self.best_baseline_rps, 2000.0) * self.args.duration * 1.3
        return int(math.ceil(expected))

    def webhook_run(
        self, port: int, database: Path | str | None, kinds: tuple[str, ...], label: str
    ) -> dict[str, Any]:
        self.runs += 1
        path = self.workdir / "requests.bin"
        batch = payloads.webhook_requests(
            path,
            kinds=kinds,
            count=self.webhook_count(),
            port=port,
            secret=SIGNATURE_SECRET,
            seed=self.runs,
        )
        if isinstance(database, str) and batch.status_targets:
            seed.insert_messages_url(database, batch.status_targets)
        elif database is not None and batch.status_targets:
            seed.insert_messages(str(database), batch.status_targets)
        result = loadgen.run(
            f"http://127.0.0.1:{port}",
            path,
            connections=self.args.connections,
            threads=self.args.threads,
            seconds=self.args.duration,
            ok_status=200,
        ).to_dict()
        result["requests_generated"] = batch.count
        result["max_iat_age_s"] = round(time.time() - batch.oldest_iat, 1)
        result["iat_in_window"] = result["max_iat_age_s"] < WEBHOOK_MAX_AGE_SECONDS
        path.unlink()
        self.log(
            f"{label}: {result['rps']:.0f} req/s, p50 {result['p50_ms']:.1f} ms, "
            f"p99 {result['p99_ms']:.1f} ms, statuses {result['statuses']}, "
            f"reused {result['reused']}, oldest iat {result['max_iat_age_s']} s"
        )
        return result

    def baseline_run(self, port: int) -> dict[str, Any]:
        result = self.webhook_run(port, None, ("inbound", "status"), "baseline")
        self.best_baseline_rps = max(self.best_baseline_rps, result["rps"])
        return result

    def webhooks(
        self,
        baseline_port: int,
        database: Path | str | None = None,
        floor_database: Path | str | None = None,
    ) -> dict[str, Any]:
        """Each kind against the baseline, and inbound against the floor (floor_app.py);
        on SQLite, or on `database` and `floor_database` (PostgreSQL URLs)."""
        name = "service-webhooks" if database is None else "service-webhooks-postgres"
        database = database or self.workdir / "webhooks.db"
        port = self.start_service(name, database)
        floor_port = None
        if self.args.floor:
            floor_database = floor_database or self.workdir / "floor.db"
            floor_port = self.start_service(f"{name}-floor", floor_database, FLOOR_APP)
        runs: dict[str, list] = {"baseline": [], "floor": [], "inbound": [], "status": []}
        for _ in range(self.args.repeats):
            runs["baseline"].append(self.baseline_run(baseline_port))
            if floor_port is not None:
                runs["floor"].append(
                    self.webhook_run(floor_port, None, ("inbound",), f"{name}/floor")
                )
            for kind in ("inbound", "status"):
                runs[kind].append(self.webhook_run(port, database, (kind,), f"{name}/{kind}"))
        base = report.summarize(runs["baseline"])
        out: dict[str, Any] = {"baseline": {"runs": runs["baseline"], "median": base}}
        if runs["floor"]:
            floor = report.summarize(runs["floor"])
            out["floor"] = {
                "runs": runs["floor"],
                "median": floor,
                "ratio": round(floor["rps"] / base["rps"], 3),
            }
        for kind in ("inbound", "status"):
            median = report.summarize(runs[kind])
            out[kind] = {
                "runs": runs[kind],
                "median": median,
                "ratio": round(median["rps"] / base["rps"], 3),
            }
        return out

    # -- growth -----------------------------------------------------------

    def growth(self) -> dict[str, Any]:
        database = self.workdir / "growth.db"
        port = self.start_service("service-growth", database)
        # The floor on the same database: what the table's growth costs any writer.
        floor_port = (
            self.start_service("growth-floor", database, FLOOR_APP) if self.args.floor else None
        )
        seeded = 0
        sizes = []
        for size in sorted(self.args.sizes):
            if size > seeded:
                started = time.monotonic()
                history = seed.history(size - seeded, seed=size, now=datetime.now(UTC))
                seeded += seed.insert_messages(str(database), history)
                self.log(f"seeded {seeded:,} messages in {time.monotonic() - started:.1f} s")
            rows = seed.count_messages(str(database))
            runs, floor_runs = [], []
            for _ in range(self.args.repeats):
                runs.append(
                    self.webhook_run(port, database, ("inbound", "status"), f"growth {size:,}")
                )
                if floor_port is not None:
                    floor_runs.append(
                        self.webhook_run(
                            floor_port, database, ("inbound", "status"), f"floor {size:,}"
                        )
                    )
            sizes.append({"size": size, "rows_at_start": rows, "runs": runs})
            if floor_runs:
                sizes[-1]["floor"] = {"runs": floor_runs}
        first = first_floor = None
        for entry in sizes:
            entry["median"] = report.summarize(entry["runs"])
            first = first or entry["median"]["rps"]
            entry["ratio"] = round(entry["median"]["rps"] / first, 3)
            if "floor" in entry:
                floor = entry["floor"]
                floor["median"] = report.summarize(floor["runs"])
                first_floor = first_floor or floor["median"]["rps"]
                floor["ratio"] = round(floor["median"]["rps"] / first_floor, 3)
        return {"kinds": ["inbound", "status"], "sizes": sizes}

    # -- send -------------------------------------------------------------

    def send(self) -> dict[str, Any]:
        database = self.workdir / "send.db"
        port = self.start_service("service-send", database)
        cert = str(self.cert_dir / "cert.pem")
        response = requests.post(
            f"https://127.0.0.1:{self.sim_port}/_sim/faults",
            json={"latency_ms": SEND_LATENCY_MS},
            verify=cert,
            timeout=10,
        )
        response.raise_for_status()
        simulator_p50 = self.simulator_p50(cert)
        self.log(f"simulator alone (direct, sequential): p50 {simulator_p50:.1f} ms")
        clients_max = max(self.args.clients)
        self.send_run(port, clients_max, 2.0, "warm-up (connection pool)")
        floor_port = None
        if self.args.floor:
            floor_port = self.start_service("send-floor", self.workdir / "send-floor.db", FLOOR_APP)
            self.send_run(floor_port, clients_max, 2.0, "floor warm-up (connection pool)")
        levels = []
        for clients in self.args.clients:
            runs, floor_runs = [], []
            for _ in range(self.args.repeats):
                runs.append(
                    self.send_run(port, clients, self.args.duration, f"send-sms x{clients}")
                )
                if floor_port is not None:
                    floor_runs.append(
                        self.send_run(floor_port, clients, self.args.duration, f"floor x{clients}")
                    )
            median = report.summarize(runs)
            ideal = clients / (SEND_LATENCY_MS / 1000)
            level = {
                "clients": clients,
                "ideal_rps": ideal,
                "runs": runs,
                "median": median,
                "of_ideal": round(median["rps"] / ideal, 3),
                "added_p50_ms": round(median["p50_ms"] - SEND_LATENCY_MS, 2),
                "added_over_simulator_p50_ms": round(median["p50_ms"] - simulator_p50, 2),
            }
            if floor_runs:
                floor = report.summarize(floor_runs)
                level["floor"] = {
                    "runs": floor_runs,
                    "median": floor,
                    "of_ideal": round(floor["rps"] / ideal, 3),
                    "added_p50_ms": round(floor["p50_ms"] - SEND_LATENCY_MS, 2),
                }
            levels.append(level)
        return {
            "latency_ms": SEND_LATENCY_MS,
            "simulator_direct_p50_ms": round(simulator_p50, 2),
            "levels": levels,
            "note": SEND_NOTE,
        }

    def simulator_p50(self, cert: str, calls: int = 15) -> float:
        """The simulator's own answer time for one send, called directly, one at a time.

        What the service adds is its p50 minus this, as well as minus the bare 200 ms.
        """
        url = f"https://127.0.0.1:{self.sim_port}/v1/messages"
        body = {
            "message_type": "text",
            "channel": "sms",
            "to": "14155550100",
            "from": payloads.SERVICE_NUMBER,
            "text": "calibration",
        }
        timings = []
        with requests.Session() as session:
            for _ in range(calls):
                now = int(time.time())
                claims = {
                    "application_id": APPLICATION_ID,
                    "iat": now,
                    "exp": now + 900,
                    "jti": str(uuid.uuid4()),
                }
                token = jwt.encode(claims, self.private_key, algorithm="RS256")
                started = time.perf_counter()
                response = session.post(
                    url,
                    json=body,
                    headers={"Authorization": f"Bearer {token}"},
                    verify=cert,
                    timeout=10,
                )
                timings.append((time.perf_counter() - started) * 1000)
                response.raise_for_status()
        return statistics.median(timings)

    def send_run(self, port: int, clients: int, seconds: float, label: str) -> dict[str, Any]:
        self.runs += 1
        path = self.workdir / "send.bin"
        ideal = clients / (SEND_LATENCY_MS / 1000)
        batch = payloads.send_requests(
            path, count=int(ideal * seconds * 1.5) + 50, port=port, api_key=API_KEY, seed=self.runs
        )
        result = loadgen.run(
            f"http://127.0.0.1:{port}",
            path,
            connections=clients,
            threads=self.args.threads,
            seconds=seconds,
            ok_status=202,
        ).to_dict()
        result["requests_generated"] = batch.count
        path.unlink()
        self.log(
            f"{label}: {result['rps']:.1f} req/s (ideal {ideal:.0f}), "
            f"p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, "
            f"statuses {result['statuses']}"
        )
        return result

    def run(self) -> dict[str, Any]:
        started = time.monotonic()
        results: dict[str, Any] = {
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": "python -m tests.benchmark " + " ".join(sys.argv[1:]),
            "machine": report.machine(),
            "settings": {
                "gunicorn": "-c python:app.gunicorn_conf, "
                + (
                    ", ".join(f"{k}={v}" for k, v in stack.gunicorn_settings().items())
                    or "WEB_CONCURRENCY and GUNICORN_THREADS unset (2 workers x 96 threads)"
                ),
                "connections": self.args.connections,
                "wrk_threads": self.args.threads,
                "duration_s": self.args.duration,
                "repeats": self.args.repeats,
                "webhook_max_age_s": WEBHOOK_MAX_AGE_SECONDS,
                "database": "SQLite (the default), WAL, synchronous=FULL as the service sets it",
            },
            "targets": report.TARGETS,
        }
        stack.simulator(
            self.processes,
            self.sim_port,
            cert_dir=self.cert_dir,
            webhook_base="http://127.0.0.1:9",
            env={
                "VONAGE_APPLICATION_ID": APPLICATION_ID,
                "VONAGE_PRIVATE_KEY_PATH": str(self.key_path),
                "VONAGE_SIGNATURE_SECRET": SIGNATURE_SECRET,
                "VONAGE_NUMBER": payloads.SERVICE_NUMBER,
            },
        )
        baseline_port = free_port()
        stack.gunicorn(self.processes, "baseline", BASELINE_APP, baseline_port, {})
        self.log(f"simulator on {self.sim_port}, baseline on {baseline_port}")
        # Warm the baseline once, and size the request files from its rate.
        self.baseline_run(baseline_port)
        if "webhooks" in self.args.only:
            results["webhooks"] = self.webhooks(baseline_port)
            if self.args.postgres:
                with (
                    fresh_postgres_database(self.args.postgres, "sms_benchmark") as url,
                    fresh_postgres_database(self.args.postgres, "sms_benchmark_floor") as floor,
                ):
                    results["webhooks_postgres"] = self.webhooks(baseline_port, url, floor)
        if "growth" in self.args.only:
            results["growth"] = self.growth()
        if "send" in self.args.only:
            results["send"] = self.send()
        if "events" in self.args.only:
            results["events"] = events.run(self, API_KEY)
        results["runtime_s"] = round(time.monotonic() - started, 1)
        return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    workdir = Path(tempfile.mkdtemp(prefix="sms-benchmark-"))
    processes = stack.Processes(workdir)
    try:
        results = Benchmark(args, workdir, processes).run()
    except (stack.StartError, loadgen.LoadError) as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        return 1
    finally:
        processes.stop_all()
        if args.keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(report.markdown(results))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
        print(f"\nJSON results: {args.out}", file=sys.stderr)
    return 0
