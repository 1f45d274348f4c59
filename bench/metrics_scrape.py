"""What one scrape of the API's ``/metrics`` costs on a big ``messages`` table.

    python -m bench.metrics_scrape --rows 10000000 --backlog 5000

Creates a PostgreSQL database at ``BENCH_DATABASE_URL`` (dropped afterwards), fills it with
``--rows`` messages of 4 accounts (all ``sent`` but ``--backlog`` queued and a few deferred,
unknown and sending), ANALYZEs it, and times ``collect_metrics`` (the whole scrape's database
work) ``--repeat`` times; prints the median and the worst. Target: ≤ 50 ms at 10 million rows.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid

import sqlalchemy as sa

from teledispatch.api.metrics import collect_metrics
from teledispatch.config import Settings, parse_config
from teledispatch.db.engine import dispose_engines, get_engine
from teledispatch.db.tables import create_schema

ADMIN_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
ACCOUNTS = ("a0", "a1", "a2", "a3")

#: Rows generated server-side: status by position, so the backlog is the first ``backlog``.
_FILL = """
INSERT INTO messages (id, job_id, seq, account, channel, phone, group_key, payload, status,
                      attempts, due_at, created_at, updated_at)
SELECT 'm' || g, 'job' || (g / 100000), g, 'a' || (g % 4), 'nxcloud.sms', '+86139' || g, '',
       '{}',
       CASE WHEN g < :backlog THEN 'queued' WHEN g < :backlog + 50 THEN 'deferred'
            WHEN g < :backlog + 60 THEN 'unknown' WHEN g < :backlog + 80 THEN 'sending'
            ELSE 'sent' END,
       1, :now - (g % 3600), :now, :now
FROM generate_series(:start, :stop - 1) AS g
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--backlog", type=int, default=5_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    name = f"td_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = f"{ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    try:
        engine = get_engine(url)
        create_schema(engine)
        now = time.time()
        started = time.perf_counter()
        step = 1_000_000
        for start in range(0, args.rows, step):
            with engine.begin() as conn:
                stop = min(start + step, args.rows)
                params = {"backlog": args.backlog, "now": now, "start": start, "stop": stop}
                conn.execute(sa.text(_FILL), params)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE messages")
        print(f"filled {args.rows:,} rows in {time.perf_counter() - started:.0f} s")
        account = {"channel": "nxcloud.sms", "base_url": "http://127.0.0.1:9", "app_key": "a"}
        table = {a: {**account, "access_key": "k", "secret": "s"} for a in ACCOUNTS}
        cfg = Settings(accounts=parse_config({"accounts": table}), database_url=url)
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            collect_metrics(cfg, now=now)
            times.append(time.perf_counter() - t0)
        print(
            f"scrape at {args.rows:,} rows, backlog {args.backlog:,}: "
            f"median {statistics.median(times) * 1000:.1f} ms, worst {max(times) * 1000:.1f} ms"
        )
    finally:
        dispose_engines()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


if __name__ == "__main__":
    main()
