"""Medians, ratios, targets, and the markdown table."""

from __future__ import annotations

import os
import platform
import statistics
from typing import Any

TARGETS = {
    "webhook_ratio": 0.5,
    "webhook_p99_ms": 30.0,
    "growth_ratio": 0.9,
    "send_ideal_ratio": 0.9,
    "send_added_p50_ms": 5.0,
}


def machine() -> dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            models = [line.split(":", 1)[1] for line in cpuinfo if line.startswith("model name")]
        model = models[0].strip() if models else ""
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model or platform.processor(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def median(name: str) -> float:
        return round(statistics.median(run[name] for run in runs), 3)

    return {
        "rps": median("rps"),
        "p50_ms": median("p50_ms"),
        "p99_ms": median("p99_ms"),
        "not_ok": sum(run["not_ok"] + run["socket_errors"] for run in runs),
        "reused": sum(run["reused"] for run in runs),
    }


def _mark(met: bool) -> str:
    return "yes" if met else "**no**"


def _repeats(runs: list[dict[str, Any]]) -> str:
    return " / ".join(f"{run['rps']:.0f}" for run in runs)


def markdown(results: dict[str, Any]) -> str:
    out: list[str] = []
    info = results["machine"]
    settings = results["settings"]
    out.append(
        f"Machine: {info['nproc']} CPUs ({info['cpu_model']}), Python {info['python']}; "
        f"gunicorn {settings['gunicorn']}; {settings['connections']} connections, "
        f"{settings['duration_s']:.0f} s per run, {settings['repeats']} repeats "
        "(each listed, median used)."
    )
    out.append("")
    for key, title in (
        ("webhooks", "### Signed webhook ingest vs. the do-nothing baseline"),
        ("webhooks_postgres", "### The same on PostgreSQL (synchronous_commit=on)"),
    ):
        if results.get(key):
            out.extend(_webhook_table(results[key], title))
    growth = results.get("growth")
    if growth:
        out.append("### Growth: mixed inbound + status webhooks vs. stored messages")
        out.append("")
        out.append(
            "| stored messages | req/s per repeat | median req/s | vs. first size | p50 ms "
            "| p99 ms | non-200 | target | met |"
        )
        out.append("|---|---|---|---|---|---|---|---|---|")
        for entry in growth["sizes"]:
            med = entry["median"]
            met = entry["ratio"] >= TARGETS["growth_ratio"]
            out.append(
                f"| {entry['size']:,} (actual {entry['rows_at_start']:,}) "
                f"| {_repeats(entry['runs'])} | {med['rps']:.0f} | {entry['ratio']:.2f} "
                f"| {med['p50_ms']:.1f} | {med['p99_ms']:.1f} | {med['not_ok']} "
                f"| within 10% | {_mark(met)} |"
            )
            floor = entry.get("floor")
            if floor:
                fmed = floor["median"]
                out.append(
                    f"| {entry['size']:,}, floor | {_repeats(floor['runs'])} "
                    f"| {fmed['rps']:.0f} | {floor['ratio']:.2f} | {fmed['p50_ms']:.1f} "
                    f"| {fmed['p99_ms']:.1f} | {fmed['not_ok']} | - | - |"
                )
        out.append("")
    send = results.get("send")
    if send:
        out.append(
            f"### POST /send-sms against the simulator, {send['latency_ms']} ms injected latency"
        )
        out.append("")
        out.append(
            "| clients | ideal req/s | req/s per repeat | median req/s | of ideal | p50 ms "
            "| added at p50 ms | added over simulator p50 ms | p99 ms | non-202 | target | met |"
        )
        out.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for entry in send["levels"]:
            med = entry["median"]
            met = (
                entry["of_ideal"] >= TARGETS["send_ideal_ratio"]
                and entry["added_p50_ms"] <= TARGETS["send_added_p50_ms"]
            )
            out.append(
                f"| {entry['clients']} | {entry['ideal_rps']:.0f} | {_repeats(entry['runs'])} "
                f"| {med['rps']:.1f} | {entry['of_ideal']:.0%} | {med['p50_ms']:.1f} "
                f"| {entry['added_p50_ms']:.1f} | {entry['added_over_simulator_p50_ms']:.1f} "
                f"| {med['p99_ms']:.1f} | {med['not_ok']} "
                f"| >= 90%, <= {TARGETS['send_added_p50_ms']:.0f} ms | {_mark(met)} |"
            )
            floor = entry.get("floor")
            if floor:
                fmed = floor["median"]
                out.append(
                    f"| {entry['clients']}, floor | {entry['ideal_rps']:.0f} "
                    f"| {_repeats(floor['runs'])} | {fmed['rps']:.1f} | {floor['of_ideal']:.0%} "
                    f"| {fmed['p50_ms']:.1f} | {floor['added_p50_ms']:.1f} "
                    f"| {fmed['p50_ms'] - send['simulator_direct_p50_ms']:.1f} "
                    f"| {fmed['p99_ms']:.1f} | {fmed['not_ok']} | - | - |"
                )
        out.append("")
        out.append(
            f"The simulator alone answers a send in {send['simulator_direct_p50_ms']:.1f} ms "
            "at p50 (called directly, one at a time); 'added over simulator' subtracts that. "
            + (
                "A 'floor' row is tests/benchmark/floor_app.py: the row committed, the signed "
                "call, the outcome committed, nothing else. "
                if any("floor" in e for e in send["levels"])
                else ""
            )
            + send["note"]
        )
        out.append("")
    if results.get("events"):
        from tests.benchmark.events import markdown as events_markdown

        out += events_markdown(results["events"])
    out.append(f"Total run time {results['runtime_s']:.0f} s. Targets are printed, never asserted.")
    return "\n".join(out)


def _webhook_table(webhooks: dict[str, Any], title: str) -> list[str]:
    out: list[str] = []
    base = webhooks["baseline"]["median"]
    out.append(title)
    out.append("")
    out.append(
        "| scenario | req/s per repeat | median req/s | x baseline | p50 ms | p99 ms "
        "| non-200 | target | met |"
    )
    out.append("|---|---|---|---|---|---|---|---|---|")
    out.append(
        f"| baseline (200, nothing) | {_repeats(webhooks['baseline']['runs'])} "
        f"| {base['rps']:.0f} | 1.00 | {base['p50_ms']:.1f} | {base['p99_ms']:.1f} "
        f"| {base['not_ok']} | - | - |"
    )
    floor = webhooks.get("floor")
    if floor:
        med = floor["median"]
        out.append(
            f"| floor (verify + one durable insert) | {_repeats(floor['runs'])} "
            f"| {med['rps']:.0f} | {floor['ratio']:.2f} | {med['p50_ms']:.1f} "
            f"| {med['p99_ms']:.1f} | {med['not_ok']} | - | - |"
        )
    for name in ("inbound", "status"):
        entry = webhooks[name]
        med = entry["median"]
        met = (
            entry["ratio"] >= TARGETS["webhook_ratio"]
            and med["p99_ms"] <= TARGETS["webhook_p99_ms"]
        )
        out.append(
            f"| /webhooks/{name} | {_repeats(entry['runs'])} | {med['rps']:.0f} "
            f"| {entry['ratio']:.2f} | {med['p50_ms']:.1f} | {med['p99_ms']:.1f} "
            f"| {med['not_ok']} | >= {TARGETS['webhook_ratio']} x, p99 <= "
            f"{TARGETS['webhook_p99_ms']:.0f} ms | {_mark(met)} |"
        )
    out.append("")
    if floor:
        out.append(
            "The floor (tests/benchmark/floor_app.py) only verifies the signature, reads the "
            "JSON and inserts the row into the service's own table through its group commit: "
            f"inbound reaches {webhooks['inbound']['median']['rps'] / floor['median']['rps']:.2f} "
            "of it."
        )
        out.append("")
    return out
