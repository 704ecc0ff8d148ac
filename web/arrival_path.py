"""The arrival's two page requests answered without Quart when they are ordinary (issue 17).

Every arrival is a GET of the form and a POST of it, and Quart's request machinery (its request
and app contexts, the hooks, Werkzeug's request and response objects) cost about as much as
the views and the pages together. An ordinary arrival needs none of it: an anonymous browser,
no query string, an open area whose pages are already in `web.caller_page_cache`, a form that
carries its CSRF token and consent. Such requests are answered here, in front of the Quart app,
with the same asks, the same cached pages, the same headers and cookies
(``tests/web/test_arrival_path.py`` compares the two answers).

Everything else goes to Quart, which answers it as before: staff, a query string, a page not
yet rendered, a closed or unknown area, a refused or expired form. What this path already
learnt goes with the request (``patient.AREA_LOOKUP``, ``patient.ARRIVAL_OUTCOME`` in the ASGI
scope) so nothing is asked twice and no arrival is made twice; a body it read is handed on.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

import trio
from jinja2.utils import htmlsafe_json_dumps
from werkzeug.http import parse_cookie, parse_options_header

from actors.messages import ArrivalTicket, Arrive
from runtime import Refusal, Registry
from web import caller_page_cache as pages
from web import i18n, patient, security
from web.app import MAX_CONTENT_LENGTH, WebConfig, ice_for, page_headers
from web.http_connection import WHOLE_WITHIN

ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]
Message = dict[str, Any]

#: ``/w/<slug>``: the arrival form and its submission (the slug as `patient` accepts it).
_ARRIVAL = re.compile(r"^/w/([A-Za-z0-9_-]{1,128})$")
_FORM_TYPE = "application/x-www-form-urlencoded"
_SESSION_COOKIES = (security.SESSION_COOKIE, security.SECURE_SESSION_COOKIE)
#: Any path of this path's pages: the headers differ by path only for ``/healthz``.
_ANY_PATH = "/w/"


class ArrivalPath:
    """ASGI app in front of the Quart app ``web`` (which `web.app.create_app` built)."""

    def __init__(self, web: Any) -> None:
        self.web = web
        self.registry: Registry = web.extensions["waitroom.registry"]
        self.config: WebConfig = web.extensions["waitroom.config"]
        self.public_url: str = web.config["WAITROOM_PUBLIC_URL"]
        self.cache = patient.page_cache(web)
        self.dumps = web.jinja_env.policies["json.dumps_function"]
        #: What every page gets (`web.app.page_headers`), over HTTP and over HTTPS.
        self._headers = {
            secure: _encoded(page_headers(_ANY_PATH, secure)) for secure in (False, True)
        }

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not scope["query_string"]:
            found = _ARRIVAL.match(scope["path"])
            if found is not None:
                request = _Request(scope)
                if not request.staff:
                    if scope["method"] == "GET":
                        if await self._form(request, found.group(1), send):
                            return
                    elif scope["method"] == "POST":
                        receive = await self._submit(request, found.group(1), receive, send)
                        if receive is None:
                            return
        await self.web(scope, receive, send)

    async def _form(self, request: _Request, slug: str, send: Any) -> bool:
        """Answer the empty form from the cache; False: Quart answers (with the area looked up)."""
        info = await self._area(request, slug, security.DIRECTORY_TIMEOUT)
        if info is None or not (info.active and info.open_now):
            return False
        page = self._cached(request, pages.FORM_TEMPLATE, info, pages.EMPTY_FORM)
        if page is None:
            return False
        await self._answer(request, send, page, None)
        return True

    async def _submit(self, request: _Request, slug: str, receive: Any, send: Any) -> Any:
        """Arrive and answer the waiting page; else the ``receive`` Quart should read the request
        from (None: answered, or the browser went away)."""
        body, messages, receive = await _read_body(request, receive)
        if body is None:
            return receive
        replay = _replaying(messages, receive)
        form = _form_fields(request, body)
        if form is None:
            return replay
        submitted = request.header(security.CSRF_HEADER) or form.get(security.CSRF_FIELD, "")
        cookie = request.cookies.get(security.ANON_CSRF_COOKIE, "")
        if not security.anonymous_token_matches(cookie, submitted):
            return replay  # Quart refuses it, in the caller's language
        info = await self._area(request, slug, security.SUBMIT_TIMEOUT)
        if info is None or not patient.consented(info, form):
            return replay
        page = self._cached(request, pages.WAITING_TEMPLATE, info, pages.WAITING_WITH_TOKEN)
        if page is None:
            return replay
        address, _ = request.scope[patient.AREA_LOOKUP]
        values = patient.form_values(info, form)
        remote = (request.scope.get("client") or ["<local>"])[0] or ""  # as Quart reads it
        try:
            ticket = await security.ask_through(
                self.registry, address, Arrive(values, remote), security.SUBMIT_TIMEOUT
            )
        except (Refusal, security.WebError) as outcome:
            request.scope[patient.ARRIVAL_OUTCOME] = outcome  # Quart answers it, asking no more
            return replay
        assert isinstance(ticket, ArrivalTicket)
        await self._answer(request, send, page, ticket.token)
        return None

    async def _area(self, request: _Request, slug: str, timeout: float) -> Any:
        """The area's public facts, kept in the scope for Quart; None if Quart must answer."""
        try:
            address, info = await patient.find_area(self.registry, slug, timeout)
        except security.WebError as error:
            request.scope[patient.AREA_LOOKUP] = error
            return None
        request.scope[patient.AREA_LOOKUP] = (address, info)
        return info

    def _cached(
        self, request: _Request, template: str, info: Any, context: dict[str, Any]
    ) -> str | None:
        locale = i18n.locale_for(
            request.cookies.get(i18n.LANG_COOKIE, ""), request.header("accept-language")
        )
        return self.cache.get(pages.key(template, locale, request.scope["path"], info, context))

    def _ice_json(self) -> str:
        return str(htmlsafe_json_dumps(ice_for(self.config), dumps=self.dumps))

    async def _answer(
        self, request: _Request, send: Any, page: str, room_token: str | None
    ) -> None:
        secure = security.secure_for(request.scope["scheme"], self.public_url)
        cookie = request.cookies.get(security.ANON_CSRF_COOKIE, "")
        handed: list[str] = []

        def csrf() -> str:
            handed.append(security.anonymous_token_for(cookie))
            return handed[-1]

        body = pages.fill(page, csrf, self._ice_json, room_token).encode()
        headers = [
            (b"content-type", b"text/html; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
            *self._headers[secure],
        ]
        if handed and handed[0] != cookie:
            headers.append((b"set-cookie", security.anonymous_cookie(handed[0], secure).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})


class _Request:
    """The few things this path reads of a request, from its ASGI scope."""

    __slots__ = ("cookies", "headers", "scope")

    def __init__(self, scope: Any) -> None:
        self.scope = scope
        #: The first value of each header (as Werkzeug's ``get``), by lower-case name.
        self.headers: dict[bytes, bytes] = {}
        cookies: list[str] = []
        for name, value in scope["headers"]:
            if name == b"cookie":
                cookies.append(value.decode("latin1"))
            else:
                self.headers.setdefault(name, value)
        self.cookies: Mapping[str, str] = parse_cookie(";".join(cookies)) if cookies else {}

    @property
    def staff(self) -> bool:
        """A session cookie, valid or not: Quart decides (staff see their own pages)."""
        return any(self.cookies.get(name) for name in _SESSION_COOKIES)

    def header(self, name: str) -> str:
        return self.headers.get(name.lower().encode(), b"").decode("latin1")


async def _read_body(request: _Request, receive: Any) -> tuple[bytes | None, list[Message], Any]:
    """The whole body if it comes within `WHOLE_WITHIN` and is small enough; else None, with the
    messages read so far for Quart (and None as ``receive`` if the browser went away)."""
    messages: list[Message] = []
    length = request.header("content-length")
    if not length.isdigit() or int(length) > MAX_CONTENT_LENGTH:
        return None, messages, receive
    more = True
    with trio.move_on_after(WHOLE_WITHIN):
        while more:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                return None, messages, None
            more = message.get("more_body", False)
    if more:
        return None, messages, _replaying(messages, receive)
    body = b"".join(m.get("body", b"") for m in messages)
    return (body if len(body) <= MAX_CONTENT_LENGTH else None), messages, receive


def _replaying(messages: list[Message], receive: Any) -> Callable[[], Awaitable[Message]]:
    """A ``receive`` that gives the messages already read again, then the rest of the request."""
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        message: Message = await receive()
        return message

    return replayed


def _form_fields(request: _Request, body: bytes) -> dict[str, str] | None:
    """The submitted form, first value per field, as Werkzeug parses it; None if it is not a
    plain UTF-8 form (Quart answers it)."""
    mimetype, _ = parse_options_header(request.header("content-type"))
    if mimetype != _FORM_TYPE:
        return None
    try:
        items = parse_qsl(body.decode(), keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        return None
    form: dict[str, str] = {}
    for name, value in items:
        form.setdefault(name, value)
    return form


def _encoded(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode(), value.encode()) for name, value in headers.items()]
