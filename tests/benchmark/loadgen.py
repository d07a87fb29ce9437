"""wrk driving `replay.lua`: one bounded run, its numbers as a dict."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

SCRIPT = Path(__file__).with_name("replay.lua")
MARKER = "BENCH_JSON "


class LoadError(RuntimeError):
    pass


@dataclass
class RunResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    statuses: dict[str, int]
    ok: int
    not_ok: int
    socket_errors: int
    reused: int

    def to_dict(self) -> dict:
        return asdict(self)


def wrk_binary() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise LoadError("wrk is not installed (apt-get install wrk)")
    return path


def run(
    url: str,
    requests_file: Path,
    *,
    connections: int,
    threads: int,
    seconds: float,
    ok_status: int,
) -> RunResult:
    """Replay `requests_file` against `url` for `seconds`; `ok_status` is the expected answer."""
    threads = max(1, min(threads, connections))
    args = [
        wrk_binary(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout", "5s",
        "-s", str(SCRIPT),
        url,
        "--", str(requests_file), str(threads),
    ]  # fmt: skip
    completed = subprocess.run(
        args, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    line = next((x for x in completed.stdout.splitlines() if x.startswith(MARKER)), None)
    if completed.returncode != 0 or line is None:
        output = completed.stdout + completed.stderr
        raise LoadError(f"wrk failed ({completed.returncode}): {output}")
    data = json.loads(line[len(MARKER) :])
    latency = data["latency_us"]
    errors = data["errors"]
    statuses = {code: count for code, count in sorted(data["statuses"].items())}
    ok = statuses.get(str(ok_status), 0)
    duration = data["duration_us"] / 1e6
    return RunResult(
        requests=data["requests"],
        seconds=round(duration, 3),
        rps=round(ok / duration, 1),
        p50_ms=latency["p50"] / 1000,
        p90_ms=latency["p90"] / 1000,
        p99_ms=latency["p99"] / 1000,
        max_ms=latency["max"] / 1000,
        statuses=statuses,
        ok=ok,
        not_ok=sum(statuses.values()) - ok,
        socket_errors=errors["connect"] + errors["read"] + errors["write"] + errors["timeout"],
        reused=data["reused"],
    )
