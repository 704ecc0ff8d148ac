"""No client message can crash an actor (issue 15): generated bodies through the real actor tree.

``caller.transfer`` with ``target_area="²"`` used to crash the area, and four such messages in five
seconds took the whole server down. Here every wire type of gateway/routes.py is sent by a caller
socket and by staff sockets (the provider in the call, the organisation administrator) with
bodies generated from the route's field spec (conforming values, the real ids of the caller, the
room and the areas, and arbitrary JSON junk, extra keys too) to plausible targets. Afterwards no
actor may have crashed (the supervisor logs every crash at ERROR, "crashed handling") and the
server still answers on the websocket and on pages.
"""

from __future__ import annotations

import logging
from typing import Any

import msgpack
import pytest
import trio
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from trio_websocket import ConnectionClosed, WebSocketConnection, open_websocket_url

from actors import refusals
from gateway.routes import ROUTES, Field
from tests.conftest import RunningServer
from tests.httpclient import HttpClient
from tests.role_world import RoleWorld, role_world
from tests.roles_table import CALLER, ORG_ADMIN, PROVIDER

#: Enough to reach every type several times with each sender, small enough for ~30 s.
MAX_EXAMPLES = 400
#: Messages that would end the caller's call (revoking the caller's token) go only to targets
#: that are not that call, so the rest of the run still has a caller to send as.
ENDING = {"caller.end", "call.end"}
SENDERS = (CALLER, PROVIDER, ORG_ADMIN)

#: msgpack carries integers from -2**63 to 2**64 - 1 (beyond int64: SQLite cannot bind them).
WIRE_INTS = st.integers(min_value=-(2**63), max_value=2**64 - 1)

