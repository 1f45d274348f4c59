"""Prometheus counters and histograms recorded by the dispatcher, safe across Celery's pool.

Why multiprocess mode: a Celery prefork worker runs tasks in forked children, and a scrape of
one child would see only its share. With ``PROMETHEUS_MULTIPROC_DIR`` set before
``prometheus_client`` is imported, every process writes its values to memory-mapped files in
that directory and the worker's *main* process serves their sum (a ``MultiProcessCollector``).
``teledispatch worker --metrics-port P`` arranges both: it sets the directory (a fresh temporary
one, or ``TELEDISPATCH_METRICS_DIR``) and the port before exec'ing Celery, and the
``worker_init`` signal calls :func:`serve` in the main process.

Without a directory the metrics are plain in-process objects on :data:`REGISTRY` (unit tests
read them there) that nobody serves: a few microseconds per provider request. Recording is
per *request*, never per message (``inc(n)``), and a failure to record is logged once and
switches recording off: a metric must never fail a send.

Labels are the channel and the configured account name only: never a credential, a phone
number or a provider message id (unbounded cardinality, and personal data).

Queue depth and the age of the oldest due message are *not* here: the API's ``/metrics``
reads them from the database, which every replica agrees on.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from teledispatch.config import AccountConfig
from teledispatch.errors import (
    AmbiguousError,
    DispatchError,
    MalformedResponseError,
    NotSentError,
)

log = logging.getLogger("teledispatch.metrics")

#: Set by ``teledispatch worker --metrics-port``; read by :func:`serve` in the main process.
PORT_ENV = "TELEDISPATCH_METRICS_PORT"
HOST_ENV = "TELEDISPATCH_METRICS_HOST"
#: A directory the operator chose for the value files (else the CLI makes a temporary one).
DIR_ENV = "TELEDISPATCH_METRICS_DIR"
#: prometheus_client's own switch to multiprocess mode, read when it is first imported.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

#: Request outcomes, as the ``outcome`` label spells them.
OUTCOMES = ("ok", "retryable", "throttled", "rejected", "ambiguous", "malformed", "not_sent")

#: Where the metric objects live in-process. Served only in single-process use; in a
#: multiprocess worker the main process serves a fresh registry over the value files.
REGISTRY = CollectorRegistry(auto_describe=True)

#: Messages per request: 1 (OTP, BindAXN) up to VMS's 10,000.
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)
#: Round trips: a local simulator answers in milliseconds, a timeout takes ``timeout_s``.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

_ACCOUNT = ("channel", "account")

REQUESTS = Counter(
    "teledispatch_requests",
    "Provider requests by outcome (ok, retryable, throttled, rejected, ambiguous, malformed, "
    "not_sent)",
    [*_ACCOUNT, "outcome"],
    registry=REGISTRY,
)
MESSAGES = Counter(
    "teledispatch_messages",
    "Message outcomes written after a provider request (sent, failed, deferred, "
    "queued: to be retried, unknown)",
    [*_ACCOUNT, "status"],
    registry=REGISTRY,
)
BATCH_SIZE = Histogram(
    "teledispatch_batch_size",
    "Messages per provider request",
    _ACCOUNT,
    buckets=BATCH_BUCKETS,
    registry=REGISTRY,
)
LATENCY = Histogram(
    "teledispatch_provider_latency_seconds",
    "HTTP round-trip time of provider requests, failed ones included",
    _ACCOUNT,
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
THROTTLED = Counter(
    "teledispatch_throttled",
    "Provider requests answered with throttling (the account's rate is halved)",
    _ACCOUNT,
    registry=REGISTRY,
)
RETRIES = Counter(
    "teledispatch_retries",
    "Messages sent again: carried by a request after an earlier attempt of theirs",
    _ACCOUNT,
    registry=REGISTRY,
)

#: Set by whichever process last saw the circuit (``mostrecent``): every process reads the same
#: Redis key, so the newest observation is the account's state.
CIRCUIT = Gauge(
    "teledispatch_circuit_state",
    "The account's circuit: 0 closed (sending), 1 open (paused), 2 half-open (probing)",
    _ACCOUNT,
    registry=REGISTRY,
    multiprocess_mode="mostrecent",
)

_enabled = True
_lock = threading.Lock()


def outcome_of(exc: BaseException | None) -> str:
    """The ``outcome`` label for a request that ended with ``exc`` (``None``: it worked)."""
    if exc is None:
        return "ok"
    if not isinstance(exc, DispatchError):
        return "malformed"  # an adapter bug reading the answer: treated as unreadable
    if exc.throttled:
        return "throttled"
    if isinstance(exc, NotSentError):
        return "not_sent"
    if isinstance(exc, MalformedResponseError):
        return "malformed"
    if isinstance(exc, AmbiguousError) or exc.may_have_been_sent:
        return "ambiguous"
    if exc.retryable:
        return "retryable"
    return "rejected"  # RejectedError, or any other final provider answer


def _disable(exc: BaseException) -> None:
    global _enabled
    with _lock:
        if _enabled:
            _enabled = False
            log.error("metrics recording failed and is now off in this process: %r", exc)


def record_request(
    account: AccountConfig,
    outcome: str,
    size: int,
    latency_s: float | None,
    retried: int = 0,
) -> None:
    """One provider request: its outcome, how many messages it carried, its round trip, and
    how many of those messages had been tried before."""
    if not _enabled:
        return
    try:
        labels = (account.channel, account.name)
        REQUESTS.labels(*labels, outcome).inc()
        BATCH_SIZE.labels(*labels).observe(size)
        if latency_s is not None:
            LATENCY.labels(*labels).observe(latency_s)
        if outcome == "throttled":
            THROTTLED.labels(*labels).inc()
        if retried:
            RETRIES.labels(*labels).inc(retried)
    except Exception as exc:  # never let a metric fail a send
        _disable(exc)


def record_messages(account: AccountConfig, statuses: Iterable[str]) -> None:
    """Counts the statuses written for one request's messages: one ``inc(n)`` per status."""
    if not _enabled:
        return
    counts: dict[str, int] = {}
    try:
        for status in statuses:
            counts[status] = counts.get(status, 0) + 1
    except Exception as exc:
        _disable(exc)
        return
    record_message_counts(account, counts)


