"""A submitted arrival or Meet Now form waits for its area or queue longer than other page asks
do (issue 18).

While an area or an on-demand queue moves to another node, or starts again after its node died,
the messages for it are held up to ``cluster.transport.HOLD_UNOWNED`` seconds. A form answered
"Service busy" before that could still be let in afterwards: someone on the dashboard whose page
never got its room. The form GET keeps the short limit: its busy page tries again by itself.
"""

from __future__ import annotations

import re

import trio
import trio.testing

from actors import addresses
from actors.messages import AreaPublic, ArrivalTicket, Arrive, DescribeArea, FindArea
from actors.ondemand.messages import (
    DescribePublic,
    FindQueue,
    OnDemandPublic,
    RequestTicket,
    StartRequest,
)
from cluster.transport import HOLD_UNOWNED
from runtime import Actor, ChildSpec, Registry, Supervisor, handles
from web.app import create_app
from web.security import DIRECTORY_TIMEOUT, SUBMIT_TIMEOUT

AREA = addresses.area(1)
SLUG = "movingarea"
INFO = AreaPublic(
    id=1,
    name="General Practice",
    slug=SLUG,
    unit_id=1,
    time_zone="Europe/London",
    open_now=True,
    next_opening=None,
    form_fields=({"key": "name", "label": "Your name", "kind": "name", "required": True},),
    consent_text="",
)
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class Areas(Actor):
    @handles(FindArea)
    async def _find(self, message: FindArea) -> str:
        return AREA


class Moving(Actor):
    """An area or queue whose admissions take ``delay`` seconds, as on its way to another node."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay
        self.admitted: list[dict[str, str]] = []


class MovingArea(Moving):
    @handles(DescribeArea)
    async def _describe(self, message: DescribeArea) -> AreaPublic:
        return INFO

    @handles(Arrive)
    async def _arrive(self, message: Arrive) -> ArrivalTicket:
        await trio.sleep(self.delay)
        self.admitted.append(message.details)
        return ArrivalTicket("c1", "room1", "room1.secret")


async def _submit(
    path: str, finder: tuple[str, type[Actor]], moving: tuple[str, Moving]
) -> tuple[int, str]:
    """Open the form at ``path`` and send it, with ``finder`` (the host that names the area or
    queue) and ``moving`` (the slow area or queue) running; the page sent back. Checks the
    submission waited as long as the moving actor took (or the submit limit)."""
    registry = Registry()
    async with trio.open_nursery() as nursery:
        sup: Supervisor = await nursery.start(Supervisor(registry, "test").run)
        await sup.start_child(ChildSpec(*finder))
        await sup.start_child(ChildSpec(moving[0], lambda: moving[1]))
        client = create_app(registry).test_client()
        form = await client.get(f"{path}?lang=en")
        found = _CSRF.search(await form.get_data(as_text=True))
        assert form.status_code == 200 and found is not None
        started = trio.current_time()
        page = await client.post(
            f"{path}?lang=en", form={"name": "Ada", "csrf_token": found.group(1)}
        )
        waited = trio.current_time() - started
        nursery.cancel_scope.cancel()
    delay = moving[1].delay
    assert waited >= min(delay, SUBMIT_TIMEOUT)
    return page.status_code, await page.get_data(as_text=True)


async def _arrive(delay: float) -> tuple[int, str, MovingArea]:
    area = MovingArea(delay)
    status, page = await _submit(f"/w/{SLUG}", (addresses.AREAS, Areas), (AREA, area))
    return status, page, area


async def test_a_form_waits_out_an_area_that_is_moving(
    autojump_clock: trio.testing.MockClock,
) -> None:
    delay = HOLD_UNOWNED + 2  # longer than any hold, and than the 5 s of other page asks
    assert DIRECTORY_TIMEOUT < delay < SUBMIT_TIMEOUT
    status, page, area = await _arrive(delay)
    assert status == 200, page
    assert 'data-token="room1.secret"' in page
    assert area.admitted == [{"name": "Ada"}]


async def test_an_area_that_never_answers_is_still_a_busy_page_in_the_end(
    autojump_clock: trio.testing.MockClock,
) -> None:
    status, page, _ = await _arrive(SUBMIT_TIMEOUT * 3)
    assert status == 503
    assert "Service busy" in page


QUEUE = addresses.ondemand(1)


class OnDemand(Actor):
    @handles(FindQueue)
    async def _find(self, message: FindQueue) -> str:
        return QUEUE


class MovingQueue(Moving):
    @handles(DescribePublic)
    async def _describe(self, message: DescribePublic) -> OnDemandPublic:
        return OnDemandPublic(1, "Riverside", True, (), (), None)

    @handles(StartRequest)
    async def _start(self, message: StartRequest) -> RequestTicket:
        await trio.sleep(self.delay)
        self.admitted.append(message.details)
        return RequestTicket("q1", "room2", "room2.secret")


async def test_meet_now_waits_out_a_queue_that_is_moving(
    autojump_clock: trio.testing.MockClock,
) -> None:
    queue = MovingQueue(HOLD_UNOWNED + 2)
    status, text = await _submit("/o/1/meet", (addresses.ONDEMAND, OnDemand), (QUEUE, queue))
    assert status == 200, text
    assert "room2.secret" in text
    assert queue.admitted == [{"name": "Ada"}]
