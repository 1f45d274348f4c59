"""The runs: each starts a fresh stack for one system, drives it, and returns its figures.

Every figure is measured the same way for both systems: the producer is a separate process
(``bench.produce``); time runs from the producer's first enqueue to the last outcome row
committed (read back from the database); requests are counted by the simulator; worker CPU and
memory are read from /proc over each worker's process tree.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from bench.measure import (
    MemorySampler,
    TreeSnapshot,
    percentile,
    window_counts,
)
from bench.stack import REPO, Database, RunFailed, Stack, System, open_stack

#: The TPS check of the provider-bound run: the simulator throttles above this.
PROVIDER_RPS = 20
PROVIDER_BATCH = 200


@dataclass(frozen=True)
class Shape:
    """How many workers, each with how many pool processes, and the account's linger."""

    workers: int = 1
    concurrency: int = 4
    linger_ms: int = 250


def _timeout(n: int) -> float:
    """Generous but bounded: no run here is expected near 250 messages/s."""
    return min(900.0, 90.0 + n / 250)


def _measure(
    stack: Stack,
    shape: Shape,
    mode: str,
    n: int,
    producers: int = 1,
    max_wait: float | None = None,
    preload: bool = False,
) -> dict[str, Any]:
    """Start workers, run the producer(s), wait for ``n`` outcomes; the common figures.

    With several producers (``singles`` only) each sends its own share of distinct recipients,
    as several app processes would; their figures are combined (earliest start, latest end,
    largest peak RSS, summed CPU). With ``max_wait``, a run still going that many seconds
    after the producer started is measured on the outcomes committed so far (``partial``);
    the producer itself must finish within it. With ``preload`` everything is enqueued before
    the workers start, so that the run measures the sending side alone (the provider-bound
    run: what the provider sees should not depend on the producer sharing the CPU).
    """
    timeout = _timeout(n) if max_wait is None else max_wait
    shares = [n // producers + (1 if i < n % producers else 0) for i in range(producers)]

    def produce() -> list[Any]:
        return [
            stack.start_producer(mode, share, offset=sum(shares[:i]))
            for i, share in enumerate(shares)
            if share
        ]

    started = produce() if preload else []
    reports = [p.result(timeout) for p in started]
    stack.start_workers(shape.workers, shape.concurrency)
    roots = [w.popen.pid for w in stack.workers]
    before = [TreeSnapshot.take(r) for r in roots]
    # The rest of the machine's work for the same messages, so a table can say where a
    # message's CPU goes (SQLite works inside the workers and has no share of its own).
    servers = {
        "postgresql": stack.postmaster_pid(),
        "simulator": stack.procs[0].popen.pid,
        "redis": stack.redis_pid,
    }
    servers_before = {k: TreeSnapshot.take(pid) for k, pid in servers.items() if pid}
    begun = time.monotonic()
    with MemorySampler(roots) as mem:
        if not preload:
            started = produce()
            reports = [p.result(timeout) for p in started]
        prod = {
            "t_start": min(r["t_start"] for r in reports),
            "t_end": max(r["t_end"] for r in reports),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in reports),
            "cpu_s": sum(r["cpu_s"] for r in reports),
        }
        left = max(10.0, timeout - (time.monotonic() - begun))
        done, last = stack.wait_outcomes(n, left, partial_ok=max_wait is not None)
        after = [TreeSnapshot.take(r) for r in roots]
        servers_cpu = {
            k: TreeSnapshot.take(snap.root).cpu_since(snap) for k, snap in servers_before.items()
        }
    cpu = sum(a.cpu_since(b) for a, b in zip(after, before, strict=True))
    requests = stack.sim_request_count()
    elapsed = last - prod["t_start"]
    return {
        "n": done,
        "partial": done < n,
        "database": stack.database,
        "seconds": elapsed,
        "messages_per_s": done / elapsed if elapsed > 0 else float("nan"),
        "enqueue_s": prod["t_end"] - prod["t_start"],
        "requests": requests,
        "requests_per_message": requests / done,
        "worker_cpu_s": cpu,
        "worker_cpu_s_per_1k": cpu / done * 1000,
        "worker_peak_rss_mb": max(mem.process_peak_mb(r) for r in roots),
        "worker_tree_peak_rss_mb": sum(mem.tree_peak_mb(r) for r in roots),
        "producer_peak_rss_mb": prod["peak_rss_mb"],
        "producer_cpu_s": prod["cpu_s"],
        "producer_cpu_s_per_1k": prod["cpu_s"] / done * 1000,
        **{f"{k}_cpu_s_per_1k": v / done * 1000 for k, v in servers_cpu.items()},
        "total_cpu_s_per_1k": (cpu + prod["cpu_s"] + sum(servers_cpu.values())) / done * 1000,
        "workers": shape.workers,
        "concurrency": shape.concurrency,
        "producers": producers,
    }


