"""The arrival's lean path (issue 17) answers exactly what the Quart views answer, and leaves
everything out of the ordinary to them without asking an actor twice or arriving twice.

Each test calls the two ASGI apps directly on a running server's actors: the Quart app
(``create_app``) and the lean path in front of it, whose ``web`` is wrapped to record what it
handed on.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import pytest
import trio

from actors.messages import Arrive
from actors.waiting import areas
from tests.conftest import RunningServer
from tests.web.test_patient_pages import slug_path
from web import security
from web.app import WebConfig, create_app
from web.arrival_path import ArrivalPath

_CSRF_IN_PAGE = re.compile(r'name="csrf_token" value="([^"]+)"')
_TOKEN_IN_PAGE = re.compile(r'data-token="([^"]+)"')
_COOKIE = re.compile(r"^waitroom_csrf=([^;]+)")

Receive = Callable[[], Awaitable[dict[str, Any]]]


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: str

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name), None)

    def cookie_token(self) -> str | None:
        cookie = self.header("set-cookie")
        found = _COOKIE.match(cookie) if cookie else None
        return found.group(1) if found else None

    def csrf(self) -> str:
        found = _CSRF_IN_PAGE.search(self.body)
        assert found is not None, "no CSRF field in the page"
        return found.group(1)

    def same_page_as(self, other: Answer, *tokens: tuple[str, str]) -> bool:
        """Equal once each pair's first (this page's own value) reads as the second."""
        body, headers = self.body, self.headers
        for mine, theirs in tokens:
            body = body.replace(mine, theirs)
            headers = [(k, v.replace(mine, theirs)) for k, v in headers]
        return (self.status, sorted(headers), body) == (
            other.status,
            sorted(other.headers),
            other.body,
        )


@dataclass
class Handed:
    """The Quart app behind the lean path, counting the requests it was handed."""

    app: Any
    scopes: list[dict[str, Any]] = field(default_factory=list)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.scopes.append(scope)
        await self.app(scope, receive, send)


@dataclass
class Apps:
    quart: Any
    lean: ArrivalPath
    handed: Handed
    path: str


@pytest.fixture
def apps(waitroom_server: RunningServer) -> Apps:
    quart = create_app(waitroom_server.registry, WebConfig())
    lean = ArrivalPath(quart)
    handed = Handed(quart)
    lean.web = handed
    return Apps(quart, lean, handed, slug_path(waitroom_server))


def _body_once(body: bytes) -> Receive:
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    return receive


async def call(
    app: Any,
    method: str,
    path: str,
    *,
    cookies: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    query: bytes = b"",
    client: str = "127.0.0.1",
    receive: Receive | None = None,
    scheme: str = "http",
) -> Answer | None:
    """One request through ``app``; None if it sent nothing."""
    body = urlencode(form).encode() if form is not None else b""
    headers = [(b"host", b"waitroom.test"), (b"accept-language", b"en")]
    if cookies:
        headers.append((b"cookie", "; ".join(f"{k}={v}" for k, v in cookies.items()).encode()))
    if form is not None:
        headers += [
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"content-length", str(len(body)).encode()),
        ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": scheme,
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": headers,
        "client": (client, 50000),
        "server": ("127.0.0.1", 8080),
        "extensions": {},
    }
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    with trio.fail_after(10):
        await app(scope, receive or _body_once(body), send)
    if not sent:
        return None
    start = sent[0]
    text = b"".join(m.get("body", b"") for m in sent[1:]).decode()
    pairs = [(k.decode(), v.decode()) for k, v in start["headers"]]
    return Answer(start["status"], pairs, text)


async def _form(
    app: Any, path: str, cookies: dict[str, str] | None = None, scheme: str = "http"
) -> Answer:
    answer = await call(app, "GET", path, cookies=cookies, scheme=scheme)
    assert answer is not None
    return answer


async def test_the_form_is_what_quart_answers(apps: Apps) -> None:
    quart = await _form(apps.quart, apps.path)  # renders it into the cache
    lean = await _form(apps.lean, apps.path)
    assert apps.handed.scopes == []  # answered by the lean path itself
    assert quart.status == lean.status == 200
    new_quart, new_lean = quart.cookie_token(), lean.cookie_token()
    assert new_quart is not None and new_lean is not None and new_quart != new_lean
    assert lean.csrf() == new_lean
    assert lean.same_page_as(quart, (new_lean, new_quart))
    # A browser that has its token keeps it, and is not sent the cookie again.
    again = await _form(apps.lean, apps.path, {security.ANON_CSRF_COOKIE: new_lean})
    quart_again = await _form(apps.quart, apps.path, {security.ANON_CSRF_COOKIE: new_lean})
    assert again.header("set-cookie") is None and again.csrf() == new_lean
    assert again.same_page_as(quart_again)


async def test_over_https_the_headers_and_cookie_are_quarts(apps: Apps) -> None:
    quart = await _form(apps.quart, apps.path, scheme="https")
    lean = await _form(apps.lean, apps.path, scheme="https")
    assert apps.handed.scopes == []
    assert lean.header("strict-transport-security") is not None
    assert "Secure" in (lean.header("set-cookie") or "")
    new_quart, new_lean = quart.cookie_token(), lean.cookie_token()
    assert new_quart is not None and new_lean is not None
    assert lean.same_page_as(quart, (new_lean, new_quart))


async def _arrive(app: Any, path: str, name: str, client: str = "127.0.0.1") -> Answer:
    form = await _form(app, path)
    token = form.csrf()
    answer = await call(
        app,
        "POST",
        path,
        cookies={security.ANON_CSRF_COOKIE: token},
        form={"csrf_token": token, "name": name, "reason": "knee", "consent": "yes"},
        client=client,
    )
    assert answer is not None
    return answer


async def test_the_arrival_is_what_quart_answers(apps: Apps) -> None:
    quart = await _arrive(apps.quart, apps.path, "Ada")
    lean = await _arrive(apps.lean, apps.path, "Bea")
    assert apps.handed.scopes == []
    assert quart.status == lean.status == 200
    room_quart, room_lean = _TOKEN_IN_PAGE.search(quart.body), _TOKEN_IN_PAGE.search(lean.body)
    assert room_quart is not None and room_lean is not None
    assert room_quart.group(1) != room_lean.group(1)  # a room each
    assert lean.same_page_as(quart, (room_lean.group(1), room_quart.group(1)))


@pytest.fixture
def arrive_asks(monkeypatch: pytest.MonkeyPatch) -> list[Arrive]:
    """Every `Arrive` any page sends to an area."""
    asked: list[Arrive] = []
    real = security.ask_through

    async def counting(actors: Any, address: str, message: object, timeout: float = 5.0) -> object:
        if isinstance(message, Arrive):
            asked.append(message)
        return await real(actors, address, message, timeout)

    monkeypatch.setattr(security, "ask_through", counting)
    return asked


async def _warm(apps: Apps, arrive_asks: list[Arrive]) -> None:
    """One arrival through Quart, so both pages are cached; its ask is not counted."""
    assert (await _arrive(apps.quart, apps.path, "First", "198.51.100.1")).status == 200
    arrive_asks.clear()


async def test_a_refused_arrival_is_answered_by_quart_without_arriving_again(
    apps: Apps, arrive_asks: list[Arrive]
) -> None:
    await _warm(apps, arrive_asks)
    flooder = "203.0.113.9"
    for n in range(areas.ARRIVALS_PER_ADDRESS):
        assert (await _arrive(apps.lean, apps.path, f"Caller {n}", flooder)).status == 200
    assert apps.handed.scopes == [] and len(arrive_asks) == areas.ARRIVALS_PER_ADDRESS
    refused = await _arrive(apps.lean, apps.path, "One too many", flooder)
    assert refused.status == 429
    assert "Too many arrivals have come from your connection" in refused.body
    assert len(apps.handed.scopes) == 1  # Quart wrote the page ...
    assert len(arrive_asks) == areas.ARRIVALS_PER_ADDRESS + 1  # ... without a second Arrive


async def test_forms_out_of_the_ordinary_go_to_quart(apps: Apps, arrive_asks: list[Arrive]) -> None:
    form = await _form(apps.lean, apps.path)  # the first form goes to Quart, which caches it
    token = form.csrf()
    good = {"csrf_token": token, "name": "Cy", "reason": "knee", "consent": "yes"}
    cookies = {security.ANON_CSRF_COOKIE: token}
    handed = len(apps.handed.scopes)
    # A forged or missing token, and no consent: refused by Quart's own checks and pages.
    forged = await call(
        apps.lean, "POST", apps.path, cookies=cookies, form={**good, "csrf_token": "x"}
    )
    assert forged is not None and forged.status == 400 and "This form has expired" in forged.body
    no_cookie = await call(apps.lean, "POST", apps.path, form=good)
    assert no_cookie is not None and no_cookie.status == 400
    unconsented = await call(
        apps.lean, "POST", apps.path, cookies=cookies, form={**good, "consent": ""}
    )
    assert unconsented is not None and unconsented.status == 400
    assert "Please confirm that you agree" in unconsented.body
    assert 'value="Cy"' in unconsented.body  # what they typed is kept
    assert arrive_asks == []
    # Staff, a query string and an unknown link are Quart's too.
    staff = await call(apps.lean, "GET", apps.path, cookies={security.SESSION_COOKIE: "stale"})
    assert staff is not None and staff.status == 200
    query = await call(apps.lean, "GET", apps.path, query=b"lang=uk")
    assert query is not None and query.status == 200
    unknown = await call(apps.lean, "GET", "/w/no-such-area")
    assert unknown is not None and unknown.status == 404
    assert len(apps.handed.scopes) == handed + 6


async def _post_as_it_comes(apps: Apps, token: str, name: str, receive: Receive) -> Answer | None:
    """An arrival through the lean path whose body comes as ``receive`` gives it (the headers
    announce the whole form)."""
    return await call(
        apps.lean,
        "POST",
        apps.path,
        cookies={security.ANON_CSRF_COOKIE: token},
        form={"csrf_token": token, "name": name, "consent": "yes"},
        receive=receive,
    )


async def test_a_body_still_coming_is_handed_on_whole(
    apps: Apps, arrive_asks: list[Arrive]
) -> None:
    await _warm(apps, arrive_asks)
    form = await _form(apps.lean, apps.path)
    token = form.csrf()
    body = urlencode({"csrf_token": token, "name": "Di", "consent": "yes"}).encode()  # as sent
    parts = [body[:10], body[10:]]

    async def slowly() -> dict[str, Any]:
        if len(parts) == 2:
            return {"type": "http.request", "body": parts.pop(0), "more_body": True}
        if parts:
            await trio.sleep(0.6)  # past the lean path's wait for a whole body
            return {"type": "http.request", "body": parts.pop(0), "more_body": False}
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    answer = await _post_as_it_comes(apps, token, "Di", slowly)
    assert answer is not None and answer.status == 200 and "data-token" in answer.body
    assert len(apps.handed.scopes) == 1  # handed on, with what had come of the body
    assert len(arrive_asks) == 1  # Quart read the whole body and arrived once


async def test_a_browser_gone_mid_body_changes_nothing(
    apps: Apps, arrive_asks: list[Arrive]
) -> None:
    form = await _form(apps.lean, apps.path)
    token = form.csrf()
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": b"csrf_token=", "more_body": True},
        {"type": "http.disconnect"},
    ]

    async def leaving() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    answer = await _post_as_it_comes(apps, token, "Ed", leaving)
    assert answer is None
    assert arrive_asks == []
