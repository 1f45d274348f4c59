"""A hypothesis state machine over the dispatcher's database protocol.

Workers claim (a claim may span two requests: two group keys) and send each request with the
real :func:`~teledispatch.worker.dispatch.send_batch`, which marks the departure on the batch
row, sends, and records the answer. The provider answers, or the answer is lost; the departure
gate refuses; workers crash (before the mark, or after it with the request arrived or not) or
stall past their lease; the sweep reclaims and reconciliation asks the provider. After every
step: every status change was one :data:`teledispatch.statuses.TRANSITIONS` allows, no message
reached the provider twice, nothing the provider has is queued again, every ``sent`` message
is one the provider has, and every claimed message has the batch row the sweep needs. At the
end, everything is driven to a terminal state, and sent == what the provider accepted.
"""

from __future__ import annotations

import json
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import fakeredis
import sqlalchemy as sa
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    multiple,
    rule,
)

from teledispatch.channels.base import HttpRequest
from teledispatch.channels.registry import adapter_for, rules_for
from teledispatch.config import Settings
from teledispatch.db import messages as repo
from teledispatch.db.engine import make_engine
from teledispatch.db.tables import batches_table, create_schema, jobs_table, messages_table
from teledispatch.errors import AmbiguousError
from teledispatch.producer.submit import store_part
from teledispatch.statuses import INITIAL, TRANSITIONS, Status, allowed
from teledispatch.worker.context import Context
from teledispatch.worker.dispatch import Admission, Report, send_batch
from teledispatch.worker.reconcile import reconcile
from teledispatch.worker.transport import HttpResponse
from tests.support import make_settings

N = 6
m = messages_table.c

# Every status change (and every new row's status) lands in ``status_log``, so the check sees
# changes that a later statement of the same step overwrote.
_STATUS_LOG = (
    "CREATE TABLE status_log (id TEXT, old TEXT, new TEXT)",
    "CREATE TRIGGER log_insert AFTER INSERT ON messages BEGIN "
    "INSERT INTO status_log VALUES (NEW.id, NULL, NEW.status); END",
    "CREATE TRIGGER log_update AFTER UPDATE OF status ON messages "
    "WHEN OLD.status IS NOT NEW.status BEGIN "
    "INSERT INTO status_log VALUES (NEW.id, OLD.status, NEW.status); END",
)

#: What the provider does with the next request (see :meth:`Provider.send`).
ANSWERS = ("answered", "lost", "killed_unsent", "killed_sent")


class WorkerKilled(BaseException):
    """kill -9 of the worker in the middle of a request: nothing after it is recorded. A
    BaseException, so the worker's own error handling does not see it, as it would not."""


class Provider:
    """NXCloud as the model needs it: keeps what it accepted, answers sends (or not) and
    status queries from that."""

    def __init__(self) -> None:
        self.accepted: list[str] = []
        self.answer = "answered"

    def warm(self) -> None:
        pass

    def send(
        self,
        request: HttpRequest,
        timeout_s: float,
        on_written: Callable[[], None] | None = None,
    ) -> HttpResponse:
        if not request.body.startswith(b"{"):  # a status query (form-encoded)
            form = dict(urllib.parse.parse_qsl(request.body.decode()))
            known = form["messageid"] in self.accepted
            row = {"msgid": form["messageid"]} if known else None
            return HttpResponse(200, {}, json.dumps({"code": "0", "row": row}).encode())
        items = json.loads(request.body)["items"]
        if self.answer == "killed_unsent":
            raise WorkerKilled
        if on_written is not None:
            on_written()
        self.accepted.extend(i["sysMessageId"] for i in items)
        if self.answer == "killed_sent":
            raise WorkerKilled
        if self.answer == "lost":
            raise AmbiguousError("read timeout after the request was written", code="timeout")
        data = [
            {"phone": i["phone"], "messageid": i["sysMessageId"], "status": "Success"}
            for i in items
        ]
        return HttpResponse(200, {}, json.dumps({"code": 0, "data": data}).encode())