def _guarded(system: System, fn: Any, *args: Any) -> dict[str, Any]:
    started = time.monotonic()
    try:
        result: dict[str, Any] = fn(*args)
    except RunFailed as exc:
        result = {"error": str(exc)[:2000]}
    result["wall_s"] = time.monotonic() - started
    result["system"] = system
    return result


def throughput(
    system: System, database: Database, mode: str, n: int, shape: Shape, producers: int = 1
) -> dict[str, Any]:
    """System-bound (``bulk``) or mixed OTP (``singles``): no latency, no limits."""

    def run() -> dict[str, Any]:
        account = {"linger_ms": shape.linger_ms}
        with open_stack(system, database, account=account) as stack:
            result = _measure(stack, shape, mode, n, producers)
            result["linger_ms"] = shape.linger_ms
            return result

    return _guarded(system, run)


def latency(
    system: System, database: Database, rate: float, seconds: float, shape: Shape
) -> dict[str, Any]:
    """Single recipients at ``rate``/s: enqueue → the simulator receiving the request."""

    def run() -> dict[str, Any]:
        n = max(1, round(rate * seconds))
        with open_stack(system, database, account={"linger_ms": shape.linger_ms}) as stack:
            stack.start_workers(shape.workers, shape.concurrency)
            producer = stack.start_producer("paced", n, rate=rate)
            prod = producer.result(seconds * 3 + 60)
            stack.wait_outcomes(n, 120)
            log: list[dict[str, Any]] = stack.sim_get("/_sim/requests")
        sent_at: dict[str, float] = prod["sent_at"]
        received: dict[str, float] = {}
        for entry in log:
            for message_id in entry.get("ids", ()):
                received.setdefault(message_id, float(entry["t"]))
        requests = sum(1 for e in log if not sent_at.keys().isdisjoint(e.get("ids", ())))
        lat = [(received[i] - t) * 1000 for i, t in sent_at.items() if i in received]
        if len(lat) < len(sent_at):
            raise RunFailed(f"the simulator saw {len(lat)} of {len(sent_at)} messages")
        return {
            "n": n,
            "rate_per_s": rate,
            "database": database,
            "linger_ms": shape.linger_ms,
            "p50_ms": percentile(lat, 50),
            "p99_ms": percentile(lat, 99),
            "max_ms": max(lat),
            "requests_per_message": requests / n,
        }

    return _guarded(system, run)


def big_job(n: int, shape: Shape, max_wait: float) -> dict[str, Any]:
    """One job of ``n`` recipients on PostgreSQL: enqueue time, memory, rate.

    Bounded by ``max_wait`` seconds in all: the whole job is always enqueued (producer memory
    and enqueue time cover all ``n``), the rate is measured on what was committed by then.
    """

    def run() -> dict[str, Any]:
        with open_stack("teledispatch", "postgresql", account={"linger_ms": shape.linger_ms}) as st:
            return _measure(st, shape, "bulk", n, max_wait=max_wait)

    return _guarded("teledispatch", run)


def rate_limiter_integrated() -> bool:
    """Whether the dispatcher consults ``worker/ratelimit`` (checked in the source)."""
    dispatch = REPO / "worker" / "dispatch"
    package = REPO / "worker" / "ratelimit"
    sources = dispatch.glob("*.py")
    return package.is_dir() and any("ratelimit" in p.read_text() for p in sources)


def provider_bound(system: System, seconds: float, shape: Shape) -> dict[str, Any]:
    """20 requests/s at the provider (which throttles above that), 200 per batch.

    Both systems run on two workers, the case the issue names: Celery's ``rate_limit`` is per
    worker, so the baseline's two workers allow twice the rate between them, while
    teledispatch's limit is one budget in Redis for every worker.
    """
    run_shape = Shape(max(2, shape.workers), shape.concurrency, shape.linger_ms)

    def run() -> dict[str, Any]:
        if system == "teledispatch":
            n = PROVIDER_RPS * PROVIDER_BATCH * round(seconds)
            account: dict[str, Any] = {
                "linger_ms": shape.linger_ms,
                "max_batch": PROVIDER_BATCH,
                "max_requests_per_second": PROVIDER_RPS,
            }
        else:
            n = PROVIDER_RPS * round(seconds)
            account = {"baseline_rate_limit": f"{PROVIDER_RPS}/s"}
        options = ["--tps", str(PROVIDER_RPS)]
        with open_stack(system, "postgresql", sim_options=options, account=account) as stack:
            result = _measure(stack, run_shape, "bulk", n, max_wait=seconds * 3, preload=True)
            log = stack.sim_get("/_sim/requests")
        # What the provider saw, every request (throttled ones too: they arrived all the same).
        times = sorted(float(e["t"]) for e in log)
        counts = window_counts(times)
        busy = times[-1] - times[0] if len(times) > 1 else 0.0
        result["requests_per_s"] = (len(times) - 1) / busy if busy > 0 else float("nan")
        result["utilisation"] = result["requests_per_s"] / PROVIDER_RPS
        result["max_in_window"] = max(counts, default=0)
        result["windows_over"] = sum(1 for c in counts if c > PROVIDER_RPS)
        result["throttled_requests"] = sum(1 for e in log if e.get("code") == 13008)
        result["processes"] = f"{run_shape.workers} × {run_shape.concurrency}"
        return result

    return _guarded(system, run)


