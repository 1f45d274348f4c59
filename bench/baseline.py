"""The baseline: what a team writes without teledispatch.

One Celery task per message (``send_sms.delay(id, phone, text)``), Celery's own
``rate_limit``, one signed NXCloud ``multi/mt`` request per message with httpx, one INSERT per
outcome with SQLAlchemy. Tuned the way Celery's docs suggest for many short tasks: results
ignored, a larger prefetch, rate limiting switched off when no limit is set; late acks, as a
team that must not lose messages would choose. It imports nothing from the project.

Run a worker with ``celery -A bench.baseline worker -Q baseline``. Configuration comes from the
environment: ``REDIS_URL``, ``BASELINE_DATABASE_URL``, ``BASELINE_CONFIG`` (the simulator's
TOML: ``[accounts.nxcloud]`` with ``base_url``, ``access_key``, ``secret``, ``app_key``) and
``BASELINE_RATE_LIMIT`` (a Celery rate such as ``20/s``; empty for none).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import tomllib
from functools import cache
from typing import Any

import httpx
import sqlalchemy as sa
from celery import Celery
from celery.signals import worker_process_init

QUEUE = "baseline"
RATE_LIMIT = os.environ.get("BASELINE_RATE_LIMIT") or None

app = Celery("baseline", broker=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    task_acks_late=True,
    worker_prefetch_multiplier=8,
    worker_disable_rate_limits=RATE_LIMIT is None,
    task_default_queue=QUEUE,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)

metadata = sa.MetaData()
outcomes = sa.Table(
    "baseline_outcomes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("message_id", sa.String(50), nullable=False),
    sa.Column("phone", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("provider_id", sa.String(100)),
    sa.Column("error", sa.String(1000)),
    sa.Column("created_at", sa.Float, nullable=False),
)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # What anyone adds after the first "database is locked" with several worker processes.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=60000")
    cur.close()


def make_engine(url: str) -> sa.Engine:
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 60})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return sa.create_engine(url, pool_size=2, max_overflow=2)


@cache
def engine() -> sa.Engine:
    return make_engine(os.environ["BASELINE_DATABASE_URL"])


@cache
def client() -> httpx.Client:
    return httpx.Client(timeout=10.0)


@cache
def account() -> dict[str, str]:
    with open(os.environ["BASELINE_CONFIG"], "rb") as fh:
        section: dict[str, str] = tomllib.load(fh)["accounts"]["nxcloud"]
    return section


@worker_process_init.connect
def _after_fork(**_: Any) -> None:
    engine.cache_clear()
    client.cache_clear()


def sign(headers: dict[str, str], body: str, secret: str) -> str:
    """NXCloud: md5 of ``k=v&…`` (keys sorted) ``&body=…&accessSecret=…``."""
    pairs = "&".join(f"{k}={headers[k]}" for k in sorted(headers))
    return hashlib.md5(f"{pairs}&body={body}&accessSecret={secret}".encode()).hexdigest()


class ProviderUnavailable(Exception):
    """HTTP 5xx: retried like a transport error, as Celery's docs suggest."""


MAX_RETRIES = 5


@app.task(
    name="baseline.send_sms",
    bind=True,
    ignore_result=True,
    rate_limit=RATE_LIMIT,
    autoretry_for=(httpx.TransportError, ProviderUnavailable),
    retry_backoff=True,
    max_retries=MAX_RETRIES,
)
def send_sms(self: Any, message_id: str, phone: str, text: str) -> None:
    try:
        _send(message_id, phone, text)
    except (httpx.TransportError, ProviderUnavailable) as exc:
        if self.request.retries < MAX_RETRIES:
            raise  # autoretry_for: retried after retry_backoff's delay
        # Out of retries: recorded as failed (Celery would only log the exception).
        _record(message_id, phone, "failed", None, f"{type(exc).__name__}: {exc}"[:1000])


def _send(message_id: str, phone: str, text: str) -> None:
    acct = account()
    item = {"phone": phone.lstrip("+"), "content": text, "sysMessageId": message_id}
    body = json.dumps({"appKey": acct["app_key"], "items": [item]}, separators=(",", ":"))
    signed = {
        "accessKey": acct["access_key"],
        "action": "mtsend",
        "bizType": "3",
        "ts": str(int(time.time() * 1000)),
    }
    headers = {
        **signed,
        "sign": sign(signed, body, acct["secret"]),
        "Content-Type": "application/json;charset=utf-8",
    }
    resp = client().post(acct["base_url"] + "/v1/sms/multi/mt", content=body, headers=headers)
    if resp.status_code >= 500:
        raise ProviderUnavailable(f"HTTP {resp.status_code}")
    status, provider_id, error = "failed", None, f"HTTP {resp.status_code}"
    if resp.status_code == 200:
        doc = resp.json()
        first = (doc.get("data") or [{}])[0]
        if doc.get("code") == 0 and first.get("status") == "Success":
            status, provider_id, error = "sent", first.get("messageid"), None
        else:
            error = str(first.get("message") or doc.get("message"))
    _record(message_id, phone, status, provider_id, error)


def _record(
    message_id: str, phone: str, status: str, provider_id: str | None, error: str | None
) -> None:
    with engine().begin() as conn:
        conn.execute(
            outcomes.insert().values(
                message_id=message_id,
                phone=phone,
                status=status,
                provider_id=provider_id,
                error=error,
                created_at=time.time(),
            )
        )
