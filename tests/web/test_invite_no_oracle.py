"""An invite link with a wrong secret answers like one into a room that is gone (issue 15).

A link is ``/i/<room id>.<secret>``. When the landing page answered 200 for any secret while the
room lived and 410 once it had ended, anyone holding one old link, or guessing room ids, could
tell which calls were going on. Now every kind of call that takes invitations (a caller's room, a
staff member's own room, a Consult Now call) checks the secret before the page is shown, and every reason an
invitation cannot be used gets one answer: the same status and page, the same refusal from the
room. An invitation of another room, tried on this room's link, is refused without being spent.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime, timedelta

import pytest

from actors import addresses
from actors.messages import CheckInvite, ClaimInvite, GuestPass
from runtime import Refusal
from storage import areas, meeting_rooms, orgs, staff
from storage import rooms as room_store
from storage.db import open_store
from tests.conftest import RunningServer
from tests.httpclient import HttpClient, Response
from tests.web.test_consult_pages import provider_of, send, signed_in

HTTP_OK = 200
HTTP_SEE_OTHER = 303
HTTP_GONE = 410
_TOKEN_IN_PAGE = re.compile(r'data-token="([^"]+)"')
#: Per-request values a page carries (CSP nonce, CSRF token): not part of what it says.
_PER_REQUEST = re.compile(r'(nonce|csrf_token" value|content)="[^"]*"')


def same_page(a: tuple[str, Response], b: tuple[str, Response]) -> bool:
    """Same status and the same page, apart from per-request values and the page's own path
    (the language switch links back to it)."""

    def said(path: str, page: Response) -> str:
        return _PER_REQUEST.sub("", page.text.replace(path, "<path>"))

    return a[1].status == b[1].status and said(*a) == said(*b)


def room_of(page: Response) -> str:
    found = _TOKEN_IN_PAGE.search(page.text)
    assert page.status == HTTP_OK and found is not None, page.text[:300]
    return found.group(1).split(".", 1)[0]


async def caller_room(server: RunningServer) -> str:
    async with open_store(server.db_path) as store:
        slug = (await areas.list_areas(store))[0].slug
    browser = HttpClient(server.base_url)
    form = await browser.get(f"/w/{slug}")
    arrived = await browser.post(
        f"/w/{slug}",
        {"csrf_token": form.csrf_token(), "name": "Ada", "reason": "oracle", "consent": "yes"},
    )
    return room_of(arrived)


async def user_room(server: RunningServer) -> str:
    """The demo provider's own room, made by the administrator and opened by its owner."""
    async with open_store(server.db_path) as store:
        org = (await orgs.list_organisations(store))[0]
        unit = (await orgs.list_units(store, org.id))[0]
        owner = await staff.find_login(store, server.demo.provider_username)
        assert owner is not None
    admin = await signed_in(server, server.demo.admin_username)
    csrf = (await admin.get("/account/password")).csrf_token()
    made = await admin.post(
        "/admin/meetings/user-rooms",
        {"csrf_token": csrf, "unit_id": str(unit.id), "user_id": str(owner.user.id)},
    )
    assert made.status == HTTP_SEE_OTHER, made.status
    provider = await signed_in(server, server.demo.provider_username)
    assert (await provider.get("/me/room")).status == HTTP_OK
    async with open_store(server.db_path) as store:
        room = await meeting_rooms.user_room_of(store, owner.user.id)
    assert room is not None
    return room.room_id


async def consult_room(server: RunningServer) -> str:
    provider = await provider_of(server)
    _, secret = await send(provider)
    recipient = HttpClient(server.base_url)
    landing = await recipient.get(f"/c/{secret}")
    opened = await recipient.post(
        f"/c/{secret}", {"csrf_token": landing.csrf_token(), "name": "Sam", "lang": "en"}
    )
    return room_of(opened)


async def invite_into(server: RunningServer, room_id: str) -> str:
    async with open_store(server.db_path) as store:
        issued = await room_store.issue_token(
            store,
            room_id,
            "invite",
            single_use=True,
            expires_at=datetime.now(UTC) + timedelta(hours=1),
        )
    return issued.raw


async def refusal_of(server: RunningServer, room_id: str, message: object) -> tuple[str, str]:
    with pytest.raises(Refusal) as refused:
        await server.registry.ref(addresses.room(room_id)).ask(message)
    return refused.value.code, refused.value.detail


@pytest.mark.parametrize("kind", ["caller", "user_room", "consult_now"])
async def test_a_wrong_secret_for_a_live_room_answers_like_a_room_that_is_gone(
    waitroom_server: RunningServer, kind: str
) -> None:
    """Failed on the old code: the landing page answered 200 for any secret of a live room."""
    make = {"caller": caller_room, "user_room": user_room, "consult_now": consult_room}[kind]
    room_id = await make(waitroom_server)
    assert addresses.room(room_id) in waitroom_server.registry
    gone_room = secrets.token_urlsafe(12)
    anonymous = HttpClient(waitroom_server.base_url)
    csrf = (await anonymous.get("/sign-in")).csrf_token()

    # The pages: a wrong secret for this live room, and any secret for a room that is gone.
    wrong = f"/i/{room_id}.{secrets.token_urlsafe(16)}"
    dead = f"/i/{gone_room}.{secrets.token_urlsafe(16)}"
    wrong_get, dead_get = await anonymous.get(wrong), await anonymous.get(dead)
    assert dead_get.status == HTTP_GONE
    assert same_page((wrong, wrong_get), (dead, dead_get)), (wrong_get.status, dead_get.status)
    form = {"csrf_token": csrf, "name": "Mallory"}
    wrong_post, dead_post = await anonymous.post(wrong, form), await anonymous.post(dead, form)
    assert same_page((wrong, wrong_post), (dead, dead_post)), (wrong_post.status, dead_post.status)
    assert same_page((wrong, wrong_post), (dead, dead_get))

    # The room: one refusal for a wrong secret, a used invitation and another room's invitation.
    secret = await invite_into(waitroom_server, room_id)
    assert (await anonymous.get(f"/i/{room_id}.{secret}")).status == HTTP_OK  # looking uses nothing
    other_room = await caller_room(waitroom_server)
    elsewhere = await invite_into(waitroom_server, other_room)
    answers = {
        await refusal_of(waitroom_server, room_id, CheckInvite("wrong")),
        await refusal_of(waitroom_server, room_id, ClaimInvite("wrong", "Mallory")),
        await refusal_of(waitroom_server, room_id, CheckInvite(elsewhere)),
        await refusal_of(waitroom_server, room_id, ClaimInvite(elsewhere, "Mallory")),
    }
    claimed = await waitroom_server.registry.ref(addresses.room(room_id)).ask(
        ClaimInvite(secret, "Olena")
    )
    assert isinstance(claimed, GuestPass)
    answers |= {
        await refusal_of(waitroom_server, room_id, CheckInvite(secret)),
        await refusal_of(waitroom_server, room_id, ClaimInvite(secret, "Mallory")),
    }
    assert len(answers) == 1, answers
    used = f"/i/{room_id}.{secret}"
    assert same_page((used, await anonymous.get(used)), (dead, dead_get))
    # Tried on the wrong room's link, the other room's invitation was not spent.
    other = await waitroom_server.registry.ref(addresses.room(other_room)).ask(
        ClaimInvite(elsewhere, "Olena")
    )
    assert isinstance(other, GuestPass) and other.room_id == other_room
