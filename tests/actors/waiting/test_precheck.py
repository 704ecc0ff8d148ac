"""The caller's pre-call check reaches the provider's list (issue 16): ``precheck.result`` goes
through the gateway's route check to the caller's own room, which tells the area, whose watchers
get ``queue.caller`` with ``precheck``. A malformed result is refused and changes nothing."""

from __future__ import annotations

from typing import Any

import pytest
import trio.testing

from actors.inbound import RedeemToken
from actors.principal import Principal, Role
from gateway.protocol import ProtocolError
from gateway.routes import resolve, validate_body
from runtime import Refusal
from tests.actors.waiting.test_waiting_area import Clinic, clinic  # noqa: F401 (fixture)

GOOD: dict[str, Any] = {
    "camera": "ok",
    "microphone": "ok",
    "speaker": "unknown",
    "network": {"udp": True, "tcp": False, "relay": False, "rtt_ms": 40},
}


async def deliver(clinic: Clinic, body: dict[str, Any], who: Principal, conn: str) -> object:  # noqa: F811
    """What the gateway does with a client's message: route and body checks, then the actor."""
    route, address = resolve("precheck.result", None, who, 1)
    validate_body(route, body, 1)
    return await clinic.send(str(address), "precheck.result", body, who, conn)


def precheck_events(events: list[Any]) -> list[Any]:
    return [e.body["caller"].get("precheck") for e in events if e.type == "queue.caller"]


@pytest.mark.parametrize(
    "bad",
    [
        {**GOOD, "camera": "great"},
        {**GOOD, "microphone": 1},
        {k: v for k, v in GOOD.items() if k != "speaker"},
        {**GOOD, "network": {"udp": True, "tcp": False, "relay": False}},
        {**GOOD, "network": {**GOOD["network"], "rtt_ms": -1}},
        {**GOOD, "network": {**GOOD["network"], "rtt_ms": 60_001}},
        {**GOOD, "network": {**GOOD["network"], "rtt_ms": 40.5}},
        {**GOOD, "network": {**GOOD["network"], "udp": "yes"}},
        {**GOOD, "network": {**GOOD["network"], "extra": 1}},
        {**GOOD, "network": [True, False]},
    ],
)
async def test_a_callers_precheck_reaches_the_watchers_and_a_bad_one_changes_nothing(
    clinic: Clinic,  # noqa: F811
    bad: dict[str, Any],
) -> None:
    area_id = clinic.area.split("/")[1]
    provider = clinic.provider((Role.PROVIDER, area_id))
    events = await clinic.inbox("conn/dash")
    await clinic.send(clinic.area, "area.watch", {}, provider, "conn/dash")
    ticket = await clinic.arrive("Ada")
    room = f"room/{ticket.room_id}"
    ada = await clinic.registry.ref(room).ask(RedeemToken(ticket.token.split(".", 1)[1]))
    await clinic.inbox("conn/ada")
    await clinic.send(room, "room.enter", {}, ada, "conn/ada")
    await trio.testing.wait_all_tasks_blocked()

    with pytest.raises(ProtocolError) as refused:
        await deliver(clinic, bad, ada, "conn/ada")
    assert refused.value.code in ("bad_field", "missing_field")
    with pytest.raises(ProtocolError):  # staff do not report a caller's check
        await deliver(clinic, GOOD, provider, "conn/dash")
    await trio.testing.wait_all_tasks_blocked()
    assert all(p is None for p in precheck_events(events))
    queue: Any = await clinic.send(clinic.area, "area.watch", {}, provider, "conn/dash")
    assert queue["callers"][0]["precheck"] is None

    assert await deliver(clinic, GOOD, ada, "conn/ada") == {}
    await trio.testing.wait_all_tasks_blocked()
    assert precheck_events(events)[-1] == GOOD
    queue = await clinic.send(clinic.area, "area.watch", {}, provider, "conn/dash")
    assert queue["callers"][0]["precheck"] == GOOD


async def test_only_someone_in_the_room_may_report(clinic: Clinic) -> None:  # noqa: F811
    ticket = await clinic.arrive("Ada")
    room = f"room/{ticket.room_id}"
    ada = await clinic.registry.ref(room).ask(RedeemToken(ticket.token.split(".", 1)[1]))
    with pytest.raises(Refusal) as refused:
        await clinic.send(room, "precheck.result", GOOD, ada, "conn/not-entered")
    assert refused.value.code == "not_in_room"
