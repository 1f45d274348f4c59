"""``teledispatch demo``: the real pipeline on embedded defaults, start to finish.

A Redis (existing, started, or embedded), a fresh SQLite file, the simulator with faults
switched on, one Celery worker with the sweep schedule; then a bulk job and a stream of
single-recipient jobs, a progress line, the outcome table and an example lookup.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from teledispatch.config import Settings, load_settings
from teledispatch.dev.processes import Proc, start_simulator, start_worker
from teledispatch.dev.redis import RedisService, ensure_redis
from teledispatch.producer.lookup import job_status, lookup
from teledispatch.producer.submit import Enqueued, enqueue_stream
from teledispatch.statuses import ACTIVE_STATUSES, FAILED, SENT

FAULTS = ["--fail-rate", "0.05", "--item-fail-rate", "0.01", "--seed", "7"]


def _bulk(n: int) -> Iterator[dict[str, Any]]:
    for i in range(n):
        yield {"phone": f"+86139{i:08d}", "ext": f"c{i}"}


def channel_jobs(config_path: Path, n: int = 300) -> list[tuple[str, list[dict[str, Any]]]]:
    """One job for each of the other three channels, built from what the simulator has."""
    import tomllib

    sim = tomllib.loads(config_path.read_text())["simulator"]
    expire = int(time.time()) + 3600
    uspeedo = [
        {
            "phone": f"+4479111{i:05d}",
            "template_id": "T100" if i % 2 else "T200",
            "sender_id": "ACME",
            "template_params": [str(1000 + i)],
        }
        for i in range(n)
    ]
    vms = [
        {"phone": f"+86138{i:08d}", "task_open_id": sim["vms_task_open_ids"][0], "ext": f"v{i}"}
        for i in range(n)
    ]
    axn = [
        {
            "phone_a": f"+86137{i:08d}",
            "phone_x": "+86" + sim["axn_phone_x"][i % len(sim["axn_phone_x"])],
            "number_pool_no": sim["axn_number_pool_no"],
            "expire_time": expire,
        }
        for i in range(min(n, len(sim["axn_phone_x"]) * 2))
    ]
    return [("uspeedo", uspeedo), ("volc-vms", vms), ("volc-axn", axn)]


def _sim_log(url: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(url + "/_sim/requests", timeout=30) as resp:
        data: list[dict[str, Any]] = json.load(resp)
    return data


def _wait(cfg: Settings, job_ids: list[str], total: int, timeout: float) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    tty = sys.stdout.isatty()
    while True:
        counts: Counter[str] = Counter()
        done = True
        for job_id in job_ids:
            st = job_status(job_id, cfg=cfg)
            counts.update(st.counts)
            done = done and st.done
        finished = sum(n for s, n in counts.items() if s not in ACTIVE_STATUSES)
        line = f"  progress: {finished:>6}/{total} " + " ".join(
            f"{k}={v}" for k, v in sorted(counts.items())
        )
        print(("\r" + line) if tty else line, end="" if tty else "\n", flush=True)
        if done:
            print()
            return dict(counts)
        if time.monotonic() > deadline:
            print()
            raise TimeoutError(f"jobs not finished after {timeout:.0f}s: {dict(counts)}")
        time.sleep(0.5 if tty else 2.0)


@dataclass
class _Jobs:
    bulk: Enqueued
    singles: list[str]
    #: (account, job id) of the jobs on the other three channels.
    others: list[tuple[str, str]]


def _start(workdir: Path, redis: RedisService, procs: list[Proc]) -> tuple[Settings, Path, str]:
    """The simulator and one worker with the schedule; returns settings, config and sim URL."""
    if redis.kind == "fakeredis":
        print("note: no Redis reachable and no redis-server on PATH: using embedded fakeredis")
    else:
        print(f"redis: {redis.url} ({redis.kind})")
    config_path = workdir / "teledispatch.toml"
    env = {
        "REDIS_URL": redis.url,
        "DATABASE_URL": f"sqlite:///{workdir / 'demo.db'}",
        "TELEDISPATCH_CONFIG": str(config_path),
    }
    sim, sim_url = start_simulator(config_path, env, FAULTS)
    procs.append(sim)
    print(f"simulator: {sim_url} (faults: {' '.join(FAULTS)})")
    os.environ.update(env)
    cfg = load_settings(config_path)
    worker = start_worker(env, concurrency=4, beat=True, log_path=workdir / "worker.log")
    procs.append(worker)
    print(f"worker: pid {worker.popen.pid}, log {workdir / 'worker.log'}")
    return cfg, config_path, sim_url


def _enqueue(cfg: Settings, config_path: Path, recipients: int, singles: int) -> _Jobs:
    t0 = time.monotonic()
    bulk = enqueue_stream(
        "nxcloud", _bulk(recipients), defaults={"content": "Your order has shipped."}, cfg=cfg
    )
    print(
        f"enqueued bulk job {bulk.job_id}: {bulk.total} recipients in {time.monotonic() - t0:.1f}s"
    )
    single_ids = []
    for i in range(singles):
        job = enqueue_stream(
            "nxcloud", [{"phone": f"+1415555{i:04d}", "content": f"Code {1000 + i}"}], cfg=cfg
        )
        single_ids.append(job.job_id)
    print(f"enqueued {singles} single-recipient jobs")
    others = []
    for account, rows in channel_jobs(config_path):
        job = enqueue_stream(account, rows, cfg=cfg)
        others.append((account, job.job_id))
        print(f"enqueued {account} job {job.job_id}: {job.total} recipients")
    return _Jobs(bulk, single_ids, others)


def _not_final(counts: dict[str, int]) -> int:
    """Messages that ended neither sent nor failed: the demo's measure of something wrong."""
    return sum(n for s, n in counts.items() if s not in (SENT, FAILED))


