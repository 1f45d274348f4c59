"""Bounded fuzzing of the input doors: whatever a CSV file or a job's recipients hold, the
answer is recipients or a refusal naming the problem, never another exception."""

from __future__ import annotations

import io
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from teledispatch.config import Settings, parse_config
from teledispatch.csv_input import CsvRefused, csv_recipients
from teledispatch.producer.submit import validate_stream
from teledispatch.validation import ValidationFailed

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

CFG = Settings(
    accounts=parse_config(
        {
            "accounts": {
                name: {"channel": channel, "base_url": "http://127.0.0.1:9"}
                for name, channel in (
                    ("nx", "nxcloud.sms"),
                    ("us", "uspeedo.sms"),
                    ("vms", "volc.vms.append"),
                    ("axn", "volc.axn.bind"),
                )
            }
        }
    )
)

#: Cells that look like CSV: separators, quotes, line ends and NULs among ordinary text.
_TOKENS = [*'ab1+86 ,"\r\n\x00é中\t', "phone", "content", "13800138000"]
_CSV_TEXT = st.lists(st.sampled_from(_TOKENS), max_size=60).map("".join)
_PHONES = st.one_of(
    st.text(max_size=20),
    st.from_regex(r"\+?[0-9 ()\-a-z]{0,18}", fullmatch=True),
    st.integers(),
    st.none(),
    st.floats(allow_nan=True),
    st.lists(st.integers(), max_size=2),
)
_VALUES = st.one_of(
    st.text(max_size=30), st.integers(), st.none(), st.booleans(), st.floats(), _PHONES
)
_RECIPIENT = st.dictionaries(
    st.sampled_from(
        ["phone", "phone_a", "phone_b", "phone_x", "content", "template_id", "sender_id",
         "template_params", "task_open_id", "number_pool_no", "expire_time", "ext", "x"]
    ),
    _VALUES,
    max_size=6,
)  # fmt: skip


@FUZZ
@given(text=_CSV_TEXT)
def test_any_csv_text_is_recipients_or_a_refusal(text: str) -> None:
    try:
        rows = list(csv_recipients(io.StringIO(text, newline=""), "fuzz"))
    except CsvRefused as exc:
        assert exc.rule and "fuzz" in str(exc)
        return
    for row in rows:
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in row.items())
        assert all("\x00" not in k + v for k, v in row.items())
        assert all(v != "" for v in row.values())


@FUZZ
@given(
    account=st.sampled_from(["nx", "us", "vms", "axn", "nope"]),
    recipients=st.lists(_RECIPIENT, min_size=1, max_size=4),
    defaults=_RECIPIENT,
)
def test_any_recipients_are_counted_or_refused_with_problems(
    account: str, recipients: list[dict[str, Any]], defaults: dict[str, Any]
) -> None:
    try:
        count = validate_stream(account, recipients, defaults=defaults, cfg=CFG)
    except ValidationFailed as exc:
        assert exc.total >= 1 and exc.problems
        assert all(p.field and p.rule for p in exc.problems)
        return
    assert count == len(recipients)
