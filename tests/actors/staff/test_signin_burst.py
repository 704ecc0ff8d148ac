"""A burst of wrong passwords from one address at the same moment gets exactly ``MAX_FAILURES``
checks; the rest are refused unchecked (issue 17: bursts). The desk takes sign-ins in turn, which
is what keeps the count exact; argon2 already uses both cores for each check (parallelism 4), so
checking two at once would not make a burst of 100 staff faster (bench/README.md)."""

from __future__ import annotations

import trio

from actors.staff.signin import SignIn
from runtime import Refusal
from services.throttle import MAX_FAILURES
from tests.actors.staff.test_directory import PASSWORD, World, world  # noqa: F401 (fixture)

BURST = 2 * MAX_FAILURES
ATTACKER = "203.0.113.66"


async def test_a_burst_of_wrong_passwords_from_one_address_gets_exactly_the_allowed_checks(
    world: World,  # noqa: F811
) -> None:
    codes: list[str] = []

    async def guess(n: int) -> None:
        try:
            await world.desk.ask(SignIn("dana", f"wrong {n}", ATTACKER))
        except Refusal as refusal:
            codes.append(refusal.code)

    async with trio.open_nursery() as nursery:
        for n in range(BURST):
            nursery.start_soon(guess, n)
    assert codes.count("bad_credentials") == MAX_FAILURES
    assert codes.count("too_many_attempts") == BURST - MAX_FAILURES
