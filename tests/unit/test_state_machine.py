"""A hypothesis state machine over the dispatcher's database protocol.

Workers claim (a claim may span two requests: two group keys), mark a request's departure
on its batch row, send (answered, or answer lost), are refused by the departure gate, crash
(before or after the mark; after it, the request may or may not have arrived), or stall past
their lease; the sweep reclaims and reconciliation asks the provider. After every step: no
message reached the provider twice, nothing the provider has is queued again, every ``sent``
message is one the provider has, and every claimed message has the batch row the sweep needs.
At the end, everything is driven to a terminal state, and sent == what the provider accepted.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
from teledispatch.channels.rules_registry import rules_for
from teledispatch.config import Settings
from teledispatch.db import messages as repo
from teledispatch.db.engine import make_engine
from teledispatch.db.tables import batches_table, create_schema, jobs_table, messages_table
from teledispatch.producer.submit import store_part
from teledispatch.worker.context import Context
from teledispatch.worker.reconcile import reconcile
from teledispatch.worker.transport import HttpResponse

from ..conftest import make_settings

N = 6
m = messages_table.c


class Provider:
    """Keeps what it accepted; answers NXCloud status queries from that."""

    def __init__(self) -> None:
        self.accepted: list[str] = []

    def warm(self) -> None:
        pass

    def send(
        self,
        request: HttpRequest,
        timeout_s: float,
        on_written: Callable[[], None] | None = None,
    ) -> HttpResponse:
        import urllib.parse

        form = dict(urllib.parse.parse_qsl(request.body.decode()))
        row = {"msgid": form["messageid"]} if form["messageid"] in self.accepted else None
        return HttpResponse(200, {}, json.dumps({"code": "0", "row": row}).encode())


@dataclass(frozen=True)
class Batch:
    """One request's worth of a claim: what a worker holds between claim and outcome."""

    token: str
    group_key: str
    ids: tuple[str, ...]


class Dispatcher(RuleBasedStateMachine):
    batches = Bundle("batches")

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.TemporaryDirectory()
        url = f"sqlite:///{Path(self.dir.name) / 'sm.db'}"
        self.cfg: Settings = make_settings(url, max_attempts=50)
        self.engine = make_engine(url)
        create_schema(self.engine)
        self.provider = Provider()
        self.ctx = Context(
            self.cfg,
            self.engine,
            fakeredis.FakeRedis(),
            self.provider,
            lambda *a: None,  # type: ignore[arg-type]
        )
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

    def teardown(self) -> None:
        self.engine.dispose()
        self.dir.cleanup()

    def statuses(self) -> dict[str, str]:
        with self.engine.connect() as conn:
            return {r.id: r.status for r in conn.execute(sa.select(m.id, m.status))}

    def give_back(self, batch: Batch) -> None:
        """What a worker does with a batch it may not send: requeue what is still its own."""
        updates = [
            repo.Update(i, repo.QUEUED, None, None, None, self.clock, True) for i in batch.ids
        ]
        repo.apply(self.engine, batch.token, updates, self.clock, finish=batch.group_key)

    @rule(target=batches, limit=st.integers(1, N))
    def claim(self, limit: int) -> Any:
        self.clock += 1
        claim = repo.claim(self.engine, "nx", limit, lease_s=30, now=self.clock)
        groups: dict[str, list[str]] = {}
        for x in claim.messages:
            groups.setdefault(x.group_key, []).append(x.id)
        return multiple(*(Batch(claim.token, g, tuple(ids)) for g, ids in groups.items()))

    @rule(batch=consumes(batches), lost=st.booleans())
    def depart_and_send(self, batch: Batch, lost: bool) -> None:
        """A live worker: marks departure (refusing if its lease is gone, and then giving the
        batch back), sends, and records the answer, or, if the answer was lost, marks the
        batch unknown."""
        if not repo.mark_departing(self.engine, batch.token, batch.group_key, self.clock):
            self.give_back(batch)
            return
        self.provider.accepted.extend(batch.ids)
        status = repo.UNKNOWN if lost else repo.SENT
        updates = [repo.Update(i, status, None if lost else i, None, None, 0) for i in batch.ids]
        repo.apply(self.engine, batch.token, updates, self.clock, finish=batch.group_key)

    @rule(batch=consumes(batches))
    def gate_refuses(self, batch: Batch) -> None:
        """Departure marked, then the rate gate says no: unmarked and given back unsent."""
        if repo.mark_departing(self.engine, batch.token, batch.group_key, self.clock):
            repo.unmark_departing(self.engine, batch.token, batch.group_key)
        self.give_back(batch)

    @rule(batch=consumes(batches), departed=st.booleans(), reached=st.booleans())
    def crash(self, batch: Batch, departed: bool, reached: bool) -> None:
        """kill -9 before or after the departure mark; after it, the request may or may not
        have reached the provider. Nothing is recorded."""
        marked = departed and repo.mark_departing(
            self.engine, batch.token, batch.group_key, self.clock
        )
        if marked and reached:
            self.provider.accepted.extend(batch.ids)

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
        reconcile(self.ctx, self.cfg.account("nx"))
        with self.engine.begin() as conn:  # resends are due at once in this model
            conn.execute(sa.update(messages_table).where(m.status == "queued").values(due_at=0))

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
            claim = repo.claim(self.engine, "nx", N, lease_s=30, now=self.clock)
            groups: dict[str, list[str]] = {}
            for x in claim.messages:
                groups.setdefault(x.group_key, []).append(x.id)
            for g, ids in groups.items():
                self.depart_and_send(Batch(claim.token, g, tuple(ids)), lost=False)
        statuses = self.statuses()
        assert set(statuses.values()) <= {"sent", "failed"}, statuses
        sent = {i for i, s in statuses.items() if s == "sent"}
        assert sent == set(self.provider.accepted)


TestDispatcher = Dispatcher.TestCase
TestDispatcher.settings = settings(max_examples=100, stateful_step_count=30, deadline=None)
