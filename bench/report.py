"""Tables side by side, the targets (PASS/MISS), and the machine the figures came from."""

from __future__ import annotations

import math
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Run = dict[str, Any]

#: (label, key, format, direction) — direction says which way "better" points for the ratio:
#: "up" → ratio = teledispatch / baseline; "down" → ratio = baseline / teledispatch.
Metric = tuple[str, str, str, str]

THROUGHPUT_METRICS: list[Metric] = [
    ("messages", "n", "{:,.0f}", ""),
    ("messages/s (enqueue → last outcome)", "messages_per_s", "{:,.0f}", "up"),
    ("enqueue time s", "enqueue_s", "{:.1f}", ""),
    ("HTTP requests / message", "requests_per_message", "{:.4f}", "down"),
    ("worker CPU s / 1,000 messages", "worker_cpu_s_per_1k", "{:.3f}", "down"),
    ("  producer CPU s / 1,000", "producer_cpu_s_per_1k", "{:.3f}", "down"),
    ("  PostgreSQL server CPU s / 1,000", "postgresql_cpu_s_per_1k", "{:.3f}", "down"),
    ("  simulator CPU s / 1,000", "simulator_cpu_s_per_1k", "{:.3f}", "down"),
    ("  Redis CPU s / 1,000", "redis_cpu_s_per_1k", "{:.3f}", "down"),
    ("  all of the above CPU s / 1,000", "total_cpu_s_per_1k", "{:.3f}", "down"),
    ("worker peak RSS MB (largest process)", "worker_peak_rss_mb", "{:.0f}", ""),
    ("worker peak RSS MB (whole tree)", "worker_tree_peak_rss_mb", "{:.0f}", ""),
    ("producer peak RSS MB", "producer_peak_rss_mb", "{:.0f}", ""),
]
LATENCY_METRICS: list[Metric] = [
    ("jobs (single recipient)", "n", "{:,.0f}", ""),
    ("rate jobs/s", "rate_per_s", "{:.0f}", ""),
    ("linger_ms (teledispatch account)", "linger_ms", "{}", ""),
    ("p50 ms enqueue → provider", "p50_ms", "{:,.0f}", ""),
    ("p99 ms enqueue → provider", "p99_ms", "{:,.0f}", ""),
    ("HTTP requests / message", "requests_per_message", "{:.3f}", ""),
]
OUTAGE_METRICS: list[Metric] = [
    ("messages (enqueued before the outage)", "n", "{:,.0f}", ""),
    ("outage seconds (every request 503)", "outage_s", "{:.0f}", ""),
    ("requests sent during the outage", "requests_during_outage", "{:,}", "down"),
    ("messages failed", "failed", "{:,}", ""),
    ("s from recovery to first accepted", "recovery_to_first_s", "{:.2f}", ""),
    ("s from recovery to full rate", "recovery_to_full_rate_s", "{:.2f}", ""),
    ("s from first accepted to full rate", "first_to_full_rate_s", "{:.2f}", ""),
]
FAILOVER_METRICS: list[Metric] = [
    ("messages (route: nxcloud, then uspeedo)", "n", "{:,.0f}", ""),
    ("requests to NXCloud (down)", "requests_to_down", "{:,}", ""),
    ("messages failed", "failed", "{:,}", ""),
    ("accepted by USpeedo", "accepted", "{:,}", ""),
    ("accepted twice", "accepted_twice", "{:,}", ""),
    ("s from first request to first failover", "to_first_failover_s", "{:.2f}", ""),
    ("s until every message failed over", "to_all_failed_over_s", "{:.2f}", ""),
]
MIXED_METRICS: list[Metric] = [
    ("OTP jobs (single recipient)", "n", "{:,.0f}", ""),
    ("campaign messages enqueued", "campaign_n", "{:,.0f}", ""),
    ("limit messages/s", "limit_mps", "{:,.0f}", ""),
    ("OTP p50 ms enqueue → provider", "otp_p50_ms", "{:,.0f}", "down"),
    ("OTP p99 ms enqueue → provider", "otp_p99_ms", "{:,.0f}", "down"),
    ("OTP p99 in request slots (0.5 s)", "otp_p99_slots", "{:.2f}", ""),
    ("campaign messages/s while OTPs arrive", "campaign_mps", "{:,.1f}", "up"),
    ("campaign ÷ (limit − OTP rate)", "campaign_share", "{:.1%}", "up"),
    ("OTPs not at the provider after 120 s", "otps_not_arrived", "{:,}", ""),
]
PROVIDER_METRICS: list[Metric] = [
    ("messages", "n", "{:,.0f}", ""),
    ("worker processes (workers × pool)", "processes", "{}", ""),
    ("messages/s (enqueue → last outcome)", "messages_per_s", "{:,.0f}", "up"),
    ("requests/s at the provider (busy span)", "requests_per_s", "{:.2f}", ""),
    ("utilisation: requests/s ÷ allowed", "utilisation", "{:.1%}", "up"),
    ("max requests in any 1-s window", "max_in_window", "{}", ""),
    ("1-s windows over the limit", "windows_over", "{:,}", ""),
    ("throttled requests (13008)", "throttled_requests", "{:,}", ""),
]


