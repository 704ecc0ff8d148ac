"""Opening hours: time zones, closures and daylight-saving edges, on the clinic's own clock."""

from __future__ import annotations

from datetime import UTC, date, datetime

from actors.waiting.hours import is_open, next_opening
from storage.areas import Closure, OpeningInterval

WEEKDAYS_9_TO_5 = tuple(OpeningInterval(day, "09:00", "17:00") for day in range(5))


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def test_open_on_the_clinics_clock_not_utc() -> None:
    # Monday 2026-11-23 08:30 UTC is 19:30 in Sydney (closed) and 08:30 in London (not yet open).
    assert not is_open(utc(2026, 11, 23, 8, 30), "Europe/London", WEEKDAYS_9_TO_5)
    assert is_open(utc(2026, 11, 23, 9, 0), "Europe/London", WEEKDAYS_9_TO_5)
    assert not is_open(utc(2026, 11, 23, 8, 30), "Australia/Sydney", WEEKDAYS_9_TO_5)
    # 23:30 UTC Sunday is 10:30 Monday in Sydney: open there.
    assert is_open(utc(2026, 11, 22, 23, 30), "Australia/Sydney", WEEKDAYS_9_TO_5)


def test_closing_time_is_exclusive_and_weekends_are_closed() -> None:
    assert is_open(utc(2026, 11, 23, 16, 59), "UTC", WEEKDAYS_9_TO_5)
    assert not is_open(utc(2026, 11, 23, 17, 0), "UTC", WEEKDAYS_9_TO_5)
    assert not is_open(utc(2026, 11, 28, 12, 0), "UTC", WEEKDAYS_9_TO_5)  # Saturday


def test_closures_close_whole_local_days() -> None:
    holiday = Closure(1, 1, date(2026, 12, 25), date(2026, 12, 26), "Christmas")
    assert not is_open(utc(2026, 12, 25, 12, 0), "UTC", WEEKDAYS_9_TO_5, [holiday])
    assert is_open(utc(2026, 12, 24, 12, 0), "UTC", WEEKDAYS_9_TO_5, [holiday])
    # Next opening skips the closure (and the weekend after it): Monday 28 December, 09:00.
    assert next_opening(utc(2026, 12, 24, 18, 0), "UTC", WEEKDAYS_9_TO_5, [holiday]) == utc(
        2026, 12, 28, 9, 0
    )


def test_daylight_saving_moves_the_utc_instant_not_the_local_hour() -> None:
    # London: clocks go forward on Sunday 2026-03-29. 09:00 local is 09:00 UTC before, 08:00 after.
    assert next_opening(utc(2026, 3, 27, 18, 0), "Europe/London", WEEKDAYS_9_TO_5) == utc(
        2026, 3, 30, 8, 0
    )
    assert is_open(utc(2026, 3, 30, 8, 0), "Europe/London", WEEKDAYS_9_TO_5)
    assert not is_open(utc(2026, 3, 27, 8, 30), "Europe/London", WEEKDAYS_9_TO_5)
    # Back in autumn (Sunday 2026-10-25): Monday's 09:00 is 09:00 UTC again.
    assert next_opening(utc(2026, 10, 23, 18, 0), "Europe/London", WEEKDAYS_9_TO_5) == utc(
        2026, 10, 26, 9, 0
    )


def test_an_opening_inside_the_spring_gap_opens_when_the_clock_reaches_it() -> None:
    # A Sunday shift "01:30-04:00" in London on the night the clocks jump from 01:00 to 02:00.
    night = (OpeningInterval(6, "01:30", "04:00"),)
    opening = next_opening(utc(2026, 3, 28, 12, 0), "Europe/London", night)
    assert opening == utc(2026, 3, 29, 1, 0)  # the instant the clock jumps to 02:00 BST
    assert is_open(utc(2026, 3, 29, 1, 30), "Europe/London", night)  # 02:30 BST


def test_already_open_means_now_and_never_open_means_none() -> None:
    now = utc(2026, 11, 23, 10, 0)
    assert next_opening(now, "UTC", WEEKDAYS_9_TO_5) == now
    assert next_opening(now, "UTC", ()) is None