def _report_nxcloud(counts: dict[str, int], sim_url: str, single_ids: list[str]) -> None:
    nx = [r for r in _sim_log(sim_url) if r["channel"] == "nxcloud.sms"]
    single_set = set(f"{j}-0" for j in single_ids)
    single_requests = sum(1 for r in nx if single_set.intersection(r["ids"]))
    print("\noutcomes (nxcloud.sms):")
    print(f"  {'status':<12}{'messages':>10}")
    for status, n in sorted(counts.items()):
        print(f"  {status:<12}{n:>10}")
    print(
        f"\nprovider requests: {len(nx)} "
        f"(largest {max((len(r['ids']) for r in nx), default=0)} items, "
        f"{sum(1 for r in nx if r['http_status'] >= 500)} answered 5xx and retried); "
        f"{len(single_ids)} single jobs went out in {single_requests} shared requests"
    )


def _run(
    workdir: Path,
    redis: RedisService,
    procs: list[Proc],
    *,
    recipients: int,
    singles: int,
    timeout: float,
) -> int:
    cfg, config_path, sim_url = _start(workdir, redis, procs)
    jobs = _enqueue(cfg, config_path, recipients, singles)
    counts = _wait(cfg, [jobs.bulk.job_id, *jobs.singles], recipients + singles, timeout)
    other_counts = {}
    for account, job_id in jobs.others:
        _wait(cfg, [job_id], job_status(job_id, cfg=cfg).total, timeout)
        other_counts[account] = job_status(job_id, cfg=cfg).counts
    _report_nxcloud(counts, sim_url, jobs.singles)
    for account, c in other_counts.items():
        channel = cfg.account(account).channel
        line = ", ".join(f"{k}={v}" for k, v in sorted(c.items()))
        print(f"outcomes ({channel} via {account}): {line}")
    example = lookup(phone=f"+1415555{0:04d}", cfg=cfg)[0]
    print(f"\nteledispatch lookup --phone {example.phone}:")
    print(
        f"  {example.status} job={example.job_id} id={example.id} "
        f"provider_id={example.provider_id} attempts={example.attempts}"
    )
    bad = _not_final(counts) + sum(_not_final(c) for c in other_counts.values())
    return 0 if bad == 0 else 1


def run_demo(recipients: int = 20_000, singles: int = 50, timeout: float = 100.0) -> int:
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="teledispatch-demo-"))
    redis = ensure_redis()
    procs: list[Proc] = []
    try:
        code = _run(workdir, redis, procs, recipients=recipients, singles=singles, timeout=timeout)
        print(f"\ndemo finished in {time.monotonic() - started:.0f}s")
        return code
    except Exception as exc:
        print(f"\ndemo failed: {exc}", file=sys.stderr)
        for p in procs:
            print(f"--- {p.name} (last lines) ---\n{p.tail()}", file=sys.stderr)
        return 1
    finally:
        for p in reversed(procs):
            p.stop()
        redis.stop()
        shutil.rmtree(workdir, ignore_errors=True)
