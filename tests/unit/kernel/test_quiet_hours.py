"""Quiet hours: the number's time zones, window math across midnight and DST, and the
"every zone must allow it" rule for numbers whose prefix spans several zones."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from teledispatch.quiet_hours import (
    QuietHoursError,
    Window,
    hold,
    hold_for,
    resolve,
    validate,
    zones_for,
)

NIGHT = Window.parse("21:00-08:00")


def at(text: str) -> float:
    """An ISO time in UTC as epoch seconds."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M")


# --- the number's zones -------------------------------------------------------------------


def test_china_is_one_zone() -> None:
    assert zones_for("+8613800138000") == ("Asia/Shanghai",)


def test_us_area_codes_may_span_two_zones_and_toll_free_spans_many() -> None:
    assert zones_for("+12125551234") == ("America/New_York",)
    assert set(zones_for("+12085550123")) == {"America/Boise", "America/Los_Angeles"}
    assert len(zones_for("+18005550100")) > 10


def test_a_russian_mobile_spans_the_country() -> None:
    zones = zones_for("+79161234567")
    assert {"Europe/Moscow", "Asia/Anadyr", "Europe/Bucharest"} <= set(zones)
    assert zones_for("+74952123456") == ("Europe/Moscow",)  # a Moscow landline: one


def test_a_number_without_zone_data_is_never_held() -> None:
    assert zones_for("+15550100000") == ()  # Etc/Unknown is dropped
    assert hold_for(NIGHT, "+15550100000", at("2027-01-15T03:00")) is None


# --- the window -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("minute", "quiet"),
    [
        (20 * 60 + 59, False),
        (21 * 60, True),
        (23 * 60 + 59, True),
        (0, True),
        (7 * 60 + 59, True),
        (8 * 60, False),
        (12 * 60, False),
    ],
)
def test_a_window_across_midnight(minute: int, quiet: bool) -> None:
    assert NIGHT.quiet_at(minute) is quiet


def test_a_window_within_a_day() -> None:
    lunch = Window.parse("12:00-13:30")
    assert [lunch.quiet_at(m) for m in (719, 720, 809, 810)] == [False, True, True, False]


@pytest.mark.parametrize("bad", ["21-08", "25:00-08:00", "21:00-08:60", "08:00-08:00", ""])
def test_bad_windows_are_refused(bad: str) -> None:
    if bad == "":
        assert validate(bad) is None  # empty: no quiet hours
        return
    with pytest.raises(QuietHoursError):
        Window.parse(bad)


def test_resolve_prefers_the_job_and_never_holds_high() -> None:
    assert resolve("22:00-07:00", "21:00-08:00", "normal") == "22:00-07:00"
    assert resolve(None, "21:00 - 08:00".replace(" ", ""), "low") == "21:00-08:00"
    assert resolve("22:00-07:00", "21:00-08:00", "high") is None
    assert resolve(None, None, "normal") is None


# --- one zone ----------------------------------------------------------------------------


def test_allowed_now_is_not_held() -> None:
    assert hold(NIGHT, ("Asia/Shanghai",), at("2027-01-15T02:00")) is None  # 10:00 local


def test_quiet_before_midnight_opens_next_morning() -> None:
    held = hold(NIGHT, ("Asia/Shanghai",), at("2027-01-15T14:30"))  # 22:30 local
    assert held is not None
    assert iso(held.until) == "2027-01-16T00:00"  # 08:00 local
    assert held.reason == "quiet hours 21:00-08:00 in Asia/Shanghai"


def test_quiet_after_midnight_opens_the_same_morning() -> None:
    held = hold(NIGHT, ("Asia/Shanghai",), at("2027-01-15T23:30"))  # 07:30 local, 16th
    assert held is not None and iso(held.until) == "2027-01-16T00:00"


def test_dst_spring_forward_night_is_an_hour_shorter() -> None:
    # New York, 14 March 2027: 23:00 EST on the 13th; 08:00 the next morning is EDT (UTC-4).
    held = hold(NIGHT, ("America/New_York",), at("2027-03-14T04:00"))
    assert held is not None and iso(held.until) == "2027-03-14T12:00"


def test_dst_fall_back_night_is_an_hour_longer() -> None:
    # New York, 7 November 2027: 01:00 EDT; 08:00 that morning is EST (UTC-5).
    held = hold(NIGHT, ("America/New_York",), at("2027-11-07T05:00"))
    assert held is not None and iso(held.until) == "2027-11-07T13:00"


def test_a_window_ending_inside_the_dst_gap_never_opens_early() -> None:
    # 01:00-02:30 on the night 02:00-03:00 does not exist: it opens at or after 03:00 EDT.
    window = Window.parse("01:00-02:30")
    held = hold(window, ("America/New_York",), at("2027-03-14T06:30"))  # 01:30 EST
    assert held is not None
    assert at("2027-03-14T07:00") <= held.until <= at("2027-03-14T07:30")
    assert hold(window, ("America/New_York",), held.until) is None


# --- several zones ----------------------------------------------------------------------


def test_two_zones_wait_for_the_later_one() -> None:
    zones = zones_for("+12085550123")  # Boise (UTC-7) and Los Angeles (UTC-8) in January
    held = hold(NIGHT, zones, at("2027-01-15T15:30"))  # 08:30 Boise, 07:30 Los Angeles
    assert held is not None and iso(held.until) == "2027-01-15T16:00"
    assert "America/Los_Angeles" in held.reason


def test_two_zones_evening_in_one_waits_for_both_mornings() -> None:
    zones = zones_for("+12085550123")
    # 21:30 Boise (quiet), 20:30 Los Angeles: Boise opens at 15:00 UTC, when LA is still at
    # 07:00; both allow it from 16:00 UTC.
    held = hold(NIGHT, zones, at("2027-01-15T04:30"))
    assert held is not None and iso(held.until) == "2027-01-15T16:00"


def test_russia_is_sendable_only_where_all_its_zones_are_awake() -> None:
    zones = zones_for("+79161234567")
    # January: Bucharest UTC+2 opens 06:00 UTC; Anadyr UTC+12 closes 09:00 UTC.
    assert hold(NIGHT, zones, at("2027-01-15T07:00")) is None
    held = hold(NIGHT, zones, at("2027-01-15T05:30"))  # Moscow 08:30, Bucharest 07:30
    assert held is not None and iso(held.until) == "2027-01-15T06:00"
    held = hold(NIGHT, zones, at("2027-01-15T09:30"))  # Anadyr 21:30
    assert held is not None and iso(held.until) == "2027-01-16T06:00"


def test_toll_free_numbers_still_find_a_common_hour() -> None:
    zones = zones_for("+18005550100")  # Guam to Adak: 20 hours apart, i.e. 4 the other way
    held = hold(NIGHT, zones, at("2027-01-15T12:00"))
    assert held is not None
    assert all(hold(NIGHT, (z,), held.until) is None for z in zones)


def test_zones_that_never_overlap_fall_back_to_the_first_zone() -> None:
    # Tokyo allows 23:00-12:00 UTC, London 08:00-21:00, New York 13:00-02:00: no hour in all.
    zones = ("Asia/Tokyo", "Europe/London", "America/New_York")
    now = at("2027-01-15T14:00")  # 23:00 in Tokyo
    held = hold(NIGHT, zones, now)
    assert held is not None and iso(held.until) == "2027-01-15T23:00"  # Tokyo's 08:00
    assert held == hold(NIGHT, zones[:1], now)
    assert hold(NIGHT, zones, held.until) is None  # and then it goes: delayed, not lost
