"""Quiet hours in the recipient's time zone: pure decisions over a passed clock.

A window such as ``"21:00-08:00"`` (local wall-clock time, across midnight when the start is
after the end) is when nothing of the ``normal`` and ``low`` lanes may reach a recipient.
The recipient's time zones come from the number (``phonenumbers``' time-zone data); a
number whose prefix spans several zones (a Russian mobile, a US number without a known area)
is sendable only when the hour is allowed in ALL of them. A number with no zone data
(``Etc/Unknown``) is never held: holding it would guess, and sending is what the job asked.

The producer asks at enqueue (a message in quiet hours is stored ``deferred`` until the
opening) and the worker asks again at claim (a retry may come due at night).
:func:`resolve` is the one place that says which window applies to a job.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import phonenumbers
from phonenumbers import timezone as pn_timezone

from teledispatch.errors import Error

#: ``error_code`` of a message held by quiet hours.
QUIET_CODE = "quiet_hours"
_WINDOW = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")
_UNKNOWN_ZONE = "Etc/Unknown"
#: Rounds of "jump to the latest zone's opening" before giving up on a common opening: the
#: zones of one country converge in two or three.
_MAX_ROUNDS = 16


class QuietHoursError(Error, ValueError):
    """A window that is not ``HH:MM-HH:MM`` (or starts and ends at the same minute)."""


@dataclass(frozen=True, slots=True)
class Window:
    """Quiet from ``start`` to ``end``, minutes after local midnight; across midnight when
    ``start > end``."""

    start: int
    end: int

    @classmethod
    def parse(cls, text: str) -> Window:
        match = _WINDOW.match(text.strip())
        if match is None:
            raise QuietHoursError(f"quiet hours {text[:40]!r} must be HH:MM-HH:MM (24-hour)")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        window = cls(h1 * 60 + m1, h2 * 60 + m2)
        if window.start == window.end:
            raise QuietHoursError(f"quiet hours {text!r} start and end at the same minute")
        return window

    def __str__(self) -> str:
        return f"{_hhmm(self.start)}-{_hhmm(self.end)}"

    def quiet_at(self, minute: int) -> bool:
        """Whether local minute-of-day ``minute`` is quiet."""
        if self.start < self.end:
            return self.start <= minute < self.end
        return minute >= self.start or minute < self.end


@dataclass(frozen=True, slots=True)
class Hold:
    """A recipient in quiet hours: due again at ``until`` (epoch s)."""

    until: float
    #: Shown as the message's error text, e.g. ``quiet hours 21:00-08:00 in Europe/Moscow``.
    reason: str


def validate(text: str | None) -> str | None:
    """``text`` in canonical form (``"21:00-08:00"``), None for None/empty; raises
    :class:`QuietHoursError` for anything else."""
    if text is None or not text.strip():
        return None
    return str(Window.parse(text))


def resolve(
    job: str | None, account: str | None, priority: str, route: str | None = None
) -> str | None:
    """The window in force for a job: its own, else its route's, else its account's; never
    for ``high``. The one place the levels are chosen."""
    if priority == "high":
        return None
    return validate(job) or validate(route) or validate(account)


@functools.lru_cache(maxsize=65536)
def zones_for(phone: str) -> tuple[str, ...]:
    """The number's time zones (possibly several), ``()`` when unknown."""
    try:
        number = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return ()
    zones = pn_timezone.time_zones_for_number(number)
    return tuple(z for z in zones if z != _UNKNOWN_ZONE)


@functools.lru_cache(maxsize=1024)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _local_minute(zone: ZoneInfo, at: float) -> tuple[datetime, int]:
    local = datetime.fromtimestamp(at, tz=zone)
    return local, local.hour * 60 + local.minute


def _opening(window: Window, zone: ZoneInfo, local: datetime) -> float:
    """The next end of the quiet window in ``zone`` after ``local`` (which is quiet)."""
    end = local.replace(hour=window.end // 60, minute=window.end % 60, second=0, microsecond=0)
    if end <= local:
        # The local date advances by calendar day (23 or 25 hours across a DST change).
        end = datetime.combine(end.date() + timedelta(days=1), end.timetz())
    opening = end.astimezone(UTC).timestamp()
    # A wall-clock end inside a DST gap maps to a time that may be earlier than ``local``:
    # never go backwards.
    return max(opening, local.timestamp() + 60.0)


def hold(window: Window, zones: tuple[str, ...], now: float) -> Hold | None:
    """None when ``now`` is allowed in every zone; else when it first is, and why.

    Each round moves to the latest opening among the zones still quiet; it stops when none
    is. Zones whose allowed hours never overlap (a country spanning more hours than the day
    allows) fall back to the first zone alone, so a message is delayed, never held forever.
    """
    at = now
    blocking = ""
    for _ in range(_MAX_ROUNDS):
        latest = at
        for name in zones:
            zone = _zone(name)
            local, minute = _local_minute(zone, at)
            if window.quiet_at(minute):
                opening = _opening(window, zone, local)
                if opening > latest:
                    latest, blocking = opening, name
        if latest == at:
            if at == now:
                return None
            return Hold(at, f"quiet hours {window} in {blocking}")
        at = latest
    return hold(window, zones[:1], now)


def hold_for(window: Window, phone: str, now: float) -> Hold | None:
    """:func:`hold` for a number's own zones; None for a number without zone data."""
    zones = zones_for(phone)
    return hold(window, zones, now) if zones else None


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"
