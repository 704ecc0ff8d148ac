"""Is a waiting area open at a given instant, and when does it open next? Pure functions, no Trio.

Opening hours are a weekly schedule in the area's own time zone plus dated closures (holidays).
Everything is computed in local wall-clock time through ``zoneinfo``, so daylight-saving changes
move the UTC instants of opening and closing the way a clinic's door does: "opens 08:00" means
08:00 on the clinic's clock on both sides of the change.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from storage.areas import Closure, OpeningInterval

#: How far ahead "opens next" looks: two weeks covers any weekly schedule plus a long closure.
LOOKAHEAD_DAYS = 60


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def _closed_on(day: date, closures: Iterable[Closure]) -> bool:
    return any(c.starts_on <= day <= c.ends_on for c in closures)


def is_open(
    at: datetime,
    time_zone: str,
    hours: Iterable[OpeningInterval],
    closures: Iterable[Closure] = (),
) -> bool:
    """Whether the area accepts arrivals at the instant ``at`` (an aware datetime)."""
    local = at.astimezone(ZoneInfo(time_zone))
    if _closed_on(local.date(), closures):
        return False
    minute = local.hour * 60 + local.minute
    return any(
        h.weekday == local.weekday() and _minutes(h.opens) <= minute < _minutes(h.closes)
        for h in hours
    )


def _local_instant(day: date, hhmm: str, zone: ZoneInfo) -> datetime:
    minutes = _minutes(hhmm)
    if minutes >= 24 * 60:
        return datetime.combine(day + timedelta(days=1), time(0, 0), zone)
    naive = datetime.combine(day, time(minutes // 60, minutes % 60))
    instant = naive.replace(tzinfo=zone)
    if instant.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == naive:
        return instant
    # The wall-clock time was skipped by a spring-forward change: the door opens at the moment
    # the clock jumps past it, which lies between the two readings of the skipped time.
    earliest = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    latest = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
    step = earliest
    while step < latest and step.astimezone(zone).replace(tzinfo=None) < naive:
        step += timedelta(minutes=1)
    return step


def next_opening(
    after: datetime,
    time_zone: str,
    hours: Iterable[OpeningInterval],
    closures: Iterable[Closure] = (),
) -> datetime | None:
    """The next instant (UTC) at or after ``after`` when the area is open, or None if never soon."""
    zone = ZoneInfo(time_zone)
    schedule = list(hours)
    closed = list(closures)
    if is_open(after, time_zone, schedule, closed):
        return after.astimezone(UTC)
    start_day = after.astimezone(zone).date()
    for offset in range(LOOKAHEAD_DAYS):
        day = start_day + timedelta(days=offset)
        if _closed_on(day, closed):
            continue
        openings = sorted(
            _local_instant(day, h.opens, zone) for h in schedule if h.weekday == day.weekday()
        )
        for opening in openings:
            if opening.astimezone(UTC) > after.astimezone(UTC) and is_open(
                opening, time_zone, schedule, closed
            ):
                return opening.astimezone(UTC)
    return None
