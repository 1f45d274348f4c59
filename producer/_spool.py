"""The spool: a job's validated rows, held in memory up to :data:`SPOOL_MEMORY_ROWS` and
in a temporary file beyond, with the running hash of the job; and the ``messages`` rows made
from them."""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections.abc import Iterator
from typing import IO, Any

from teledispatch import clock
from teledispatch.channels.base import ChannelRules
from teledispatch.channels.registry import text_field
from teledispatch.channels.sms_segments import measure
from teledispatch.quiet_hours import QUIET_CODE, Hold, Window, hold, zones_for
from teledispatch.statuses import DEFERRED, QUEUED

#: Validated rows a job keeps in memory (a few hundred bytes each); the rest wait in a file.
SPOOL_MEMORY_ROWS = 100_000

#: A validated recipient as stored: (index, phone, group key, payload JSON, SMS encoding,
#: SMS segments); the last two are None for a channel that sends no text of its own.
SpooledRow = tuple[int, str, str, str, str | None, int | None]

#: One encoder for every payload: ``json.dumps`` with these options builds a new one per call.
_encode_payload = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


class _Spool:
    """Validated rows ready to store, plus a running hash of the job.

    Each row is serialised once, at validation: the payload JSON is both what is stored and
    (as the line ``[index,payload]``) what is hashed, the same bytes the earlier JSON-lines
    spool hashed, so a job's content hash is unchanged across releases. The first
    :data:`SPOOL_MEMORY_ROWS` rows stay in memory as tuples; later ones are written to a
    temporary file as their line and read back with ``json`` only when stored.
    """

    def __init__(self, rules: ChannelRules) -> None:
        self.rules = rules
        self.text_field = text_field(rules.channel)
        self.rows: list[SpooledRow] = []
        self.file: IO[str] | None = None
        self.hash = hashlib.sha256()
        self.count = 0
        #: Rows refused, and of them duplicates: what a dry run reports.
        self.invalid_rows = 0
        self.duplicates = 0
        #: Keep adding valid rows after a problem was found (a dry run counts every one).
        self.keeps_all = False

    def add(self, index: int, fields: dict[str, Any]) -> None:
        payload = _encode_payload(fields)
        line = f"[{index},{payload}]"
        self.hash.update(line.encode())
        self.count += 1
        if len(self.rows) < SPOOL_MEMORY_ROWS:
            if self.text_field is None:
                self.rows.append(
                    (index, fields["phone"], self.rules.group_key(fields), payload, None, None)
                )
            else:
                self.rows.append(_row(self.rules, self.text_field, index, fields, payload))
            return
        if self.file is None:
            self.file = tempfile.TemporaryFile(mode="w+", encoding="utf-8")  # noqa: SIM115
        self.file.write(line)
        self.file.write("\n")

    def parts(self, size: int) -> Iterator[list[SpooledRow]]:
        rows = self.rows
        part: list[SpooledRow] = []
        for start in range(0, len(rows), size):
            part = rows[start : start + size]
            if len(part) < size:
                break  # topped up from the file below
            yield part
            part = []
        if self.file is not None:
            self.file.seek(0)
            for line in self.file:
                index, fields = json.loads(line)
                # The line is "[<index>,<payload>]\n": the payload is stored as it was hashed.
                payload = line[len(str(index)) + 2 : -2]
                part.append(_row(self.rules, self.text_field, index, fields, payload))
                if len(part) == size:
                    yield part
                    part = []
        if part:
            yield part

    def close(self) -> None:
        self.rows = []
        if self.file is not None:
            self.file.close()


def _row(
    rules: ChannelRules, text: str | None, index: int, fields: dict[str, Any], payload: str
) -> SpooledRow:
    """A spooled row, with the SMS text's encoding and segments when the channel has one."""
    encoding: str | None = None
    segments: int | None = None
    if text is not None and isinstance(fields.get(text), str):
        measured = measure(fields[text])
        encoding, segments = measured.encoding, measured.parts
    return (index, fields["phone"], rules.group_key(fields), payload, encoding, segments)


def spooled_rows(part: list[list[Any]], rules: ChannelRules) -> list[SpooledRow]:
    """``[index, fields]`` rows as the spool holds them."""
    text = text_field(rules.channel)
    return [_row(rules, text, index, fields, _encode_payload(fields)) for index, fields in part]


def records_for(
    job_id: str,
    account: str,
    channel: str,
    rows: list[SpooledRow],
    not_before: float | None,
    status: str = QUEUED,
    lane: tuple[int, float | None] = (1, None),
    quiet: str | None = None,
) -> list[dict[str, Any]]:
    """``messages`` rows for spooled rows: nothing is serialised again here. ``lane``: the
    job's stored ``(priority, expires_at)``; ``quiet``: its quiet hours, which store a row
    due in its recipient's quiet hours as ``deferred`` until they end."""
    now = time.time()
    due = max(now, not_before or 0.0)
    priority, expires_at = lane
    records = [
        {
            "id": f"{job_id}-{index}",
            "job_id": job_id,
            "seq": index,
            "account": account,
            "channel": channel,
            "phone": phone,
            "group_key": group_key,
            "payload": payload,
            "status": status,
            "due_at": due,
            "priority": priority,
            "expires_at": expires_at,
            "attempts": 0,
            "created_at": now,
            "updated_at": now,
            "encoding": encoding,
            "segments": segments,
        }
        for index, phone, group_key, payload, encoding, segments in rows
    ]
    if quiet and status == QUEUED:
        _hold_quiet(records, Window.parse(quiet), due)
    return records


def _hold_quiet(records: list[dict[str, Any]], window: Window, due: float) -> None:
    """Rows whose recipient is in quiet hours at their due time become ``deferred`` until the
    window opens, with the reason. Decided on the test clock when one is set (the workers
    compare due times with the same clock), so a test's workers and producer agree."""
    at = due + clock.offset()
    holds: dict[tuple[str, ...], Hold | None] = {}
    held_any = False
    for record in records:
        zones = zones_for(record["phone"])
        if not zones:
            continue
        if zones not in holds:  # one decision per zone set: a part shares one due time
            holds[zones] = hold(window, zones, at)
        held = holds[zones]
        if held is not None:
            held_any = True
            record["status"] = DEFERRED
            record["due_at"] = held.until
            record["error_code"] = QUIET_CODE
            record["error_text"] = held.reason
    if held_any:
        with_error_columns(records)


def with_error_columns(records: list[dict[str, Any]]) -> None:
    """Give every row the error columns once some have them: a part is written with the
    first row's columns (COPY, executemany)."""
    for record in records:
        record.setdefault("error_code", None)
        record.setdefault("error_text", None)
