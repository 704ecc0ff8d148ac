"""A burst of session look-ups is answered side by side, not one after another (issue 17).

Every page load and websocket ``hello`` of a signed-in member of staff asks the Directory. When
it answered them one at a time, 100 staff opening dashboards queued behind its mailbox and some
``hello``s timed out. Now each look-up runs in a task of its own; the store then batches their
reads, which is what this test observes: with one look-up at a time every store batch holds one
call, with look-ups side by side the batches hold several.
"""

from __future__ import annotations

import trio

from actors.staff.directory import CheckCsrf, ResolveSession
from runtime import Refusal
from tests.actors.staff.test_directory import World, sign_in, world  # noqa: F401 (fixture)

BURST = 40


async def test_a_burst_of_lookups_shares_store_batches(world: World) -> None:  # noqa: F811
    info = await sign_in(world)
    calls, batches = world.store.calls, world.store.batches
    answers: list[object] = []

    async def resolve() -> None:
        answers.append(await world.directory.ask(ResolveSession(info.session_id)))

    async with trio.open_nursery() as nursery:
        for _ in range(BURST):
            nursery.start_soon(resolve)
    assert len(answers) == BURST
    assert all(getattr(a, "user_id", None) == str(world.user_id) for a in answers)
    calls_made = world.store.calls - calls
    batches_run = world.store.batches - batches
    assert calls_made >= BURST
    assert batches_run * 2 <= calls_made, (calls_made, batches_run)


async def test_refusals_still_reach_the_asker(world: World) -> None:  # noqa: F811
    info = await sign_in(world)
    refused: list[str] = []

    async def check(token: str) -> None:
        try:
            await world.directory.ask(CheckCsrf(info.session_id, token))
        except Refusal as refusal:
            refused.append(refusal.code)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(check, info.csrf_token)
        nursery.start_soon(check, "forged")
        nursery.start_soon(check, "forged again")
    assert refused == ["bad_csrf", "bad_csrf"]
