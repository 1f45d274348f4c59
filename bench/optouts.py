"""The opt-out run: what a long suppression list costs the producer.

``python -m bench --only optouts``: one job of N recipients (default 1,000,000) enqueued to
PostgreSQL twice, each time into a fresh database: once with empty suppression lists, once
with L entries (default 10,000,000) on the account's list, 10,000 of which are recipients of
the job. Only the producer is timed (``enqueue_stream`` from the first row read to the last
part committed); no worker runs, and wake-ups are not sent (the same for both). The issue's
target: the second at most 1.5× the first.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Iterator
from typing import Any

from bench.stack import _create_pg_database, _drop_pg_database

#: The job's recipients: China Mobile 137 numbers from here on.
FIRST_RECIPIENT = 8613709990000
#: Recipients that are also on the list (the list ends where the job's numbers start + this).
OVERLAP = 10_000
CONTENT = "Sale: 20% off everything this weekend."


def _recipients(n: int) -> Iterator[dict[str, str]]:
    for i in range(n):
        yield {"phone": f"+{FIRST_RECIPIENT + i}"}


def _enqueue_once(n: int, list_size: int) -> dict[str, Any]:
    from teledispatch.config import Settings, parse_config
    from teledispatch.db import optouts as optouts_db
    from teledispatch.db.engine import dispose_engines, get_engine
    from teledispatch.db.migrate import ensure_schema
    from teledispatch.producer import submit

    name, url = _create_pg_database()
    try:
        accounts = parse_config(
            {"accounts": {"nx": {"channel": "nxcloud.sms", "base_url": "http://127.0.0.1:9"}}}
        )
        cfg = Settings(accounts=accounts, database_url=url, redis_url="redis://127.0.0.1:9/0")
        ensure_schema(url)
        engine = get_engine(url)
        fill_s = 0.0
        if list_size:
            started = time.monotonic()
            first = FIRST_RECIPIENT + OVERLAP - list_size
            with engine.begin() as conn:
                optouts_db.add_range(conn, "nx", first, list_size, time.time())
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("ANALYZE optouts")
            fill_s = time.monotonic() - started
        submit.wake = lambda *a, **k: None  # no broker in this run: the same for both
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        started = time.monotonic()
        job = submit.enqueue_stream("nx", _recipients(n), defaults={"content": CONTENT}, cfg=cfg)
        wall = time.monotonic() - started
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        with engine.connect() as conn:
            listed = optouts_db.count(conn, "nx")
        from teledispatch.producer.lookup import job_status

        counts = job_status(job.job_id, cfg=cfg).counts
        dispose_engines()
        return {
            "recipients": n,
            "list_entries": listed,
            "enqueue_s": round(wall, 2),
            "producer_cpu_s": round(
                cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime, 2
            ),
            "recipients_per_s": round(n / wall),
            "suppressed": counts.get("suppressed", 0),
            "fill_list_s": round(fill_s, 1),
        }
    finally:
        _drop_pg_database(name)


def run(n: int, list_size: int) -> dict[str, Any]:
    """Both enqueues; ``ratio`` is with the list over without (wall time: it includes the
    database's side of the lookups), ``cpu_ratio`` the same for the producer's CPU alone
    (steadier on a shared machine)."""
    without = _enqueue_once(n, 0)
    with_list = _enqueue_once(n, list_size)
    return {
        "without": without,
        "with": with_list,
        "ratio": round(with_list["enqueue_s"] / without["enqueue_s"], 3),
        "cpu_ratio": round(with_list["producer_cpu_s"] / max(without["producer_cpu_s"], 1e-9), 3),
    }


def table(result: dict[str, Any]) -> str:
    a, b = result["without"], result["with"]
    lines = [
        f"Opt-outs: one job of {a['recipients']:,} recipients, postgresql, producer only",
        f"{'':24}{'no list':>14}{'list':>14}",
        f"{'list entries':24}{a['list_entries']:>14,}{b['list_entries']:>14,}",
        f"{'enqueue s':24}{a['enqueue_s']:>14}{b['enqueue_s']:>14}",
        f"{'producer CPU s':24}{a['producer_cpu_s']:>14}{b['producer_cpu_s']:>14}",
        f"{'recipients/s':24}{a['recipients_per_s']:>14,}{b['recipients_per_s']:>14,}",
        f"{'suppressed':24}{a['suppressed']:>14,}{b['suppressed']:>14,}",
        f"ratio with/without: {result['ratio']} wall (target <= 1.5), "
        f"{result['cpu_ratio']} producer CPU",
    ]
    return "\n".join(lines)