#: The mixed run's account: 2 requests/s of 100 messages, 200 messages/s in all.
MIXED_RPS = 2
MIXED_BATCH = 100
MIXED_MPS = MIXED_RPS * MIXED_BATCH
#: OTPs during the mixed run (jobs/s), high priority for teledispatch.
MIXED_OTP_RATE = 2.0
#: Where the OTPs' recipients and ids start, apart from the campaign's.
MIXED_OTP_OFFSET = 10_000_000


def mixed(system: System, seconds: float, shape: Shape) -> dict[str, Any]:
    """A campaign saturating a rate-limited account while OTPs arrive at 2/s.

    teledispatch: ``max_messages_per_second = 200`` and ``max_requests_per_second = 2`` with
    batches of 100 (a full request every 0.5 s), the OTPs in the high lane. The baseline:
    Celery's ``rate_limit="200/s"`` on its one task and queue, as Celery's docs suggest for a
    rate-limited API; its OTPs are the same task on the same queue. The campaign holds enough
    for the whole run (1.5× what the limit sends while the OTPs arrive). Figures, from the
    simulator's arrival stamps: OTP latency (enqueue → arrival) p50/p99, and the campaign's
    messages/s while the OTPs arrived, as a share of the limit less the OTPs' rate.
    """
    otps = max(1, round(MIXED_OTP_RATE * seconds))
    n = round(MIXED_MPS * (seconds + 10) * 1.5)

    def run() -> dict[str, Any]:
        if system == "teledispatch":
            account: dict[str, Any] = {
                "linger_ms": shape.linger_ms,
                "max_batch": MIXED_BATCH,
                "max_requests_per_second": MIXED_RPS,
                "max_messages_per_second": MIXED_MPS,
            }
        else:
            account = {"baseline_rate_limit": f"{MIXED_MPS}/s"}
        with open_stack(system, "postgresql", account=account) as stack:
            stack.start_workers(shape.workers, shape.concurrency)
            stack.start_producer("bulk", n).result(_timeout(n))
            # The campaign is sending (and saturating) before the first OTP.
            deadline = time.monotonic() + 60
            while stack.sim_request_count() < 5:
                if time.monotonic() > deadline:
                    raise RunFailed("the campaign did not start within 60 s")
                time.sleep(0.2)
            priority = "high" if system == "teledispatch" else None
            otp = stack.start_producer(
                "paced", otps, rate=MIXED_OTP_RATE, offset=MIXED_OTP_OFFSET, priority=priority
            )
            prod = otp.result(seconds * 3 + 60)
            sent_at: dict[str, float] = prod["sent_at"]
            received: dict[str, float] = {}
            deadline = time.monotonic() + 120.0
            log: list[dict[str, Any]] = []
            while len(received) < len(sent_at) and time.monotonic() < deadline:
                time.sleep(1.0)
                log = stack.sim_get("/_sim/requests")
                received = {i: float(e["t"]) for e in log for i in e.get("ids", ()) if i in sent_at}
        # An OTP still waiting at the deadline counts with its wait so far (a lower bound).
        cut = time.time()
        lat = [(received.get(i, cut) - t) * 1000 for i, t in sent_at.items()]
        w0, w1 = min(sent_at.values()), max(sent_at.values())
        campaign = sum(
            1
            for e in log
            if w0 <= float(e["t"]) <= w1
            for i in e.get("ids", ())
            if i not in sent_at
        )
        campaign_rate = campaign / (w1 - w0) if w1 > w0 else float("nan")
        return {
            "n": otps,
            "campaign_n": n,
            "database": "postgresql",
            "limit_mps": MIXED_MPS,
            "otp_rate_per_s": MIXED_OTP_RATE,
            "otp_p50_ms": percentile(lat, 50),
            "otp_p99_ms": percentile(lat, 99),
            "otp_max_ms": max(lat),
            "campaign_mps": campaign_rate,
            "campaign_share": campaign_rate / (MIXED_MPS - MIXED_OTP_RATE),
            "slot_ms": 1000 / MIXED_RPS,
            "otp_p99_slots": percentile(lat, 99) / (1000 / MIXED_RPS),
            "otps_not_arrived": len(sent_at) - len(received),
        }

    return _guarded(system, run)
