"""Routes: a job names a route instead of an account, and each message may move on to the
route's next account when its provider is down or refuses it.

```toml
[routes.sms]
accounts = ["nxcloud", "uspeedo"]      # or per destination country:
# "86" = ["nxcloud", "uspeedo"]
# "*" = ["uspeedo"]

[routes.sms.uspeedo]                    # a USpeedo member's full-variable template
template_id = "T100"
sender_id = "ACME"
```

A route carries text (``content``); each member's channel sends it its own way: NXCloud as
``content``, USpeedo as the single parameter of the member's template. This module is pure:
config parsing, which members serve a number, and a message's payload for a member. Moving a
message is ``teledispatch.db.messages.failover``; deciding to is ``worker/dispatch/failover``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from teledispatch.channels.ids import NXCLOUD_SMS, USPEEDO_SMS

#: Channels a route may use: the ones that send a text (NXCloud free text, USpeedo templates).
ROUTE_CHANNELS = frozenset({NXCLOUD_SMS, USPEEDO_SMS})
#: The fields a route job's recipients may have: the text is the route's, not a provider's.
ROUTE_FIELDS = frozenset({"phone", "content"})
_MEMBER_KEYS = frozenset({"template_id", "sender_id"})


@dataclass(frozen=True, slots=True)
class Member:
    """A route's settings for one of its accounts (USpeedo: the template carrying the text)."""

    template_id: str = ""
    sender_id: str = ""


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    #: ``(prefix, accounts)`` longest prefix first; ``*`` (or ``accounts``) is the last.
    lists: tuple[tuple[str, tuple[str, ...]], ...]
    members: Mapping[str, Member]
    #: ``quiet_hours = "21:00-08:00"`` of the route: between a job's own and its account's.
    quiet_hours: str | None = None
    #: The webhook default of the route's jobs (a job's own wins; else its first account's).
    callback_url: str | None = None
    #: Signs the webhooks of the route's jobs (else each job's account's secret signs them);
    #: written as ``ENV:NAME``. Kept out of the repr: a logged route must not show it.
    callback_secret: str = field(default="", repr=False)

    def accounts_for(self, phone: str) -> tuple[str, ...]:
        """The accounts that may send to ``phone`` (E.164), in order; () if none serves it."""
        digits = phone.lstrip("+")
        for prefix, accounts in self.lists:
            if prefix == "*" or digits.startswith(prefix):
                return accounts
        return ()

    @property
    def all_accounts(self) -> frozenset[str]:
        return frozenset(a for _, accounts in self.lists for a in accounts)

    def next_account(self, phone: str, current: str) -> str | None:
        """The member after ``current`` for this number; None once the list is spent."""
        accounts = self.accounts_for(phone)
        if current not in accounts:
            return None
        later = accounts[accounts.index(current) + 1 :]
        return later[0] if later else None


def text_of(payload: Mapping[str, Any]) -> str:
    """The route's text from a member's payload (either channel's form)."""
    if isinstance(payload.get("content"), str):
        return str(payload["content"])
    params = payload.get("template_params")
    return str(params[0]) if isinstance(params, list) and params else ""


def payload_for(route: Route, account: str, channel: str, phone: str, text: str) -> dict[str, Any]:
    """A route message as ``account`` (of ``channel``) sends it."""
    if channel == USPEEDO_SMS:
        member = route.members.get(account, Member())
        return {
            "phone": phone,
            "template_id": member.template_id,
            "sender_id": member.sender_id,
            "template_params": [text],
        }
    return {"phone": phone, "content": text}


def _account_list(value: Any, where: str, problems: list[str]) -> tuple[str, ...]:
    if not (isinstance(value, list) and value and all(isinstance(a, str) for a in value)):
        problems.append(f"{where}: must be a non-empty list of account names")
        return ()
    if len(set(value)) != len(value):
        problems.append(f"{where}: names an account twice")
    return tuple(value)


def _member(value: dict[str, Any], where: str, problems: list[str]) -> Member:
    unknown = set(value) - _MEMBER_KEYS
    if unknown:
        problems.append(f"{where}: unknown keys {sorted(unknown)} (known: template_id, sender_id)")
    fields = {k: value.get(k, "") for k in _MEMBER_KEYS}
    if not all(isinstance(v, str) for v in fields.values()):
        problems.append(f"{where}: template_id and sender_id must be strings")
        return Member()
    return Member(**fields)


