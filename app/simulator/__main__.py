"""`python -m app.simulator [serve options]` or `python -m app.simulator inbound ...`."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

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
        epilog="Inject an inbound SMS into a running simulator: "
        "python -m app.simulator inbound --from 14155550100 --text STOP",
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
        "Point the app at it:\n"
        f"  export REQUESTS_CA_BUNDLE={cert_path}\n"
        f"  export VONAGE_API_HOST={HOST}:{args.port}\n"
        "Send an inbound SMS to the app:\n"
        f"  python -m app.simulator inbound --port {args.port} --from 14155550100 --text STOP",
        flush=True,
    )
    _SimulatorServer(config, args.port, cert_path, key_path).run()


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


def inbound(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m app.simulator inbound",
        description="Have the running simulator deliver a signed inbound SMS to the app.",
    )
    parser.add_argument("--from", dest="sender", required=True)
    parser.add_argument("--text", default=None)
    parser.add_argument("--channel", default="sms", help="sms, mms, rcs, whatsapp, messenger, ...")
    parser.add_argument("--message-type", default="text", help="text, image, audio, ...")
    parser.add_argument("--media-url", default=None)
    parser.add_argument(
        "--webhook-version", default="v1", help="v1, or v0.1 to see a dead letter kept"
    )
    parser.add_argument("--to", dest="recipient", default=None, help="default: VONAGE_NUMBER")
    parser.add_argument("--port", type=int, default=int(_env("SIM_PORT", str(DEFAULT_PORT))))
    parser.add_argument("--cert-dir", default=_env("SIM_CERT_DIR", DEFAULT_CERT_DIR))
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
    cert_path = Path(args.cert_dir).resolve() / CERT_FILE
    url = f"https://{HOST}:{args.port}/_sim/inbound"
    try:
        response = requests.post(url, json=body, verify=str(cert_path), timeout=30)
    except (requests.RequestException, OSError) as error:
        print(f"could not reach the simulator at {url}: {error}", file=sys.stderr)
        return 2
    print(json.dumps(response.json(), indent=2))
    return 0 if response.ok and response.json().get("response_status") == 200 else 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    load_dotenv(Path.cwd() / ".env", override=False)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    if argv[:1] == ["inbound"]:
        return inbound(argv[1:])
    serve(argv[1:] if argv[:1] == ["serve"] else argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