JSON = st.recursive(
    st.none()
    | st.booleans()
    | WIRE_INTS
    | st.floats()
    | st.text(max_size=40)
    | st.sampled_from(["²", "\ud800", "-1", "0", "9" * 40, "", " "]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)


def _conforming(spec: Field, plausible: list[str]) -> st.SearchStrategy[Any]:
    """Values the gateway lets through for this field, the world's real ids among them."""
    if spec.kind is bool:
        return st.booleans()
    if spec.kind is int:
        return WIRE_INTS | st.sampled_from([0, -1, 2**63 - 1, 2**63, 2**64 - 1])
    if spec.kind is dict:
        return st.dictionaries(st.text(max_size=16), JSON, max_size=4)
    if spec.kind is list:
        return st.lists(st.text(max_size=16), max_size=5)
    if spec.kind is object:
        return JSON
    if spec.pattern is not None:
        return st.sampled_from(plausible) | st.from_regex(spec.pattern, fullmatch=True)
    return st.text(max_size=min(spec.max_len, 300)) | st.sampled_from(plausible)


def _bodies(msg_type: str, plausible: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    route = ROUTES[msg_type]
    fields = {
        name: st.one_of(_conforming(spec, plausible), JSON) for name, spec in route.fields.items()
    }
    # Mostly every field present (so the actors see the message), sometimes any subset.
    known = (
        st.fixed_dictionaries(fields) | st.fixed_dictionaries({}, optional=fields)
        if fields
        else st.just({})
    )
    extra = st.dictionaries(st.text(max_size=10), JSON, max_size=3)
    return st.builds(lambda k, e: {**e, **k}, known, extra)


def _targets(world: RoleWorld, msg_type: str) -> list[str | None]:
    """Plausible ``to`` values: the world's own areas, room and queue, another organisation's,
    missing ones and malformed ones."""
    missing = [
        None,
        "",
        "area/999999",
        "area/²",
        "room/nosuchroom",
        "ondemand/999999",
        "notices",
        "system/echo",
        "area/",
        "/",
        "x" * 300,
        f"area/{world.stranger_area_id}",
    ]
    real = [
        f"area/{world.area_id}",
        f"area/{world.other_area_id}",
        f"ondemand/{world.org_id}",
    ]
    if msg_type not in ENDING:
        real.append(f"room/{world.caller_room}")
    return missing + real


#: Lone surrogates cannot be UTF-8: packed as such ("surrogatepass") they reach the server's
#: decoder as the invalid bytes a hostile client would send.
_PACKER = msgpack.Packer(unicode_errors="surrogatepass")
#: How long one answer may take (generous for a loaded 2-core machine).
ANSWER_WAIT = 15.0


async def _request(ws: WebSocketConnection, frame: dict[str, Any]) -> dict[str, Any]:
    await ws.send_message(_PACKER.pack(frame))
    with trio.fail_after(ANSWER_WAIT):
        while True:
            data = await ws.get_message()
            assert isinstance(data, bytes)
            answer = msgpack.unpackb(data, raw=False)
            if answer.get("t") in ("reply", "error") and answer.get("id") == frame["id"]:
                return dict(answer)
            if answer.get("t") == "error" and answer.get("id") is None:
                return dict(answer)  # a frame that could not be decoded has no id to answer


async def _send(world: RoleWorld, sender: str, msg_type: str, body: Any, to: str | None) -> str:
    """One message on a fresh socket of ``sender`` (so rate limits and strikes never pile up);
    the answer's code, "reply", or "no caller" once the caller's call is gone."""
    hello: dict[str, Any] = {"versions": [1]}
    headers = None
    if sender == CALLER:
        hello["token"] = world.caller_token
    else:
        headers = [(b"Cookie", world.cookie(sender).encode())]
    frame: dict[str, Any] = {"t": msg_type, "id": 2, "b": body}
    if to is not None:
        frame["to"] = to
    try:
        async with open_websocket_url(world.ws_url, extra_headers=headers) as ws:
            said = await _request(ws, {"t": "hello", "id": 1, "b": hello})
            if said["t"] == "error":
                assert sender == CALLER, said
                return "no caller"
            if isinstance(to, str) and to.startswith("room/"):
                # Into the call first, so room messages reach the call and its media.
                await _request(ws, {"t": "room.enter", "id": 3, "b": {}, "to": to})
            try:
                answer = await _request(ws, frame)
            except trio.TooSlowError:
                raise AssertionError(f"no answer from {sender}'s {frame!r}") from None
    except ConnectionClosed:
        return "closed"
    if answer["t"] == "reply":
        return "reply"
    code = str(answer["b"]["code"])
    assert code != refusals.INTERNAL, (msg_type, body, to, answer)
    return code


@pytest.mark.timeout(180)
async def test_no_generated_message_restarts_an_actor(
    waitroom_server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="runtime.supervisor")
    answers: dict[str, int] = {}
    async with role_world(waitroom_server) as world:
        plausible = [
            world.caller_id,
            world.caller_room,
            str(world.area_id),
            str(world.other_area_id),
            str(world.stranger_area_id),
            str(world.target_user_id),
            str(world.org_id),
        ]

        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            # A failure names its message; shrinking it through a live server would take minutes.
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(data=st.data())
        def example(data: st.DataObject) -> None:
            msg_type = data.draw(st.sampled_from(sorted(ROUTES)), label="type")
            sender = data.draw(st.sampled_from(SENDERS), label="sender")
            ids = [p for p in plausible if msg_type not in ENDING or p != world.caller_id]
            body = data.draw(_bodies(msg_type, ids), label="body")
            targets = _targets(world, msg_type)
            to = data.draw(st.sampled_from(targets[-4:]) | st.sampled_from(targets), label="to")
            answer = trio.from_thread.run(_send, world, sender, msg_type, body, to)
            answers[answer] = answers.get(answer, 0) + 1

        await trio.to_thread.run_sync(example)
        crashes = [r.getMessage() for r in caplog.records if "crashed" in r.getMessage()]
        assert not crashes, crashes
        async with world.socket(PROVIDER) as client:
            assert await client.request("echo", {"data": "still here"}) == {"data": "still here"}
        health = await HttpClient(waitroom_server.base_url).get("/healthz")
        assert health.status == 200
    # The run reached the actors, not only the gateway's field checks.
    assert answers.get("reply", 0) > 0, answers


#: Values that broke or could break an actor behind a field check that was too loose.
NASTY: tuple[Any, ...] = ("²", "١٢", "\ud800", "9" * 40, "", -1, 2**64 - 1, 1.5, [], {}, True)


def _real_target(world: RoleWorld, msg_type: str) -> str | None:
    kind = ROUTES[msg_type].target
    if ROUTES[msg_type].fixed is not None or kind == "system":
        return None
    return {
        "area": f"area/{world.area_id}",
        "room": f"room/{world.caller_room}",
        "ondemand": f"ondemand/{world.org_id}",
    }[kind]


def _base_body(world: RoleWorld, msg_type: str) -> dict[str, Any]:
    """A body every field of which conforms, naming the world's real caller (except where that
    would end the call) and areas."""
    caller = "nosuchcaller" if msg_type in ENDING else world.caller_id
    values: dict[str, Any] = {
        "caller_id": caller,
        "target_area": str(world.other_area_id),
        "request_id": "nosuchrequest",
        "user_id": str(world.target_user_id),
        "text": "hi",
        "sdp": "v=0",
        "label": "x",
        "reason": "x",
        "shown": {},
        "pinned": [],
        "values": {},
    }
    body: dict[str, Any] = {}
    for name, spec in ROUTES[msg_type].fields.items():
        if name in values:
            body[name] = values[name]
        elif spec.kind is bool:
            body[name] = True
        elif spec.kind is int:
            body[name] = 1
        else:
            body[name] = "x"
    return body


@pytest.mark.timeout(180)
async def test_every_field_of_every_type_survives_nasty_values(
    waitroom_server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A sweep beside the random search: each field of each type, in an otherwise good body sent
    to its real target, takes each of NASTY in turn (``"²"`` as ``target_area`` with the real
    caller is the message that used to take the server down)."""
    caplog.set_level(logging.ERROR, logger="runtime.supervisor")
    async with role_world(waitroom_server) as world:
        for msg_type in sorted(ROUTES):
            senders = [PROVIDER] + ([CALLER] if "caller" in ROUTES[msg_type].senders else [])
            base = _base_body(world, msg_type)
            for name in ROUTES[msg_type].fields:
                for value in NASTY:
                    for sender in senders:
                        body = {**base, name: value}
                        await _send(world, sender, msg_type, body, _real_target(world, msg_type))
        crashes = [r.getMessage() for r in caplog.records if "crashed" in r.getMessage()]
        assert not crashes, crashes
        health = await HttpClient(waitroom_server.base_url).get("/healthz")
        assert health.status == 200