def _entry(
    key: str, value: Any, where: str, problems: list[str], lists: dict[str, tuple[str, ...]]
) -> Member | None:
    """One key of a route's table: an account list (returned via ``lists``) or a member."""
    if key == "accounts":
        key = "*"
    if key == "*" or key.isdigit():
        if key in lists:
            problems.append(f"{where}: 'accounts' and '*' are the same list; give one")
        lists[key] = _account_list(value, where, problems)
        return None
    if isinstance(value, dict):
        return _member(value, where, problems)
    problems.append(f"{where}: a country code, '*', 'accounts' or an account's table")
    return None


def _check_members(
    name: str, route: Route, channels: Mapping[str, str], problems: list[str]
) -> None:
    for account in sorted(route.all_accounts | set(route.members)):
        where = f"routes.{name}.{account}"
        channel = channels.get(account)
        if channel is None:
            problems.append(f"{where}: not a configured account")
        elif channel not in ROUTE_CHANNELS:
            problems.append(f"{where}: channel {channel} cannot carry a route's text")
        elif channel == USPEEDO_SMS and not route.members.get(account, Member()).template_id:
            problems.append(f"{where}: a USpeedo member needs template_id (and sender_id)")


def _quiet_hours(name: str, value: Any, problems: list[str]) -> str | None:
    # Imported here: the quiet-hours module loads phonenumbers, which reading the config
    # (every CLI verb) must not pay for.
    from teledispatch.quiet_hours import QuietHoursError, validate

    if value is None:
        return None
    if not isinstance(value, str):
        problems.append(f'routes.{name}.quiet_hours: must be text like "21:00-08:00"')
        return None
    try:
        return validate(value)
    except QuietHoursError as exc:
        problems.append(f"routes.{name}.quiet_hours: {exc}")
        return None


_CALLBACK_KEYS = ("callback_url", "callback_secret")


def _text(name: str, key: str, value: Any, problems: list[str]) -> str:
    """A route's text setting; ``ENV:NAME`` is read from the environment, as in accounts."""
    if value is None:
        return ""
    if not isinstance(value, str):
        problems.append(f"routes.{name}.{key}: must be text")
        return ""
    if value.startswith("ENV:"):
        if value[4:] not in os.environ:
            problems.append(f"routes.{name}.{key}: environment variable {value[4:]} is not set")
            return ""
        return os.environ[value[4:]]
    return value


def parse_route(
    name: str, table: Any, channels: Mapping[str, str], problems: list[str]
) -> Route | None:
    """One ``[routes.NAME]`` table; problems are appended, each naming its key."""
    if not isinstance(table, dict):
        problems.append(f"routes.{name}: must be a table")
        return None
    lists: dict[str, tuple[str, ...]] = {}
    members: dict[str, Member] = {}
    if "@" in name:
        problems.append(f"routes.{name}: a route's name may not contain '@'")
    quiet = _quiet_hours(name, table.get("quiet_hours"), problems)
    callback = {k: _text(name, k, table.get(k), problems) for k in _CALLBACK_KEYS}
    for key, value in table.items():
        if key == "quiet_hours" or key in _CALLBACK_KEYS:
            continue
        member = _entry(str(key), value, f"routes.{name}.{key}", problems, lists)
        if member is not None:
            members[str(key)] = member
    if not lists:
        problems.append(f"routes.{name}: give accounts = [...] or lists per country code")
        return None
    # Longest prefix first, so "861" wins over "86"; "*" last.
    order = sorted(lists, key=lambda p: (p == "*", -len(p)))
    route = Route(
        name,
        tuple((p, lists[p]) for p in order),
        members,
        quiet,
        callback["callback_url"] or None,
        callback["callback_secret"],
    )
    _check_members(name, route, channels, problems)
    return route


def parse_routes(data: Any, channels: Mapping[str, str], problems: list[str]) -> dict[str, Route]:
    """The ``[routes]`` table (``channels``: each configured account's channel)."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        problems.append("[routes] must be a table of tables")
        return {}
    routes: dict[str, Route] = {}
    for name, table in data.items():
        route = parse_route(str(name), table, channels, problems)
        if route is not None:
            routes[str(name)] = route
    return routes
