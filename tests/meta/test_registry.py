"""Every channel in the registry is complete: rules, an importable adapter, a batch limit, a
simulator route that accepts the adapter's request, and a docs/providers.md section."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any, get_args

import pytest

from teledispatch.channels.base import Adapter, OutMessage
from teledispatch.channels.codes import Kind, Outcome, classify
from teledispatch.channels.nxcloud import codes as nxcloud_codes
from teledispatch.channels.registry import CHANNEL_IDS, CHANNELS, ChannelSpec
from teledispatch.channels.uspeedo import codes as uspeedo_codes
from teledispatch.channels.volc import codes as volc_codes
from teledispatch.config import parse_config
from teledispatch.errors import (
    DispatchError,
    MalformedResponseError,
    RejectedError,
    RetryableProviderError,
    ThrottledError,
)
from teledispatch.simulator.config_file import render_config
from teledispatch.simulator.context import SimOptions
from teledispatch.simulator.state import AXN_PHONE_X, AXN_POOL_NO, VMS_TASKS
from teledispatch.simulator.testing import asgi_client, build_app
from teledispatch.validation import Problem

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "providers.md"


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lowercased, punctuation dropped, spaces to hyphens."""
    out = set()
    for line in markdown.splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*$", line)
        if m:
            out.add(re.sub(r"[^\w\- ]", "", m.group(1).lower()).replace(" ", "-"))
    return out


def _sample(channel: str, now: float) -> dict[str, Any]:
    """One valid recipient per channel, in terms the simulator accepts."""
    samples: dict[str, dict[str, Any]] = {
        "nxcloud.sms": {"phone": "+8613700000001", "content": "hi"},
        "uspeedo.sms": {"phone": "+8613700000002", "template_id": "t", "sender_id": "s"},
        "volc.vms.append": {"phone": "+8613700000003", "task_open_id": VMS_TASKS[0]},
        "volc.axn.bind": {
            "phone": "+8613700000004",
            "phone_x": "+86" + AXN_PHONE_X[0],
            "number_pool_no": AXN_POOL_NO,
            "expire_time": int(now) + 3600,
        },
    }
    if channel not in samples:
        pytest.fail(f"add a sample recipient for {channel!r} to tests/meta/test_registry.py")
    return samples[channel]


def test_channel_ids_are_the_registry_keys() -> None:
    assert tuple(CHANNELS) == CHANNEL_IDS
    assert all(spec.id == key for key, spec in CHANNELS.items())


@pytest.mark.parametrize("channel", CHANNEL_IDS)
def test_every_channel_has_rules_adapter_batch_and_docs(channel: str) -> None:
    spec: ChannelSpec = CHANNELS[channel]
    assert spec.rules.channel == channel
    assert spec.adapter.channel == channel
    assert spec.max_batch >= 1
    assert spec.docs_anchor in _anchors(DOC.read_text("utf-8")), spec.docs_anchor
    for path in (spec.poller_path, spec.parser_path):
        if path is not None:
            module, _, name = path.partition(":")
            assert hasattr(__import__(module, fromlist=[name]), name), path


@pytest.mark.parametrize("channel", CHANNEL_IDS)
def test_every_channel_is_served_by_the_simulator(channel: str) -> None:
    """The adapter's own request, from a validated recipient, is accepted by the simulator."""
    sim, app, clock = build_app(SimOptions())
    accounts = parse_config(
        tomllib.loads(render_config("http://sim.test", sim.credentials, SimOptions()))
    )
    account = next(a for a in accounts.values() if a.channel == channel)
    problems: list[Problem] = []
    fields = CHANNELS[channel].rules.validate(0, _sample(channel, clock.now), problems, clock.now)
    assert fields is not None, problems
    message = OutMessage("meta-0000000001", str(fields.pop("phone")), fields)
    adapter: Adapter = CHANNELS[channel].adapter
    request = adapter.build_request(account, [message], clock.now)

    async def send() -> tuple[int, dict[str, str], bytes]:
        async with asgi_client(app) as client:
            resp = await client.request(
                request.method, request.url, headers=dict(request.headers), content=request.body
            )
            return resp.status_code, dict(resp.headers), resp.content

    status, headers, body = asyncio.run(send())
    result = adapter.parse_response([message], status, headers, body)
    assert [o.status for o in result.items] == ["sent"], (status, body[:300])


def test_importing_the_producer_loads_no_adapter() -> None:
    code = (
        "import sys, teledispatch.producer, teledispatch.producer.submit;"
        "print([m for m in sys.modules if m.startswith('teledispatch.channels') and"
        " m.rsplit('.', 1)[-1] in ('adapter', 'vms_adapter', 'axn_adapter')])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"


def test_the_poll_loop_names_no_channel() -> None:
    text = (ROOT / "worker" / "receipts.py").read_text("utf-8")
    assert [c for c in CHANNEL_IDS if c in text] == []
    assert [c for c, spec in CHANNELS.items() if spec.poller is not None] == ["uspeedo.sms"]


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("throttled", ThrottledError),
        ("retry", RetryableProviderError),
        ("reject", RejectedError),
        ("reject_account", RejectedError),
        ("malformed", MalformedResponseError),
    ],
)
def test_every_outcome_kind_has_its_error(kind: Kind, error: type[DispatchError]) -> None:
    got = classify({"X1": Outcome(kind, "why")}, "X1", "", Outcome("reject", "default"))
    assert type(got) is error
    assert (got.code, got.message) == ("X1", "why")


def test_code_tables_hold_only_known_kinds() -> None:
    kinds = set(get_args(Kind))
    tables = (nxcloud_codes.CODES, uspeedo_codes.CODES, volc_codes.CODES)
    assert all(o.kind in kinds for table in tables for o in table.values())
