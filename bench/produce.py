"""The producer side of a run, in its own process so its memory and CPU are its own.

``python -m bench.produce SYSTEM MODE --n N --out FILE`` where SYSTEM is ``teledispatch`` or
``baseline`` and MODE is ``bulk`` (one job of N recipients; the baseline has no jobs, so N
``delay`` calls), ``singles`` (N single-recipient jobs, one call each: teledispatch's
group-committing ``Producer.submit``, flushed before the clock stops), ``singles-sync`` (the
same through ``enqueue``, durable as each call returns) or ``paced`` (single recipients at
``--rate`` per second for ``--n`` of them, through ``enqueue``); ``--offset`` lets several
producers share one run with distinct recipients. Writes a JSON report to FILE.
Only the chosen system's code is imported.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

BULK_TEXT = "Your order has shipped."

#: Send one recipient: (index, phone, text) -> the message id the simulator will see.
SendOne = Callable[[int, str, str], str]


def phone(i: int) -> str:
    """Distinct valid mobile numbers (China Mobile 139 range)."""
    return f"+86139{i:08d}"


def _teledispatch_one(priority: str | None = None) -> SendOne:
    from teledispatch.producer.submit import enqueue_stream

    def send(i: int, number: str, text: str) -> str:
        job = enqueue_stream("nxcloud", [{"phone": number, "content": text}], priority=priority)
        return f"{job.job_id}-0"

    return send


def _teledispatch_batched() -> tuple[SendOne, Callable[[], None]]:
    from teledispatch.producer.group_commit import Producer

    producer = Producer()

    def send(i: int, number: str, text: str) -> str:
        pending = producer.submit_recipients("nxcloud", [{"phone": number, "content": text}])
        return f"{pending.job_id}-0"

    return send, producer.close


def _baseline_one() -> SendOne:
    from bench.baseline import send_sms

    def send(i: int, number: str, text: str) -> str:
        message_id = f"bl{i:010d}"
        send_sms.delay(message_id, number, text)
        return message_id

    return send


def _bulk(system: str, n: int) -> dict[str, Any]:
    if system == "teledispatch":
        from teledispatch.producer.submit import enqueue_stream

        def rows() -> Iterator[dict[str, Any]]:
            for i in range(n):
                yield {"phone": phone(i)}

        job = enqueue_stream("nxcloud", rows(), defaults={"content": BULK_TEXT})
        return {"job_id": job.job_id, "total": job.total}
    send = _baseline_one()
    for i in range(n):
        send(i, phone(i), BULK_TEXT)
    return {"total": n}


def _route(n: int) -> dict[str, Any]:
    """One job of ``n`` recipients on the route ``sms`` (the failover run; teledispatch only)."""
    from teledispatch.producer.routed import enqueue_route

    rows = ({"phone": phone(i)} for i in range(n))
    job = enqueue_route("sms", rows, defaults={"content": BULK_TEXT})
    return {"job_id": job.job_id, "total": job.total}


def _singles(
    system: str,
    n: int,
    offset: int,
    rate: float | None,
    batched: bool = False,
    priority: str | None = None,
) -> dict[str, Any]:
    finish: Callable[[], None] = lambda: None  # noqa: E731
    if system != "teledispatch":
        send = _baseline_one()
    elif batched:
        send, finish = _teledispatch_batched()
    else:
        send = _teledispatch_one(priority)
    sent_at: dict[str, float] = {}
    start = time.monotonic()
    for k in range(n):
        if rate:
            pause = start + k / rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        i = offset + k
        t = time.time()
        sent_at[send(i, phone(i), f"Your code is {100000 + i}")] = t
    finish()  # the last job is durable before the producer's clock stops
    return {"total": n, "sent_at": sent_at if rate else {}}


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.produce")
    p.add_argument("system", choices=["teledispatch", "baseline"])
    p.add_argument("mode", choices=["bulk", "route", "singles", "singles-sync", "paced"])
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--offset", type=int, default=0, help="first recipient index (singles)")
    p.add_argument("--rate", type=float, default=5.0, help="paced: jobs per second")
    p.add_argument("--priority", help="teledispatch: the jobs' lane (high, normal, low)")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    # Import the system's code before the clock starts: its start-up is not enqueue time.
    if args.system == "teledispatch":
        import teledispatch.producer.submit  # noqa: F401
    else:
        import bench.baseline  # noqa: F401
    cpu_start = _cpu_s()  # start-up and imports are not enqueue work
    t_start = time.time()
    if args.mode == "bulk":
        report = _bulk(args.system, args.n)
    elif args.mode == "route":
        report = _route(args.n)
    else:
        rate = args.rate if args.mode == "paced" else None
        batched = args.mode == "singles"
        report = _singles(args.system, args.n, args.offset, rate, batched, args.priority)
    t_end = time.time()
    report.update(
        t_start=t_start,
        t_end=t_end,
        # Linux reports ru_maxrss in kB.
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        cpu_s=_cpu_s() - cpu_start,
    )
    args.out.write_text(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
