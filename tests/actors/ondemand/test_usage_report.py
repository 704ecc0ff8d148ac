"""The usage report counts on-demand sessions (issue 14): one that started counts, one claimed but
never started or declined does not (storage counts by organisation: tests/storage)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from actors import addresses
from actors.admin.reports import ONDEMAND_KIND, AdminActor, ListAudit, ReportFigures, ReportFor
from runtime import ChildSpec
from storage import areas
from storage.times import utcnow
from tests.actors.ondemand.world import world_at


async def test_started_sessions_are_counted(tmp_path: Path) -> None:
    start = utcnow() - timedelta(minutes=1)
    async with world_at(tmp_path) as world:
        admin_actor = await world.root.start_child(
            ChildSpec(addresses.ADMIN, lambda: AdminActor(world.store))
        )
        started = await world.meet_now("Ada")
        pconn, _, patient, _ = await world.patient(started)
        await world.ask(world.admin, "ondemand.claim", {"request_id": started.request_id})
        sconn, _ = await world.socket()
        await world.in_room(started, world.admin, "room.enter", sconn)
        await world.in_room(started, world.admin, "session.start", sconn)
        await world.in_room(started, patient, "session.start", pconn)
        claimed_only = await world.meet_now("Bo")
        await world.ask(world.admin, "ondemand.claim", {"request_id": claimed_only.request_id})
        declined = await world.meet_now("Cy")
        await world.ask(world.admin, "ondemand.decline", {"request_id": declined.request_id})

        area = (await areas.list_areas(world.store))[0]
        figures: ReportFigures = await admin_actor.ask(
            ReportFor(world.admin, area.id, start, utcnow() + timedelta(seconds=1))
        )
        assert dict(figures.calls_by_kind)[ONDEMAND_KIND] == 1


async def test_the_audit_trail_of_on_demand_stays_in_its_organisation(tmp_path: Path) -> None:
    async with world_at(tmp_path) as world:
        admin_actor = await world.root.start_child(
            ChildSpec(addresses.ADMIN, lambda: AdminActor(world.store))
        )
        ticket = await world.meet_now("Ada")
        await world.ask(world.admin, "ondemand.decline", {"request_id": ticket.request_id})
        subject = f"ondemand:{ticket.request_id}"
        own = await admin_actor.ask(ListAudit(world.admin))
        assert subject in [e.subject for e in own]
        theirs = await admin_actor.ask(ListAudit(world.outsider_admin))
        assert subject not in [e.subject for e in theirs]
