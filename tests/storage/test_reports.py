"""Report figures match a scenario whose numbers are known in advance."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from storage import areas, callers, calls, orgs, reports
from storage.db import Store

DAY = datetime(2026, 7, 6, 0, 0, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return DAY + timedelta(hours=9, minutes=minutes)


async def test_area_report_scenario(store: Store) -> None:
    org = await orgs.create_organisation(store, "Org")
    unit = await orgs.create_unit(store, org.id, "Clinic")
    gp = (await areas.create_area(store, unit.id, "GP")).id
    physio = (await areas.create_area(store, unit.id, "Physio")).id

    # A: arrives 0, seen at 5 (wait 300 s), call lasts 10 min, ends.
    a = await callers.register_arrival(store, gp, {"name": "A"}, now=at(0))
    await callers.set_status(store, a.caller.id, "in_call", now=at(5))
    call_a = await calls.start_call(store, a.room.id, caller_id=a.caller.id, now=at(5))
    await calls.end_call(store, call_a.id, now=at(15))
    await callers.set_status(store, a.caller.id, "ended", now=at(15))
    # B: arrives 2, leaves unseen at 12.
    b = await callers.register_arrival(store, gp, {"name": "B"}, now=at(2))
    await callers.set_status(store, b.caller.id, "left", now=at(12))
    # C: arrives 3, seen at 23 (wait 1200 s), put on hold, back in call, call of 7 min.
    c = await callers.register_arrival(store, gp, {"name": "C"}, now=at(3))
    await callers.set_status(store, c.caller.id, "in_call", now=at(23))
    call_c = await calls.start_call(store, c.room.id, caller_id=c.caller.id, now=at(23))
    await callers.set_status(store, c.caller.id, "on_hold", now=at(25))
    await callers.set_status(store, c.caller.id, "in_call", now=at(26))
    await calls.end_call(store, call_c.id, now=at(30))
    # D: arrives 4 at GP, transferred to Physio unseen at 10, seen there at 14 (wait 240 s).
    d = await callers.register_arrival(store, gp, {"name": "D"}, now=at(4))
    await callers.transfer_caller(store, d.caller.id, physio, now=at(10))
    await callers.set_status(store, d.caller.id, "in_call", now=at(14))
    call_d = await calls.start_call(store, d.room.id, caller_id=d.caller.id, now=at(14))
    # E: arrives the day before: outside the period.
    await callers.register_arrival(store, gp, {"name": "E"}, now=DAY - timedelta(hours=1))
    # F: arrives 40 and is still waiting.
    await callers.register_arrival(store, gp, {"name": "F"}, now=at(40))

    gp_report = await reports.area_report(store, gp, DAY, DAY + timedelta(days=1))
    assert gp_report.arrivals == 5  # A B C D F
    assert gp_report.transfers_in == 0
    assert gp_report.call_count == 2
    assert gp_report.wait_seconds == [300.0, 1200.0]
    assert sorted(gp_report.call_durations) == [420.0, 600.0]
    assert gp_report.left_before_seen == 1
    by_name = {v.caller_id: v for v in gp_report.visits}
    assert by_name[d.caller.id].exit_status == "transferred"
    assert by_name[d.caller.id].exited_at == at(10)
    assert by_name[b.caller.id].wait_seconds is None

    physio_report = await reports.area_report(store, physio, DAY, DAY + timedelta(days=1))
    assert (physio_report.arrivals, physio_report.transfers_in) == (0, 1)
    (visit,) = physio_report.visits
    assert (visit.transferred_from_area_id, visit.wait_seconds, visit.exit_status) == (
        gp,
        240.0,
        None,
    )
    assert [c.id for c in physio_report.calls] == [call_d.id]
    assert physio_report.call_durations == []  # still running

    morning = await reports.area_report(store, gp, at(0), at(3))
    assert [v.caller_id for v in morning.visits] == [a.caller.id, b.caller.id]
