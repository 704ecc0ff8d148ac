"""After a waiting area restarts, its open dashboards keep updating (issue 15).

The watchers used to live only in the crashed instance: the restarted area knew none of them and
every open dashboard silently stopped. Now the restarted area still has them, sends each the
whole queue (``queue.snapshot``) and keeps pushing changes.
"""

from __future__ import annotations

import trio

from actors.inbound import Push
from actors.messages import AdoptArea
from actors.principal import Role
from actors.waiting.areas import AREAS_ADDRESS, AreaHost
from tests.actors.waiting.test_waiting_area import Clinic, clinic  # noqa: F401 (fixture)

SETTLE = 5.0


async def wait_for(events: list[Push], kind: str, count: int = 1) -> list[Push]:
    with trio.fail_after(SETTLE):
        while len(found := [e for e in events if e.type == kind]) < count:  # noqa: ASYNC110 (the inbox actor appends; nothing to wait on)
            await trio.sleep(0.01)
    return found


async def test_a_restarted_area_keeps_its_watchers_and_resends_the_queue(
    clinic: Clinic,  # noqa: F811
) -> None:
    events = await clinic.inbox("conn/dash")
    provider = clinic.provider((Role.PROVIDER, clinic.area.split("/")[1]))
    await clinic.send(clinic.area, "area.watch", {}, provider, "conn/dash")
    await clinic.arrive("Ada")
    await wait_for(events, "queue.caller")

    host = clinic.root.instance(AREAS_ADDRESS)
    assert isinstance(host, AreaHost)
    before = host.supervisor.instance(clinic.area)
    assert before is not None
    before._actor_fail(RuntimeError("a fault in the area"))  # what a bug would do
    with trio.fail_after(SETTLE):
        while host.supervisor.instance(clinic.area) in (None, before):  # noqa: ASYNC110 (the supervisor restarts it)
            await trio.sleep(0.01)

    [snapshot] = await wait_for(events, "queue.snapshot")
    assert [c["name"] for c in snapshot.body["callers"]] == ["Ada"]
    # And the restarted area goes on pushing to the same dashboard.
    await clinic.arrive("Grace")
    updates = await wait_for(events, "queue.caller", count=2)
    assert updates[-1].body["caller"]["name"] == "Grace"


async def test_watchers_handed_over_to_an_area_already_running_are_sent_its_queue(
    clinic: Clinic,  # noqa: F811
) -> None:
    """A handover's ``AdoptArea`` can come after an arrival had the area started here (issue
    18): the dashboards it brings are watchers all the same, and each is sent the queue."""
    await clinic.arrive("Ada")
    events = await clinic.inbox("conn/moved")
    area_id = int(clinic.area.split("/")[1])
    clinic.registry.ref(AREAS_ADDRESS).tell(AdoptArea(area_id, ("conn/moved",)))

    [snapshot] = await wait_for(events, "queue.snapshot")
    assert [c["name"] for c in snapshot.body["callers"]] == ["Ada"]
    await clinic.arrive("Grace")
    [update] = await wait_for(events, "queue.caller")
    assert update.body["caller"]["name"] == "Grace"
    # Adopted again (a second handover message): no second snapshot.
    clinic.registry.ref(AREAS_ADDRESS).tell(AdoptArea(area_id, ("conn/moved",)))
    await clinic.arrive("Mary")
    await wait_for(events, "queue.caller", count=2)
    assert len([e for e in events if e.type == "queue.snapshot"]) == 1