def machine() -> dict[str, Any]:
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "ram_gb": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "loadavg_at_start": os.getloadavg(),
    }


def _fmt(fmt: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return fmt.format(value)


def ratio(td: Run, bl: Run, key: str, direction: str) -> float | None:
    a, b = td.get(key), bl.get(key)
    if not isinstance(a, int | float) or not isinstance(b, int | float) or not direction:
        return None
    num, den = (a, b) if direction == "up" else (b, a)
    return num / den if den else None


def table(title: str, runs: dict[str, Run], metrics: list[Metric], note: str = "") -> str:
    td, bl = runs.get("teledispatch", {}), runs.get("baseline", {})
    rows = [(f"{'metric':<40}{'teledispatch':>14}{'baseline':>14}{'ratio':>10}")]
    for label, key, fmt, direction in metrics:
        r = ratio(td, bl, key, direction)
        ratio_text = "-" if r is None else f"{r:,.1f}×"
        rows.append(
            f"{label:<40}{_fmt(fmt, td.get(key)):>14}{_fmt(fmt, bl.get(key)):>14}{ratio_text:>10}"
        )
    for name, run in (("teledispatch", td), ("baseline", bl)):
        if "error" in run:
            rows.append(f"  {name} FAILED: {run['error'].splitlines()[0]}")
        elif "skipped" in run:
            rows.append(f"  {name}: {run['skipped']}")
        elif run.get("partial"):
            rows.append(
                f"  {name}: still running after {run['seconds']:.0f}s; "
                f"measured on the {run['n']:,} outcomes committed by then"
            )
    lines = [f"== {title} ==", *rows]
    if note:
        lines.append(f"  ({note})")
    return "\n".join(lines)


@dataclass(frozen=True)
class Target:
    name: str
    #: Extracts the measured value from the results; None when the run did not happen.
    measure: Callable[[dict[str, Any]], float | None]
    limit: float
    #: ">=" or "<=".
    op: str
    unit: str = "×"


def _ratio_of(run: str, key: str, direction: str) -> Callable[[dict[str, Any]], float | None]:
    def get(results: dict[str, Any]) -> float | None:
        pair = results.get(run) or {}
        return ratio(pair.get("teledispatch", {}), pair.get("baseline", {}), key, direction)

    return get


def _inverse_ratio(run: str, key: str) -> Callable[[dict[str, Any]], float | None]:
    """teledispatch ÷ baseline of a cost (latency): at most the target."""

    def get(results: dict[str, Any]) -> float | None:
        pair = results.get(run) or {}
        a = pair.get("teledispatch", {}).get(key)
        b = pair.get("baseline", {}).get(key)
        if not isinstance(a, int | float) or not isinstance(b, int | float) or not b:
            return None
        return float(a) / float(b)

    return get


def _value_of(run: str, key: str, scale: float = 1.0) -> Callable[[dict[str, Any]], float | None]:
    def get(results: dict[str, Any]) -> float | None:
        value = (results.get(run) or {}).get("teledispatch", {}).get(key)
        return float(value) * scale if isinstance(value, int | float) else None

    return get


def _cli_start(verb: str) -> Callable[[dict[str, Any]], float | None]:
    def get(results: dict[str, Any]) -> float | None:
        row = (results.get("cli") or {}).get("teledispatch", {}).get(verb)
        return None if row is None else float(row["best_s"])

    return get


TARGETS = [
    Target(
        "system-bound PostgreSQL messages/s ≥ 25× baseline",
        _ratio_of("system.postgresql", "messages_per_s", "up"),
        25,
        ">=",
    ),
    Target(
        "mixed OTP messages/s ≥ 100× baseline (Producer.submit)",
        _ratio_of("otp", "messages_per_s", "up"),
        100,
        ">=",
    ),
    Target(
        "mixed OTP messages/s ≥ 100× baseline (enqueue, durable per call)",
        _ratio_of("otp.sync", "messages_per_s", "up"),
        100,
        ">=",
    ),
    Target(
        "system-bound PostgreSQL worker CPU/1k ≤ 1/20 of baseline (baseline/td ≥ 20×)",
        _ratio_of("system.postgresql", "worker_cpu_s_per_1k", "down"),
        20,
        ">=",
    ),
    Target(
        "provider-bound: utilisation ≥ 99% of the allowed requests/s",
        _value_of("provider", "utilisation", scale=100),
        99,
        ">=",
        "%",
    ),
    Target(
        "provider-bound: 1-s windows over the limit = 0",
        _value_of("provider", "windows_over"),
        0,
        "<=",
        "",
    ),
    Target(
        "latency: teledispatch p50 ≤ 5× the baseline's",
        _inverse_ratio("latency", "p50_ms"),
        5,
        "<=",
    ),
    Target(
        "latency: teledispatch p99 ≤ 2× the baseline's",
        _inverse_ratio("latency", "p99_ms"),
        2,
        "<=",
    ),
    Target(
        "mixed: OTP p99 behind a saturating campaign ≤ 2 request slots",
        _value_of("mixed", "otp_p99_slots"),
        2,
        "<=",
        " slots",
    ),
    Target(
        "mixed: campaign ≥ 95% of the limit less the OTPs",
        _value_of("mixed", "campaign_share", scale=100),
        95,
        ">=",
        "%",
    ),
    Target(
        "outage: messages failed = 0",
        _value_of("outage", "failed"),
        0,
        "<=",
        "",
    ),
    Target(
        "outage: requests during a 60 s outage ≤ 30 (probes, not batches)",
        _value_of("outage", "requests_during_outage"),
        30,
        "<=",
        "",
    ),
    Target(
        "outage: full rate ≤ 2 s after the first accepted probe",
        _value_of("outage", "first_to_full_rate_s"),
        2,
        "<=",
        " s",
    ),
    Target(
        "failover: first message through the route's second provider ≤ 2 s",
        _value_of("failover", "to_first_failover_s"),
        2,
        "<=",
        " s",
    ),
    Target(
        "failover: messages accepted twice = 0",
        _value_of("failover", "accepted_twice"),
        0,
        "<=",
        "",
    ),
    Target(
        "big job: worker peak RSS ≤ 300 MB (largest process)",
        _value_of("big", "worker_peak_rss_mb"),
        300,
        "<=",
        " MB",
    ),
    *(
        Target(f"CLI `{verb}` starts in < 0.5 s", _cli_start(verb), 0.5, "<=", " s")
        for verb in ("status", "lookup", "send --dry-run (3)")
    ),
    Target(
        "big job: producer peak RSS ≤ 300 MB",
        _value_of("big", "producer_peak_rss_mb"),
        300,
        "<=",
        " MB",
    ),
    Target(
        "enqueue against a 10M-entry opt-out list ≤ 1.5× without",
        lambda results: results.get("optouts", {}).get("ratio"),
        1.5,
        "<=",
    ),
    Target(
        "export: peak RSS at 1,000,000 rows ≤ 1.5× that at 100,000 (flat memory)",
        _value_of("export", "rss_ratio"),
        1.5,
        "<=",
    ),
    Target(
        "webhook on every job: messages/s ≥ 70% of without",
        _value_of("webhooks", "ratio_pct"),
        70,
        ">=",
        "%",
    ),
    Target(
        "purge of finished rows during a run: its messages/s ≥ 80% of without the purge",
        _value_of("purge", "ratio_pct"),
        80,
        ">=",
        "%",
    ),
]


def evaluate(results: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for t in TARGETS:
        value = t.measure(results)
        if value is None:
            verdict = "n/a"
        elif t.op == ">=":
            verdict = "PASS" if value >= t.limit else "MISS"
        else:
            verdict = "PASS" if value <= t.limit else "MISS"
        out.append({"target": t.name, "value": value, "unit": t.unit, "verdict": verdict})
    return out


def targets_text(verdicts: list[dict[str, Any]]) -> str:
    lines = ["== Targets =="]
    for v in verdicts:
        value = "-" if v["value"] is None else f"{v['value']:,.1f}{v['unit']}"
        lines.append(f"  {v['verdict']:<5} {v['target']}: {value}")
    return "\n".join(lines)
