"""Raw figures for the per-area reports (issue 5): visits, waits, calls, walk-outs.

Storage returns rows and plain numbers; medians, percentiles and charts are the report page's
job. A *visit* is one stay of a caller in one area: it starts at arrival or at a transfer in, and
ends at a transfer out, when the caller left, or when their appointment ended. Visits and calls
are attributed to the period in which they started (``since`` inclusive, ``until`` exclusive).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from itertools import groupby

from sqlite_utils import Database

from storage.calls import Call
from storage.db import Row, Store, fetch_all
from storage.times import from_db, opt_from_db, to_db


@dataclass(frozen=True, slots=True)
class CallerVisit:
    caller_id: str
    area_id: int
    entered_at: datetime
    transferred_from_area_id: int | None
    """None for an arrival through the area's link; the previous area for a transfer in."""
    first_call_at: datetime | None
    exit_status: str | None
    """transferred | left | ended, or None while the caller is still in the area."""
    exited_at: datetime | None

    @property
    def seen(self) -> bool:
        return self.first_call_at is not None

    @property
    def wait_seconds(self) -> float | None:
        """Time from entering the area's queue to the first call in it (None if never seen)."""
        if self.first_call_at is None:
            return None
        return (self.first_call_at - self.entered_at).total_seconds()

    @property
    def left_before_seen(self) -> bool:
        return self.exit_status == "left" and self.first_call_at is None


@dataclass(frozen=True, slots=True)
class AreaReport:
    area_id: int
    since: datetime
    until: datetime
    visits: tuple[CallerVisit, ...]
    calls: tuple[Call, ...]

    @property
    def arrivals(self) -> int:
        """Callers who arrived through this area's link (transfers in are counted apart)."""
        return sum(1 for v in self.visits if v.transferred_from_area_id is None)

    @property
    def transfers_in(self) -> int:
        return sum(1 for v in self.visits if v.transferred_from_area_id is not None)

    @property
    def call_count(self) -> int:
        return len(self.calls)

    @property
    def wait_seconds(self) -> list[float]:
        """Waits of the visits that were seen, in order of arrival."""
        return [w for v in self.visits if (w := v.wait_seconds) is not None]

    @property
    def call_durations(self) -> list[float]:
        """Durations in seconds of the calls that have ended."""
        return [
            (c.ended_at - c.started_at).total_seconds()
            for c in self.calls
            if c.ended_at is not None
        ]

    @property
    def left_before_seen(self) -> int:
        return sum(1 for v in self.visits if v.left_before_seen)


@dataclass(slots=True)
class _OpenVisit:
    caller_id: str
    area_id: int
    entered_at: datetime
    transferred_from_area_id: int | None
    first_call_at: datetime | None = None

    def close(self, exit_status: str | None, exited_at: datetime | None) -> CallerVisit:
        return CallerVisit(
            self.caller_id,
            self.area_id,
            self.entered_at,
            self.transferred_from_area_id,
            self.first_call_at,
            exit_status,
            exited_at,
        )


_VISIT_ENDS = ("transferred", "left", "ended")


def _visits_of(events: list[Row]) -> list[CallerVisit]:
    """Split one caller's event history (oldest first) into visits."""
    visits: list[CallerVisit] = []
    current: _OpenVisit | None = None
    came_from: int | None = None
    for event in events:
        at = from_db(event["at"])
        status = event["status"]
        if current is None:
            current = _OpenVisit(event["caller_id"], event["area_id"], at, came_from)
            continue
        if status == "in_call" and current.first_call_at is None:
            current.first_call_at = at
        if status in _VISIT_ENDS:
            visits.append(current.close(status, at))
            came_from = current.area_id if status == "transferred" else None
            current = None
    if current is not None:
        visits.append(current.close(None, None))
    return visits


def _area_report(db: Database, area_id: int, since: datetime, until: datetime) -> AreaReport:
    events = fetch_all(
        db,
        """SELECT caller_id, area_id, status, at FROM caller_events
           WHERE caller_id IN (SELECT DISTINCT caller_id FROM caller_events
                               WHERE area_id = ? AND at < ?)
           ORDER BY caller_id, id""",
        (area_id, to_db(until)),
    )
    visits = [
        visit
        for _, caller_events in groupby(events, key=lambda e: e["caller_id"])
        for visit in _visits_of(list(caller_events))
        if visit.area_id == area_id and since <= visit.entered_at < until
    ]
    visits.sort(key=lambda v: (v.entered_at, v.caller_id))
    call_rows = fetch_all(
        db,
        """SELECT * FROM calls WHERE area_id = ? AND started_at >= ? AND started_at < ?
           ORDER BY started_at, id""",
        (area_id, to_db(since), to_db(until)),
    )
    calls = tuple(
        Call(
            r["id"],
            r["room_id"],
            r["area_id"],
            r["caller_id"],
            from_db(r["started_at"]),
            opt_from_db(r["ended_at"]),
        )
        for r in call_rows
    )
    return AreaReport(area_id, since, until, tuple(visits), calls)


async def area_report(store: Store, area_id: int, since: datetime, until: datetime) -> AreaReport:
    """Visits and calls of one area that started in ``[since, until)``, with raw figures."""
    return await store.run(_area_report, area_id, since, until)


#: Kinds of call counted by `calls_by_kind` (``rooms.kind``), in the order the report lists them.
CALL_KINDS = ("caller", "meeting", "user", "consult_now", "group")


def _calls_by_kind(db: Database, org_id: int, since: datetime, until: datetime) -> dict[str, int]:
    rows = fetch_all(
        db,
        """SELECT r.kind AS kind, COUNT(*) AS n FROM calls c
           JOIN rooms r ON r.id = c.room_id
           LEFT JOIN waiting_areas a ON a.id = r.area_id
           JOIN units u ON u.id = COALESCE(r.unit_id, a.unit_id)
           WHERE u.org_id = ? AND c.started_at >= ? AND c.started_at < ?
           GROUP BY r.kind""",
        (org_id, to_db(since), to_db(until)),
    )
    counts = dict.fromkeys(CALL_KINDS, 0)
    counts.update({r["kind"]: r["n"] for r in rows})
    return counts


async def calls_by_kind(
    store: Store, org_id: int, since: datetime, until: datetime
) -> dict[str, int]:
    """Calls of the organisation that started in ``[since, until)``, per kind of call (caller
    rooms, meeting rooms, user rooms, ...): a room of a unit, or a caller room of its areas."""
    return await store.run(_calls_by_kind, org_id, since, until)
