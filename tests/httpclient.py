"""A tiny real HTTP client for tests: stdlib ``http.client`` in a worker thread, with a cookie jar.

No redirects are followed (tests assert them) and every response is read completely, so each
request stands alone and Trio never waits on a socket.
"""

from __future__ import annotations

import http.client
import re
import ssl
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from urllib.parse import urlencode, urlsplit

import trio

#: Generous for a loaded 2-core machine, small enough that a hung server fails the test quickly.
REQUEST_TIMEOUT = 20.0

_CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]*)"')


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    text: str

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def set_cookies(self) -> list[str]:
        """Every raw ``Set-Cookie`` header, for checking attributes."""
        return [v for k, v in self.headers if k.lower() == "set-cookie"]

    def json(self) -> object:
        import json

        return json.loads(self.text)

    def csrf_token(self) -> str:
        """The CSRF token of the first form on the page."""
        match = _CSRF_INPUT.search(self.text)
        assert match is not None, "the page has no CSRF field"
        return match.group(1)


@dataclass
class HttpClient:
    """One browser: a base URL and the cookies the server set (names to values)."""

    base_url: str
    cookies: dict[str, str] = field(default_factory=dict)
    #: Connect from this local address (e.g. "127.0.0.2": another client on loopback).
    source_address: str | None = None

    async def get(self, path: str) -> Response:
        return await self.request("GET", path)

    async def post(self, path: str, form: dict[str, str]) -> Response:
        body = urlencode(form).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        return await self.request("POST", path, body, headers)

    async def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        response = await trio.to_thread.run_sync(self._request_sync, method, path, body, headers)
        for raw in response.set_cookies():
            jar = SimpleCookie(raw)
            for name, morsel in jar.items():
                if morsel["max-age"] == "0" or morsel["expires"].startswith("Thu, 01 Jan 1970"):
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        return response

    def _request_sync(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str] | None
    ) -> Response:
        parts = urlsplit(self.base_url)
        conn: http.client.HTTPConnection
        if parts.scheme == "https":
            # Tests serve a self-signed certificate made on the spot: encryption without trust.
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            conn = http.client.HTTPSConnection(
                parts.hostname or "", parts.port, timeout=REQUEST_TIMEOUT, context=context
            )
        else:
            conn = http.client.HTTPConnection(
                parts.hostname or "",
                parts.port,
                timeout=REQUEST_TIMEOUT,
                source_address=None if self.source_address is None else (self.source_address, 0),
            )
        try:
            all_headers = {"Accept": "text/html", **(headers or {})}
            if self.cookies:
                all_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
            conn.request(method, path, body=body, headers=all_headers)
            raw = conn.getresponse()
            text = raw.read().decode("utf-8", "replace")
            return Response(raw.status, raw.getheaders(), text)
        finally:
            conn.close()
