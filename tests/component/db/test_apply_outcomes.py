"""``repo.apply`` writes exactly the outcomes it is given, on SQLite and PostgreSQL.

The outcomes travel to the database as one encoded parameter per batch and are unpacked by
SQL, so every value must survive the encoding unchanged: text with quotes, backslashes,
braces, commas and non-ASCII characters (which an array or JSON literal must escape), NULLs
(which must stay NULL, not become the text ``"null"``), long error texts (cut to 1,000
characters), and due times to the last bit. The compare-and-set rules are checked on the
same rows: a stale token changes nothing, an id given twice keeps its first outcome.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from teledispatch.db import messages as repo
from teledispatch.db.tables import messages_table
from tests.support import due_job

m = messages_table.c
NOW = 1_700_000_000.25

#: Texts an encoder must escape, or that naive unpacking would mangle.
AWKWARD = [
    "plain",
    "quote ' and \" double",
    "back\\slash \\\\ and \\u00e9 literally",
    "{braces,commas} [brackets] NULL null",
    "ünïcødé 中文 😀 emoji",
    "new\nline\ttab\r",
    " leading and trailing spaces ",
    "null",
]


def _rows(engine: Engine, ids: list[str]) -> dict[str, Any]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(messages_table).where(m.id.in_(ids))).all()
    return {r.id: r for r in rows}


def test_awkward_values_round_trip(database_url: str) -> None:
    n = len(AWKWARD)
    engine = due_job(database_url, 2 * n + 2)
    claim = repo.claim(engine, "nx", 2 * n + 2, lease_s=60, now=10)
    ids = [c.id for c in claim.messages]
    failed, sent, (long_one, empty_one) = ids[:n], ids[n : 2 * n], ids[2 * n :]
    due = NOW + 0.1  # not exactly representable in decimal: must come back bit for bit
    updates = [
        repo.Update.failed(i, f"c{k}'\\", text)
        for k, (i, text) in enumerate(zip(failed, AWKWARD, strict=True))
    ]
    updates += [repo.Update.sent(i, text[:100]) for i, text in zip(sent, AWKWARD, strict=True)]
    updates.append(repo.Update.retry(long_one, due, "x", "é" * 999 + "€✓" + "z" * 50))
    updates.append(repo.Update.unknown(empty_one, due, None, ""))
    assert repo.apply(engine, claim.token, updates, NOW) == len(ids)

    rows = _rows(engine, ids)
    for k, (i, text) in enumerate(zip(failed, AWKWARD, strict=True)):
        r = rows[i]
        assert (r.status, r.error_code, r.error_text) == ("failed", f"c{k}'\\", text)
        assert r.provider_id is None  # NULL stays NULL, not the text "null"
        assert r.sent_at is None
        assert r.due_at == NOW  # no due time given: due now
    for i, text in zip(sent, AWKWARD, strict=True):
        r = rows[i]
        assert (r.status, r.provider_id, r.error_code, r.error_text) == (
            "sent",
            text[:100],
            None,
            None,
        )
        assert r.sent_at == NOW
    r = rows[long_one]
    assert r.error_text == "é" * 999 + "€"  # cut to 1,000 characters, not bytes
    assert r.due_at == due
    r = rows[empty_one]
    assert r.status == "unknown"
    assert r.error_text is None and r.error_code is None  # "" is stored as NULL
    assert r.due_at == due


def test_compare_and_set_first_outcome_refund_and_provider_id(database_url: str) -> None:
    engine = due_job(database_url, 4)
    first = repo.claim(engine, "nx", 4, lease_s=60, now=10)
    a, b, c, d = (x.id for x in first.messages)
    assert {x.attempts for x in first.messages} == {1}
    # ``b`` keeps a provider id from this attempt; ``d`` is handed back to the queue.
    assert repo.apply(engine, first.token, [repo.Update(b, "deferred", "pid-b", due_at=5.0)], 11)
    assert repo.apply(engine, first.token, [repo.Update.retry(d, 5.0, None, None)], 11)

    second = repo.claim(engine, "nx", 4, lease_s=60, now=12)
    assert {x.id for x in second.messages} == {b, d}
    updates = [
        repo.Update.sent(a, "stale"),  # a is not held by this claim: dropped
        repo.Update.failed(b, "e", "no provider id given"),
        repo.Update.sent(b, "second outcome for b"),  # given twice: the first stands
        repo.Update.requeue(d, 99.5),
        repo.Update.sent(c, "stale too"),
    ]
    assert repo.apply(engine, second.token, updates, 13) == 2
    assert repo.apply(engine, first.token, [repo.Update.sent(d, "old token")], 14) == 0

    rows = _rows(engine, [a, b, c, d])
    assert (rows[a].status, rows[a].provider_id) == ("sending", None)
    assert (rows[b].status, rows[b].provider_id, rows[b].error_text) == (
        "failed",
        "pid-b",  # COALESCE: an outcome without a provider id keeps the earlier one
        "no provider id given",
    )
    assert rows[b].attempts == 2 and rows[b].sent_at is None
    # Handed back: its place (due_at) kept, not claimed before its hold, the attempt refunded.
    assert (rows[d].status, rows[d].due_at, rows[d].attempts) == ("queued", 5.0, 1)
    assert rows[d].hold_until == 99.5
    assert rows[d].claim_token == second.token and rows[d].updated_at == 13


def test_empty_apply_changes_nothing(database_url: str) -> None:
    engine = due_job(database_url, 1)
    claim = repo.claim(engine, "nx", 1, lease_s=60, now=10)
    assert repo.apply(engine, claim.token, [], 11) == 0
    assert _rows(engine, [claim.messages[0].id])[claim.messages[0].id].status == "sending"


def test_provider_text_no_column_can_hold_is_made_storable(database_url: str) -> None:
    """Provider answers are not ours: a NUL, a lone surrogate (both valid in a JSON string)
    or an id longer than its column must not make the batch's outcomes unwritable, which
    would leave it claimed until the sweep turned it into ``unknown``."""
    engine = due_job(database_url, 5)
    claim = repo.claim(engine, "nx", 5, lease_s=60, now=10)
    a, b, c, d, e = (x.id for x in claim.messages)
    vms_id = "T" * 200 + ":+8613900000000"  # a Volcengine VMS id: TaskOpenId:phone
    updates = [
        repo.Update.failed(a, "nul\x00code", "before\x00after"),
        repo.Update.failed(b, "x" * 300, "lone \ud800 surrogate"),
        repo.Update.sent(c, "p\x00"),
        repo.Update.sent(d, vms_id),
        repo.Update.sent(e, "q" * 501),
    ]
    assert repo.apply(engine, claim.token, updates, NOW) == 5
    rows = _rows(engine, [a, b, c, d, e])
    assert (rows[a].error_code, rows[a].error_text) == ("nulcode", "beforeafter")
    assert (rows[b].error_code, rows[b].error_text) == ("x" * 64, "lone ? surrogate")
    # An id is stored exactly or not at all: a repaired or shortened one would match nothing.
    assert rows[d].provider_id == vms_id
    assert (rows[c].status, rows[c].provider_id) == ("sent", None)
    assert (rows[e].status, rows[e].provider_id) == ("sent", None)


def test_finish_keeps_the_batch_row_while_a_message_is_still_sending(database_url: str) -> None:
    """The sweep finds lost messages through the batch row: it goes only with the last one."""
    from teledispatch.db.tables import batches_table

    engine = due_job(database_url, 2)
    claim = repo.claim(engine, "nx", 2, lease_s=60, now=10)
    a, b = (x.id for x in claim.messages)
    group = claim.messages[0].group_key

    def batch_rows() -> int:
        with engine.connect() as conn:
            query = sa.select(sa.func.count()).where(batches_table.c.claim_token == claim.token)
            return int(conn.execute(query).scalar_one())

    assert repo.apply(engine, claim.token, [repo.Update.sent(a, "pa")], NOW, finish=group)
    assert batch_rows() == 1  # b is still sending under this claim
    assert repo.apply(engine, claim.token, [repo.Update.sent(b, "pb")], NOW, finish=group)
    assert batch_rows() == 0
