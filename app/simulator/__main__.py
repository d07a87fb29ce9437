"""`python -m app.simulator [serve options]`, or a command for a running simulator:
`inbound`, `fault`, `release`, `sent` (each calls its `/_sim/` controls over TLS)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import requests
from dotenv import load_dotenv
from gunicorn.app.base import BaseApplication

from app.simulator.server import SimConfig, create_simulator
from app.simulator.tls import CERT_FILE, ensure_certificate
from app.simulator.vonage_api import public_key_pem
from app.simulator.webhooks import RetryPolicy

DEFAULT_PORT = 8443
DEFAULT_CERT_DIR = "instance/simulator"
HOST = "127.0.0.1"


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name) or default


def serve_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m app.simulator",
        description="A local Vonage Messages API for development and tests.",
        epilog="Commands for a running simulator (each has --help): "
        "inbound (deliver an inbound SMS), fault (inject faults), release, sent.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--port", type=int, default=int(_env("SIM_PORT", str(DEFAULT_PORT))))
    parser.add_argument(
        "--webhook-base",
        default=_env("SIM_WEBHOOK_BASE", "http://127.0.0.1:3000"),
        help="the app's base URL; webhooks go to <base>/webhooks/status and /inbound",
    )
    parser.add_argument("--cert-dir", default=_env("SIM_CERT_DIR", DEFAULT_CERT_DIR))
    parser.add_argument("--application-id", default=_env("VONAGE_APPLICATION_ID"))
    parser.add_argument(
        "--private-key-path",
        default=None,
        help="default: VONAGE_PRIVATE_KEY (the PEM text), else VONAGE_PRIVATE_KEY_PATH",
    )
    parser.add_argument("--signature-secret", default=_env("VONAGE_SIGNATURE_SECRET"))
    parser.add_argument(
        "--api-key",
        default=_env("VONAGE_API_KEY", "simulator"),
        help="the `api_key` claim of signed webhooks (Vonage puts your account key there)",
    )
    parser.add_argument(
        "--number", default=_env("VONAGE_NUMBER", ""), help="the `to` of inbound SMS by default"
    )
    parser.add_argument("--delivery-delay", type=float, default=0.5, help="seconds between events")
    parser.add_argument("--webhook-attempts", type=int, default=5)
    parser.add_argument("--webhook-backoff", type=float, default=1.0, help="first retry pause (s)")
    parser.add_argument("--webhook-backoff-max", type=float, default=60.0)
    return parser


def _private_key(args: argparse.Namespace) -> str | None:
    if args.private_key_path:
        return Path(args.private_key_path).read_text()
    if os.environ.get("VONAGE_PRIVATE_KEY"):
        return os.environ["VONAGE_PRIVATE_KEY"].replace("\\n", "\n")
    if os.environ.get("VONAGE_PRIVATE_KEY_PATH"):
        return Path(os.environ["VONAGE_PRIVATE_KEY_PATH"]).read_text()
    return None


def serve(argv: list[str]) -> None:
    parser = serve_parser()
    args = parser.parse_args(argv)
    private_key = _private_key(args)
    missing = [
        name
        for name, value in (
            ("VONAGE_APPLICATION_ID (--application-id)", args.application_id),
            ("VONAGE_PRIVATE_KEY or VONAGE_PRIVATE_KEY_PATH (--private-key-path)", private_key),
            ("VONAGE_SIGNATURE_SECRET (--signature-secret)", args.signature_secret),
        )
        if not value
    ]
    if missing:
        parser.error("missing: " + ", ".join(missing))

    config = SimConfig(
        application_id=args.application_id,
        public_key=public_key_pem(private_key),
        signature_secret=args.signature_secret,
        api_key=args.api_key,
        webhook_base=args.webhook_base,
        number=args.number.removeprefix("+"),
        delivery_delay=args.delivery_delay,
        retry=RetryPolicy(args.webhook_attempts, args.webhook_backoff, args.webhook_backoff_max),
    )
    cert_path, key_path = ensure_certificate(Path(args.cert_dir).resolve())
    print(
        f"Vonage simulator on https://{HOST}:{args.port} (application {args.application_id})\n"
        f"  webhooks -> {args.webhook_base.rstrip('/')}/webhooks/status and /webhooks/inbound\n"
        "Point the app at it (in .env, or exported in every shell that runs the app):\n"
        f"  VONAGE_API_HOST={HOST}:{args.port}\n"
        f"  VONAGE_CA_BUNDLE={_shown(cert_path)}\n"
        "Then, for example:\n"
        f"  python -m app.simulator inbound --port {args.port} --from 14155550100 --text STOP\n"
        f"  python -m app.simulator fault --port {args.port} --status 503 --times 1",
        flush=True,
    )
    _SimulatorServer(config, args.port, cert_path, key_path).run()


def _shown(path: Path) -> Path:
    """`path` relative to the working directory when it is under it (no machine paths)."""
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


class _SimulatorServer(BaseApplication):
    """gunicorn in-process: one worker (the simulator's state lives in memory),
    64 threads, TLS, and HTTP keep-alive as Vonage's API has; werkzeug's
    development server closes every connection, which made each send pay a
    new TLS handshake and blurred what the benchmark measures."""

    def __init__(self, config: SimConfig, port: int, cert_path: Path, key_path: Path):
        self._sim_config = config
        self._options = {
            "bind": f"{HOST}:{port}",
            "workers": 1,
            "worker_class": "gthread",
            "threads": 64,
            "keepalive": 30,
            "certfile": str(cert_path),
            "keyfile": str(key_path),
            "graceful_timeout": 2,
            "loglevel": "warning",
            "control_socket_disable": True,
        }
        super().__init__()

    def load_config(self) -> None:
        for name, value in self._options.items():
            self.cfg.set(name, value)

    def load(self):
        return create_simulator(self._sim_config)


def _control_parser(command: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"python -m app.simulator {command}",
        description=description,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--port", type=int, default=int(_env("SIM_PORT", str(DEFAULT_PORT))), help="its port"
    )
    parser.add_argument(
        "--cert-dir",
        default=_env("SIM_CERT_DIR", DEFAULT_CERT_DIR),
        help="where the running simulator wrote its certificate",
    )
    return parser


def _control(args: argparse.Namespace, method: str, path: str, body: Any = None):
    """Call the running simulator's control endpoint over its TLS, trusting its cert.

    Returns the answer, or None after saying on stderr why there is none.
    """
    cert_path = Path(args.cert_dir).resolve() / CERT_FILE
    url = f"https://{HOST}:{args.port}{path}"
    try:
        return requests.request(method, url, json=body, verify=str(cert_path), timeout=30)
    except (requests.RequestException, OSError) as error:
        print(f"could not reach the simulator at {url}: {error}", file=sys.stderr)
        print("is it running? start it with: python -m app.simulator", file=sys.stderr)
        return None


def inbound(argv: list[str]) -> int:
    parser = _control_parser(
        "inbound", "Have the running simulator deliver a signed inbound SMS to the app."
    )
    parser.add_argument("--from", dest="sender", required=True, help="the texter's number")
    parser.add_argument("--text", default=None)
    parser.add_argument("--channel", default="sms", help="sms, mms, rcs, whatsapp, messenger, ...")
    parser.add_argument("--message-type", default="text", help="text, image, audio, ...")
    parser.add_argument("--media-url", default=None)
    parser.add_argument(
        "--webhook-version", default="v1", help="v1, or v0.1 to see a dead letter kept"
    )
    parser.add_argument("--to", dest="recipient", default=None, help="default: VONAGE_NUMBER")
    args = parser.parse_args(argv)
    body = {
        "from": args.sender,
        "text": args.text,
        "channel": args.channel,
        "message_type": args.message_type,
        "media_url": args.media_url,
        "webhook_version": args.webhook_version,
    }
    if args.recipient:
        body["to"] = args.recipient
    response = _control(args, "POST", "/_sim/inbound", body)
    if response is None:
        return 2
    print(json.dumps(response.json(), indent=2))
    return 0 if response.ok and response.json().get("response_status") == 200 else 1


def fault(argv: list[str]) -> int:
    parser = _control_parser(
        "fault",
        "Set the faults the running simulator injects into the next sends "
        "(or --clear them, or --show them).",
    )
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--clear", action="store_true", help="remove every fault")
    action.add_argument("--show", action="store_true", help="print the faults in force")
    parser.add_argument("--status", type=int, default=None, help="answer sends with it, e.g. 503")
    parser.add_argument(
        "--retry-after", type=int, default=None, help="Retry-After seconds with --status"
    )
    parser.add_argument("--latency-ms", type=int, default=0, help="wait before every answer")
    parser.add_argument(
        "--hang-seconds", type=float, default=0, help="hold answers so the client times out"
    )
    parser.add_argument(
        "--webhook-first", action="store_true", help="status webhooks before the answer"
    )
    parser.add_argument(
        "--duplicate-webhooks", action="store_true", help="deliver every webhook twice"
    )
    parser.add_argument(
        "--times", type=int, default=None, help="the next N sends only; none: until --clear"
    )
    args = parser.parse_args(argv)
    if args.clear:
        response = _control(args, "DELETE", "/_sim/faults")
    elif args.show:
        response = _control(args, "GET", "/_sim/faults")
    else:
        faults = {
            name: getattr(args, name)
            for name in (
                "status",
                "retry_after",
                "latency_ms",
                "hang_seconds",
                "webhook_first",
                "duplicate_webhooks",
                "times",
            )
        }
        response = _control(args, "POST", "/_sim/faults", faults)
    return _print_answer(response)


def release(argv: list[str]) -> int:
    args = _control_parser("release", "Let sends held by --hang-seconds go on now.").parse_args(
        argv
    )
    return _print_answer(_control(args, "POST", "/_sim/release"))


def sent(argv: list[str]) -> int:
    parser = _control_parser("sent", "What the running simulator received: one line per send call.")
    parser.add_argument("--json", action="store_true", help="print its JSON instead")
    args = parser.parse_args(argv)
    response = _control(args, "GET", "/_sim/messages")
    if response is None or not response.ok or args.json:
        return _print_answer(response)
    for entry in response.json()["messages"]:
        request = entry["request"] if isinstance(entry["request"], dict) else {}
        print(
            f"{entry['received_at'][:19]}Z {entry['response_status']} "
            f"to={request.get('to', '?')} message_uuid={entry['message_uuid'] or '-'}"
        )
    return 0


def _print_answer(response) -> int:
    if response is None:
        return 2
    try:
        print(json.dumps(response.json(), indent=2))
    except ValueError:
        print(response.text)
    return 0 if response.ok else 1


COMMANDS = {"inbound": inbound, "fault": fault, "release": release, "sent": sent}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    load_dotenv(Path.cwd() / ".env", override=False)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    if argv[:1] and argv[0] in COMMANDS:
        return COMMANDS[argv[0]](argv[1:])
    serve(argv[1:] if argv[:1] == ["serve"] else argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