class ClosedGate:
    """A rate limiter whose departure window stays full: every request is given back."""

    def depart(self, account: Any, messages: int) -> None:
        return None

    def try_depart(self, account: Any, messages: int, **_: Any) -> float:
        return 60.0  # longer than a batch is parked for: given back

    def release_slot(self, account: Any, slot: str) -> None:
        pass


class Granted:
    """A reservation whose slot has come."""

    def wait_for_slot(self, **_: Any) -> bool:
        return True


@dataclass(frozen=True)
class Batch:
    """One request's worth of a claim: what a worker holds between claim and outcome."""

    token: str
    group_key: str
    rows: tuple[repo.Claimed, ...]

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(r.id for r in self.rows)


class Dispatcher(RuleBasedStateMachine):
    batches = Bundle("batches")

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.TemporaryDirectory()
        url = f"sqlite:///{Path(self.dir.name) / 'sm.db'}"
        self.cfg: Settings = make_settings(url, max_attempts=50)
        self.account = self.cfg.account("nx")
        self.adapter = adapter_for(self.account.channel)
        self.engine = make_engine(url)
        create_schema(self.engine)
        with self.engine.begin() as conn:
            for statement in _STATUS_LOG:
                conn.exec_driver_sql(statement)
        self.provider = Provider()
        self.ctx = self._context()
        self.clock = time.time()
        with self.engine.begin() as conn:
            conn.execute(
                jobs_table.insert().values(
                    id="job",
                    account="nx",
                    channel="nxcloud.sms",
                    total=N,
                    content_hash="h",
                    created_at=self.clock,
                )
            )
        part = [[i, {"phone": f"+86139000000{i:02d}", "content": "x"}] for i in range(N)]
        store_part(self.engine, "job", part, rules_for("nxcloud.sms"), None)
        with self.engine.begin() as conn:
            conn.execute(sa.update(messages_table).values(due_at=0))
            # Two group keys, so a claim can span two requests, each departing on its own
            # (as VMS TaskOpenIds do): departure is per (claim, group), not per claim.
            conn.execute(sa.update(messages_table).where(m.seq % 2 == 1).values(group_key="g"))

    def _context(self, limiter: Any = None) -> Context:
        return Context(
            self.cfg,
            self.engine,
            fakeredis.FakeRedis(server=fakeredis.FakeServer()),  # nothing shared between runs
            self.provider,
            lambda *a: None,
            clock=lambda: self.clock,
            _limiter=limiter,
        )

    def teardown(self) -> None:
        self.engine.dispose()
        self.dir.cleanup()

    def statuses(self) -> dict[str, str]:
        with self.engine.connect() as conn:
            return {r.id: r.status for r in conn.execute(sa.select(m.id, m.status))}

    @contextmanager
    def model_time(self) -> Iterator[None]:
        """The worker's ``time.time()`` reads the model's clock, so a lease the model let
        expire is expired for the worker too."""
        with mock.patch("time.time", lambda: self.clock):
            yield

    def send(self, batch: Batch, answer: str, ctx: Context | None = None, **kw: Any) -> None:
        """The worker's part after the claim: the real ``send_batch`` for one request."""
        self.provider.answer = answer
        with self.model_time(), suppress(WorkerKilled):
            send_batch(
                ctx or self.ctx,
                self.account,
                self.adapter,
                batch.token,
                batch.rows,
                Report(),
                **kw,
            )

    def claim_batches(self, limit: int) -> list[Batch]:
        claim = repo.claim(self.engine, "nx", limit, lease_s=30, now=self.clock)
        groups: dict[str, list[repo.Claimed]] = {}
        for x in claim.messages:
            groups.setdefault(x.group_key, []).append(x)
        return [Batch(claim.token, g, tuple(rows)) for g, rows in groups.items()]

    @rule(target=batches, limit=st.integers(1, N))
    def claim(self, limit: int) -> Any:
        self.clock += 1
        return multiple(*self.claim_batches(limit))

    @rule(batch=consumes(batches), answer=st.sampled_from(ANSWERS))
    def depart_and_send(self, batch: Batch, answer: str) -> None:
        """A live worker sends (giving the batch back if its lease is gone) and records the
        answer; if the answer was lost, the batch is ``unknown``. Or it is killed during
        the request, which may or may not have reached the provider."""
        self.send(batch, answer)

    @rule(batch=consumes(batches))
    def gate_refuses(self, batch: Batch) -> None:
        """Departure marked, then the departure gate says no: unmarked and given back."""
        admission = Admission(list(batch.rows), reservation=Granted())  # type: ignore[arg-type]
        self.send(batch, "answered", self._context(ClosedGate()), admission=admission)

    @rule(batch=consumes(batches))
    def killed_before_departure(self, batch: Batch) -> None:
        """kill -9 between the claim and the departure mark: nothing is recorded."""

    @rule()
    def stall(self) -> None:
        """Time passes beyond every lease (workers paused, or just a quiet minute): held
        batches may resume later; lost ones become the sweep's. Not tied to a held batch,
        so a lease can also expire after its worker crashed."""
        self.clock += 60

    @rule(late=st.booleans())
    def sweep(self, late: bool) -> None:
        """The periodic sweep; ``late``: the first one after every lease has expired."""
        self.clock += 61 if late else 1
        repo.reclaim_expired(self.engine, self.cfg.accounts.values(), self.clock)

    @rule()
    def reconcile(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.update(messages_table).where(m.status == "unknown").values(due_at=0))
        with self.model_time():
            reconcile(self.ctx, self.account)
        with self.engine.begin() as conn:  # resends are due at once in this model
            conn.execute(sa.update(messages_table).where(m.status == "queued").values(due_at=0))

    @invariant()
    def every_change_is_a_transition(self) -> None:
        """Every status a message was written with follows the transitions table."""
        with self.engine.begin() as conn:
            changes = conn.exec_driver_sql("SELECT id, old, new FROM status_log").all()
            conn.exec_driver_sql("DELETE FROM status_log")
        for message_id, old, new in changes:
            if old is None:
                assert Status(new) in INITIAL, f"{message_id} created as {new}"
            else:
                assert allowed(old, new), f"{message_id}: {old} -> {new} not in TRANSITIONS"
                assert Status(new) in TRANSITIONS[Status(old)]

    @invariant()
    def accepted_is_never_requeued(self) -> None:
        """What the provider has is never queued again: a lost batch that had departed is
        reconciled, and a resend happens only when the provider says it never got it."""
        statuses = self.statuses()
        requeued = {i for i in self.provider.accepted if statuses[i] in ("queued", "deferred")}
        assert not requeued, f"accepted but queued again: {requeued}"

    @invariant()
    def every_sending_message_has_its_batch(self) -> None:
        """The sweep finds lost work through ``batches``: a claimed message without its
        batch row would never be reclaimed."""
        b = batches_table.c
        with self.engine.connect() as conn:
            orphans = conn.execute(
                sa.select(m.id).where(
                    m.status == "sending",
                    ~sa.exists().where(b.claim_token == m.claim_token, b.group_key == m.group_key),
                )
            ).all()
        assert not orphans, orphans

    @invariant()
    def never_twice(self) -> None:
        dupes = {i for i in self.provider.accepted if self.provider.accepted.count(i) > 1}
        assert not dupes, f"accepted twice: {dupes}"

    @invariant()
    def sent_means_provider_has_it(self) -> None:
        for message_id, status in self.statuses().items():
            if status == "sent":
                assert message_id in self.provider.accepted

    @rule()
    def finish(self) -> None:
        """Drive everything home: expire leases, reconcile, send what is queued."""
        for _ in range(5):
            self.clock += 120
            repo.reclaim_expired(self.engine, self.cfg.accounts.values(), self.clock)
            self.accepted_is_never_requeued()
            self.reconcile()
            self.every_change_is_a_transition()
            for batch in self.claim_batches(N):
                self.send(batch, "answered")
            self.every_change_is_a_transition()
        statuses = self.statuses()
        assert set(statuses.values()) <= {"sent", "failed"}, statuses
        sent = {i for i, s in statuses.items() if s == "sent"}
        assert sent == set(self.provider.accepted)


TestDispatcher = Dispatcher.TestCase
TestDispatcher.settings = settings(max_examples=100, stateful_step_count=30, deadline=None)
