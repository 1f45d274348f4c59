"""A hypothesis state machine over the dispatcher's database protocol.

Workers claim, mark departure, send (answered, or answer lost), crash, or stall past their
lease; the sweep reclaims and reconciliation asks the provider. After every step: no message
reached the provider twice, and every ``sent`` message is one the provider has. At the end,
everything is driven to a terminal state, and sent == what the provider accepted.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
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
    rule,
)

from producer.channels import rules_for
from producer.config import Settings
from producer.store import create_schema, jobs_table, make_engine, messages_table
from producer.submit import store_part
from worker import repo
from worker.context import Context
from worker.providers.base import HttpRequest
from worker.reconcile import reconcile
from worker.transport import HttpResponse

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


class Dispatcher(RuleBasedStateMachine):
    claims = Bundle("claims")

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

    def teardown(self) -> None:
        self.engine.dispose()
        self.dir.cleanup()

    def statuses(self) -> dict[str, str]:
        with self.engine.connect() as conn:
            return {r.id: r.status for r in conn.execute(sa.select(m.id, m.status))}

    @rule(target=claims, limit=st.integers(1, N))
    def claim(self, limit: int) -> Any:
        self.clock += 1
        return repo.claim(self.engine, "nx", limit, lease_s=30, now=self.clock)

    @rule(claim=consumes(claims), lost=st.booleans())
    def depart_and_send(self, claim: repo.Claim, lost: bool) -> None:
        """A live worker: marks departure (refusing if its lease is gone), sends, and records
        the answer, or, if the answer was lost, marks the batch unknown."""
        ids = [x.id for x in claim.messages]
        if not ids or repo.mark_departing(self.engine, claim.token, ids, self.clock) < len(ids):
            return
        self.provider.accepted.extend(ids)
        status = repo.UNKNOWN if lost else repo.SENT
        updates = [repo.Update(i, status, None if lost else i, None, None, 0) for i in ids]
        repo.apply(self.engine, claim.token, updates, self.clock)

    @rule(claim=consumes(claims), departed=st.booleans())
    def crash(self, claim: repo.Claim, departed: bool) -> None:
        """kill -9 before or after the request left; nothing is recorded."""
        ids = [x.id for x in claim.messages]
        marked = departed and bool(ids)
        if marked and repo.mark_departing(self.engine, claim.token, ids, self.clock) == len(ids):
            self.provider.accepted.extend(ids)

    @rule(claim=claims)
    def stall(self, claim: repo.Claim) -> None:
        """The worker is paused past its lease; it keeps the claim and may resume later."""
        self.clock += 60

    @rule()
    def sweep(self) -> None:
        self.clock += 1
        repo.reclaim_expired(self.engine, self.cfg.accounts.values(), self.clock)

    @rule()
    def reconcile(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.update(messages_table).where(m.status == "unknown").values(due_at=0))
        reconcile(self.ctx, self.cfg.account("nx"))
        with self.engine.begin() as conn:  # resends are due at once in this model
            conn.execute(sa.update(messages_table).where(m.status == "queued").values(due_at=0))

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
            self.reconcile()
            claim = repo.claim(self.engine, "nx", N, lease_s=30, now=self.clock)
            self.depart_and_send(claim, lost=False)
        statuses = self.statuses()
        assert set(statuses.values()) <= {"sent", "failed"}, statuses
        sent = {i for i, s in statuses.items() if s == "sent"}
        assert sent == set(self.provider.accepted)


TestDispatcher = Dispatcher.TestCase
TestDispatcher.settings = settings(max_examples=60, stateful_step_count=25, deadline=None)