def record_message_counts(account: AccountConfig, counts: Mapping[str, int]) -> None:
    """``record_messages`` for statuses already counted (the dispatcher counts them once for
    its report and for this)."""
    if not _enabled:
        return
    try:
        for status, n in counts.items():
            MESSAGES.labels(account.channel, account.name, status).inc(n)
    except Exception as exc:
        _disable(exc)


#: Message statuses a request's outcome (or a claim: ``suppressed``) can write
#: (``MESSAGES``'s ``status`` label).
MESSAGE_STATUSES = ("sent", "failed", "deferred", "queued", "unknown", "suppressed")


def preset(accounts: Iterable[AccountConfig]) -> None:
    """Every series of every configured account at zero, before the first request: a scrape
    then shows HELP/TYPE and 0 (not nothing), so rates and "absent" alerts work from the
    start. Called by :func:`serve` in the main process; a pool process forked from it writes
    its own value files (prometheus_client notices the new pid)."""
    for account in accounts:
        labels = (account.channel, account.name)
        for outcome in OUTCOMES:
            REQUESTS.labels(*labels, outcome)
        for status in MESSAGE_STATUSES:
            MESSAGES.labels(*labels, status)
        for metric in (BATCH_SIZE, LATENCY, THROTTLED, RETRIES):
            metric.labels(*labels)


def record_circuit(account: AccountConfig, state: int) -> None:
    """The circuit state a dispatch just saw (``teledispatch.circuits``: 0/1/2)."""
    if not _enabled:
        return
    try:
        CIRCUIT.labels(account.channel, account.name).set(state)
    except Exception as exc:
        _disable(exc)


# --- serving, in the worker's main process ----------------------------------------------------


def multiproc_dir() -> Path | None:
    """The value-file directory, if this process records in multiprocess mode."""
    value = os.environ.get(MULTIPROC_ENV) or os.environ.get(MULTIPROC_ENV.lower())
    return Path(value) if value else None


def clear_dir(directory: Path) -> int:
    """Remove value files a previous run left (their counts would be added to this run's).

    Only ``*.db`` files, prometheus_client's own, are touched: the directory may be one the
    operator chose. Returns how many were removed."""
    removed = 0
    for path in directory.glob("*.db"):
        try:
            path.unlink()
            removed += 1
        except FileNotFoundError:
            pass
    return removed


def serve() -> tuple[str, int] | None:
    """Serve every pool process's metrics on ``TELEDISPATCH_METRICS_PORT`` (if set).

    Called in the worker's main process before the pool forks, so stale files are cleared
    before any child writes. A port that cannot be bound is logged, not raised: the worker's
    job is sending. Returns the address actually bound (port 0 picks a free one)."""
    port_text = os.environ.get(PORT_ENV)
    if not port_text:
        return None
    host = os.environ.get(HOST_ENV, "127.0.0.1")
    from prometheus_client import start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    directory = multiproc_dir()
    registry: CollectorRegistry = REGISTRY
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
        clear_dir(directory)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    else:
        log.warning("%s is not set: serving this process's metrics only", MULTIPROC_ENV)
    try:
        from teledispatch.config import settings

        preset(settings().accounts.values())
    except Exception as exc:  # a bad config fails the worker elsewhere, not its metrics
        log.warning("metrics not preset: %s", exc)
    try:
        server, _thread = start_http_server(int(port_text), addr=host, registry=registry)
    except (OSError, ValueError) as exc:
        log.error("cannot serve metrics on %s:%s: %s", host, port_text, exc)
        return None
    bound_host, bound_port = server.server_address[:2]
    log.warning("metrics on http://%s:%s/metrics", bound_host, bound_port)
    return str(bound_host), int(bound_port)


def process_dead(pid: int) -> None:
    """A pool process exits: drop its live-gauge files (counters and histograms keep their
    totals, which is what a counter must do)."""
    if multiproc_dir() is None:
        return
    try:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
    except Exception as exc:
        log.debug("mark_process_dead(%s): %r", pid, exc)
