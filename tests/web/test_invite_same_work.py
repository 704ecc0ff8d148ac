"""An invite link into a room that is not running does the same work as a wrong secret into a live
one (issue 15): both are checked against storage by the one check function, then refused alike.

The page already answered both with the same status and text (tests/web/test_invite_no_oracle.py),
but a live room read storage before refusing and a dead one did not, so the answer came sooner:
the time told which calls are going on. No timing is measured here (it would be flaky); the
test records every call of :func:`actors.calls.invites.check_invitation` and of the storage
read under it, and requires one of each, with the link's own secret, on every path (landing page
and claim, live room and dead room).

Failed on the old code: the dead room's landing page and claim called neither.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from actors.calls import invites
from storage import rooms as room_store
from storage.db import Store
from tests.conftest import RunningServer
from tests.httpclient import HttpClient, Response
from tests.web.test_invite_no_oracle import HTTP_GONE, caller_room, same_page


def spy(
    calls: list[tuple[str, str]], name: str, real: Callable[..., Awaitable[Any]]
) -> Callable[..., Awaitable[Any]]:
    async def recorded(store: Store, *args: Any, **kwargs: Any) -> Any:
        calls.append((name, str(args[-1])))  # the secret is the last argument of both
        return await real(store, *args, **kwargs)

    return recorded


async def test_a_dead_room_and_a_live_room_check_the_secret_the_same_way(
    waitroom_server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = await caller_room(waitroom_server)
    dead = secrets.token_urlsafe(12)
    calls: list[tuple[str, str]] = []
    monkeypatch.setattr(invites, "check_invitation", spy(calls, "check", invites.check_invitation))
    monkeypatch.setattr(room_store, "check_token", spy(calls, "read", room_store.check_token))
    browser = HttpClient(waitroom_server.base_url)
    csrf = (await browser.get("/sign-in")).csrf_token()
    answers: dict[str, list[tuple[str, Response]]] = {"GET": [], "POST": []}
    for room in (live, dead):
        for method in ("GET", "POST"):
            secret = secrets.token_urlsafe(16)
            path = f"/i/{room}.{secret}"
            calls.clear()
            if method == "GET":
                page = await browser.get(path)
            else:
                page = await browser.post(path, {"csrf_token": csrf, "name": "Ola"})
            assert page.status == HTTP_GONE, (room, method, page.status)
            # One check and one storage read, with this link's secret, whether the room lives.
            assert calls == [("check", secret), ("read", secret)], (room == live, method, calls)
            answers[method].append((path, page))
    for method, (at_live, at_dead) in answers.items():
        assert same_page(at_live, at_dead), method
