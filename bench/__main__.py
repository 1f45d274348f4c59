"""``python -m bench``: teledispatch against the baseline, side by side.

Runs (``--only`` picks some): ``system`` (system-bound, SQLite and PostgreSQL), ``otp`` (mixed
single-recipient traffic), ``latency`` (paced single recipients), ``big`` (one very large job),
``provider`` (provider-bound, when the dispatcher has a rate limiter), ``mixed`` (a saturating
campaign while OTPs arrive), ``cli`` (the CLI's start time per verb against ``python -c
pass``), ``optouts`` (a big job's enqueue with and without a long suppression list),
``outage`` (NXCloud answering 503 for a minute, then healthy), ``export``, ``webhooks`` and
``purge`` (``bench/outbox_runs.py``). Prints a table per run, the targets, and writes
everything to ``bench/results.json``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import cli_start, fault_runs, outbox_runs, report, runs
from bench.runs import Shape

RUNS = (
    *("system", "otp", "latency", "big", "provider", "mixed", "cli", "optouts", "outage"),
    *("failover", "export", "webhooks", "purge"),
)
DEFAULT_OUT = Path(__file__).resolve().parent / "results.json"

#: (full, --quick) sizes.
SIZES: dict[str, tuple[float, float]] = {
    "n": (100_000, 5_000),
    "baseline_n": (5_000, 1_000),
    "otp_n": (10_000, 500),
    "otp_baseline_n": (3_000, 500),
    "latency_s": (20, 6),
    "big_n": (1_000_000, 20_000),
    "big_wait_s": (300, 120),
    "provider_s": (15, 4),
    "optout_n": (1_000_000, 20_000),
    "optout_list": (10_000_000, 200_000),
    "mixed_s": (20, 8),
    "outage_s": (60, 15),
    "outage_n": (1000, 200),
    "export_n": (1_000_000, 50_000),
    "purge_rows": (1_000_000, 50_000),
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes (about two minutes)")
    p.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help=f"run only these ({', '.join(RUNS)}); repeat or comma-separate",
    )
    p.add_argument("--n", type=int, help="system-bound recipients for teledispatch")
    p.add_argument("--baseline-n", type=int, help="system-bound messages for the baseline")
    p.add_argument("--otp-n", type=int, help="mixed OTP jobs for teledispatch")
    p.add_argument("--otp-baseline-n", type=int, help="mixed OTP messages for the baseline")
    p.add_argument(
        "--otp-producers", type=int, default=4, help="producer processes in the OTP run (both)"
    )
    p.add_argument("--latency-s", type=float, help="latency run length in seconds")
    p.add_argument("--latency-rate", type=float, default=5.0, help="latency run jobs/s")
    p.add_argument("--big-n", type=int, help="recipients of the one big job")
    p.add_argument(
        "--big-wait-s",
        type=float,
        help="bound on the big run from its first enqueue; the rate is then measured on the "
        "outcomes committed by then",
    )
    p.add_argument("--provider-s", type=float, help="provider-bound run length in seconds")
    p.add_argument("--optout-n", type=int, help="recipients of the opt-out run's job")
    p.add_argument("--optout-list", type=int, help="entries on the opt-out run's list")
    p.add_argument("--mixed-s", type=float, help="mixed run: seconds of OTPs at 2/s")
    p.add_argument("--outage-s", type=float, help="outage run: seconds of 503s")
    p.add_argument("--outage-n", type=int, help="outage run: messages waiting (both systems)")
    p.add_argument("--export-n", type=int, help="rows of the big export (the small: a tenth)")
    p.add_argument("--purge-rows", type=int, help="finished rows purged during the purge run")
    p.add_argument(
        "--databases",
        help="system-bound databases, comma list (default sqlite,postgresql; --quick: postgresql)",
    )
    p.add_argument("--workers", type=int, default=1, help="worker processes (both systems)")
    p.add_argument("--concurrency", type=int, default=4, help="pool size per worker")
    p.add_argument("--linger-ms", type=int, default=250, help="teledispatch account linger")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    if args.databases is None:
        args.databases = "postgresql" if args.quick else "sqlite,postgresql"
    for key, (full, quick) in SIZES.items():
        if getattr(args, key) is None:
            value = quick if args.quick else full
            setattr(args, key, type(full)(value))
    selected = {n.strip() for item in args.only or RUNS for n in item.split(",") if n.strip()}
    every = RUNS
    unknown = selected - set(every)
    if unknown:
        p.error(f"unknown run(s): {', '.join(sorted(unknown))}; choose from {', '.join(every)}")
    args.selected = [r for r in every if r in selected]
    return args


def _pair(td: dict[str, Any], bl: dict[str, Any]) -> dict[str, Any]:
    return {"teledispatch": td, "baseline": bl}


Emit = Callable[[str], None]


def _shape_note(shape: Shape) -> str:
    return f"{shape.workers} worker × {shape.concurrency} processes, both systems"


def _run_system(
    args: argparse.Namespace, shape: Shape, results: dict[str, Any], emit: Emit
) -> None:
    for db in [d.strip() for d in args.databases.split(",") if d.strip()]:
        database: Any = db
        td = runs.throughput("teledispatch", database, "bulk", args.n, shape)
        bl = runs.throughput("baseline", database, "bulk", args.baseline_n, shape)
        results[f"system.{db}"] = _pair(td, bl)
        note = _shape_note(shape)
        if args.baseline_n != args.n:
            note += f"; baseline ran {args.baseline_n:,} messages"
        emit(
            report.table(
                f"System-bound, {db}: one job, no latency, no limits",
                results[f"system.{db}"],
                report.THROUGHPUT_METRICS,
                note,
            )
        )


def _run_otp(args: argparse.Namespace, shape: Shape, results: dict[str, Any], emit: Emit) -> None:
    k = args.otp_producers
    td = runs.throughput("teledispatch", "postgresql", "singles", args.otp_n, shape, k)
    bl = runs.throughput("baseline", "postgresql", "singles", args.otp_baseline_n, shape, k)
    results["otp"] = _pair(td, bl)
    note = f"{_shape_note(shape)}; single-recipient jobs enqueued one by one by {k} producers"
    if args.otp_baseline_n != args.otp_n:
        note += f"; baseline ran {args.otp_baseline_n:,}"
    emit(
        report.table(
            "Mixed OTP traffic, postgresql: teledispatch Producer.submit (group commit)",
            results["otp"],
            report.THROUGHPUT_METRICS,
            note + "; teledispatch jobs durable at the producer's flush",
        )
    )
    sync = runs.throughput("teledispatch", "postgresql", "singles-sync", args.otp_n, shape, k)
    results["otp.sync"] = _pair(sync, bl)
    emit(
        report.table(
            "Mixed OTP traffic, postgresql: teledispatch enqueue() (durable per call)",
            results["otp.sync"],
            report.THROUGHPUT_METRICS,
            note + "; the same baseline run",
        )
    )


def _run_latency(
    args: argparse.Namespace, shape: Shape, results: dict[str, Any], emit: Emit
) -> None:
    rate, secs = args.latency_rate, args.latency_s
    td = runs.latency("teledispatch", "postgresql", rate, secs, shape)
    bl = runs.latency("baseline", "postgresql", rate, secs, shape)
    results["latency"] = _pair(td, bl)
    emit(
        report.table(
            f"Latency: single recipients at {rate:g}/s for {secs:g}s, postgresql",
            results["latency"],
            report.LATENCY_METRICS,
            f"{_shape_note(shape)}; teledispatch waits up to linger_ms to fill a request",
        )
    )


def _run_big(args: argparse.Namespace, shape: Shape, results: dict[str, Any], emit: Emit) -> None:
    big = runs.big_job(args.big_n, shape, args.big_wait_s)
    results["big"] = _pair(big, {"skipped": "not run"})
    emit(
        report.table(
            f"One job of {args.big_n:,} recipients, postgresql (teledispatch only)",
            results["big"],
            report.THROUGHPUT_METRICS,
            _shape_note(shape),
        )
    )


def _run_provider(
    args: argparse.Namespace, shape: Shape, results: dict[str, Any], emit: Emit
) -> None:
    if runs.rate_limiter_integrated():
        td = runs.provider_bound("teledispatch", args.provider_s, shape)
        bl = runs.provider_bound("baseline", args.provider_s, shape)
        results["provider"] = _pair(td, bl)
        note = "baseline: Celery rate_limit 20/s per worker, one message per request"
    else:
        skipped = {"skipped": "n/a: rate limiter not integrated yet"}
        results["provider"] = _pair(skipped, skipped)
        note = "worker/dispatch/ does not use worker/ratelimit yet"
    emit(
        report.table(
            f"Provider-bound: {runs.PROVIDER_RPS} requests/s × {runs.PROVIDER_BATCH}/batch",
            results["provider"],
            report.PROVIDER_METRICS,
            note,
        )
    )


def _run_cli(args: argparse.Namespace, shape: Shape, results: dict[str, Any], emit: Emit) -> None:
    results["cli"] = cli_start.measure()
    emit(cli_start.table(results["cli"]))


def _run_optouts(
    args: argparse.Namespace, shape: Shape, results: dict[str, Any], emit: Emit
) -> None:
    from bench import optouts

    results["optouts"] = optouts.run(args.optout_n, args.optout_list)
    emit(optouts.table(results["optouts"]))


def _run_mixed(args: argparse.Namespace, shape: Shape, results: dict[str, Any], emit: Emit) -> None:
    td = runs.mixed("teledispatch", args.mixed_s, shape)
    bl = runs.mixed("baseline", args.mixed_s, shape)
    results["mixed"] = _pair(td, bl)
    emit(
        report.table(
            f"Mixed: a campaign saturating {runs.MIXED_MPS} messages/s, OTPs at "
            f"{runs.MIXED_OTP_RATE:g}/s for {args.mixed_s:g}s, postgresql",
            results["mixed"],
            report.MIXED_METRICS,
            f"{_shape_note(shape)}; teledispatch {runs.MIXED_RPS} requests/s of "
            f"{runs.MIXED_BATCH}, OTPs high priority; baseline: Celery "
            f"rate_limit={runs.MIXED_MPS}/s, one queue",
        )
    )


def _run_outage(
    args: argparse.Namespace, shape: Shape, results: dict[str, Any], emit: Emit
) -> None:
    td = fault_runs.outage("teledispatch", args.outage_s, args.outage_n, shape)
    bl = fault_runs.outage("baseline", args.outage_s, args.outage_n, shape)
    results["outage"] = _pair(td, bl)
    emit(
        report.table(
            f"Outage: NXCloud answers 503 for {args.outage_s:g}s, postgresql",
            results["outage"],
            report.OUTAGE_METRICS,
            f"{_shape_note(shape)}; teledispatch: circuit defaults, "
            f"{fault_runs.OUTAGE_BATCH}/request at {fault_runs.OUTAGE_RPS} requests/s; baseline: "
            "autoretry_for + retry_backoff, max_retries 5, one message per request",
        )
    )


def _run_failover(
    args: argparse.Namespace, shape: Shape, results: dict[str, Any], emit: Emit
) -> None:
    results["failover"] = {"teledispatch": fault_runs.failover(args.outage_n, shape)}
    emit(
        report.table(
            "Failover: a routed job while NXCloud answers 503, USpeedo second, postgresql",
            results["failover"],
            report.FAILOVER_METRICS,
            f"{_shape_note(shape)}; circuit defaults, {fault_runs.OUTAGE_BATCH}/request; the "
            "baseline has no second provider",
        )
    )


def _run_export(
    args: argparse.Namespace, shape: Shape, results: dict[str, Any], emit: Emit
) -> None:
    sizes = (args.export_n // 10, args.export_n)
    results["export"] = {"teledispatch": outbox_runs.export_memory(sizes)}
    emit(outbox_runs.text("export", results["export"]["teledispatch"]))


def _run_webhooks(
    args: argparse.Namespace, shape: Shape, results: dict[str, Any], emit: Emit
) -> None:
    results["webhooks"] = {"teledispatch": outbox_runs.webhooks(args.n, shape)}
    emit(outbox_runs.text("webhooks", results["webhooks"]["teledispatch"]))


def _run_purge(args: argparse.Namespace, shape: Shape, results: dict[str, Any], emit: Emit) -> None:
    run = outbox_runs.purge_during_run(args.n, args.purge_rows, shape)
    results["purge"] = {"teledispatch": run}
    emit(outbox_runs.text("purge", run))


RUNNERS: dict[str, Callable[[argparse.Namespace, Shape, dict[str, Any], Emit], None]] = {
    "system": _run_system,
    "otp": _run_otp,
    "latency": _run_latency,
    "big": _run_big,
    "provider": _run_provider,
    "cli": _run_cli,
    "mixed": _run_mixed,
    "optouts": _run_optouts,
    "outage": _run_outage,
    "failover": _run_failover,
    "export": _run_export,
    "webhooks": _run_webhooks,
    "purge": _run_purge,
}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    shape = Shape(args.workers, args.concurrency, args.linger_ms)
    started = time.monotonic()
    results: dict[str, Any] = {}
    doc: dict[str, Any] = {
        "command": shlex.join([sys.executable, "-m", "bench", *(argv or sys.argv[1:])]),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": report.machine(),
        "settings": {k: v for k, v in vars(args).items() if k not in ("out", "only")},
        "results": results,
    }
    doc["settings"]["selected"] = args.selected
    sections: list[str] = []

    def emit(text: str) -> None:
        sections.append(text)
        print(text + "\n", flush=True)
        doc["elapsed_s"] = time.monotonic() - started
        args.out.write_text(json.dumps(doc, indent=2, default=str))

    print(f"machine: {doc['machine']}\n", flush=True)
    for name in args.selected:
        RUNNERS[name](args, shape, results, emit)
    verdicts = report.evaluate(results)
    doc["targets"] = verdicts
    emit(report.targets_text(verdicts))
    print(f"bench finished in {time.monotonic() - started:.0f}s; results in {args.out}")
    failed = [
        f"{name}/{system}"
        for name, pair in results.items()
        for system, run in pair.items()
        if isinstance(run, dict) and "error" in run
    ]
    if failed:
        print(f"runs that failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
