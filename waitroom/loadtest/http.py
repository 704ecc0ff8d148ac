"""A minimal async HTTP/1.1 client over Trio and h11: one request per connection, bounded in time.

The load tester needs hundreds of requests a second without a thread per request, and no HTTP
client library is among the dependencies; h11 (which Hypercorn already brings) does the parsing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from http.cookies import CookieError, SimpleCookie
from urllib.parse import urlencode, urlsplit

import h11
import trio

#: Bounds every request, connect to last byte.
REQUEST_TIMEOUT = 20.0
#: Largest response body read (pages are a few KiB; /metrics a few more).
MAX_BODY = 4 * 1024 * 1024
_READ_SIZE = 65536
_CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]*)"')


class HttpError(Exception):
    """The request failed below HTTP (connect, timeout, malformed response)."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    text: str

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name.lower():
                return value
        return None

    def csrf_token(self) -> str | None:
        match = _CSRF_INPUT.search(self.text)
        return match.group(1) if match else None


@dataclass
class Browser:
    """One simulated browser: a base URL and its cookie jar."""

    base_url: str
    cookies: dict[str, str] = field(default_factory=dict)

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).netloc

    def cookie_header(self) -> str:
        return "; ".join(f"{k}={v}" for k, v in self.cookies.items())

    async def get(self, path: str) -> Response:
        return await self.request("GET", path)

    async def post_form(self, path: str, form: dict[str, str]) -> Response:
        body = urlencode(form).encode()
        return await self.request(
            "POST", path, body, {"Content-Type": "application/x-www-form-urlencoded"}
        )

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> Response:
        with trio.move_on_after(REQUEST_TIMEOUT) as scope:
            response = await self._request(method, path, body, headers or {})
        if scope.cancelled_caught:
            raise HttpError("http_timeout")
        for key, value in response.headers:
            if key == "set-cookie":
                self._remember(value)
        return response

    def _remember(self, raw: str) -> None:
        try:
            jar = SimpleCookie(raw)
        except CookieError:
            return
        for name, morsel in jar.items():
            if morsel["max-age"] == "0":
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = morsel.value

    async def _request(
        self, method: str, path: str, body: bytes, headers: dict[str, str]
    ) -> Response:
        parts = urlsplit(self.base_url)
        all_headers = {"Host": self.host, "Connection": "close", **headers}
        if body or method == "POST":
            all_headers["Content-Length"] = str(len(body))
        if self.cookies:
            all_headers["Cookie"] = self.cookie_header()
        try:
            stream = await trio.open_tcp_stream(parts.hostname or "", parts.port or 80)
        except OSError as exc:
            raise HttpError("http_connect") from exc
        conn = h11.Connection(h11.CLIENT)
        async with stream:
            try:
                await stream.send_all(
                    conn.send(
                        h11.Request(method=method, target=path, headers=list(all_headers.items()))
                    )
                    or b""
                )
                if body:
                    await stream.send_all(conn.send(h11.Data(data=body)) or b"")
                await stream.send_all(conn.send(h11.EndOfMessage()) or b"")
                return await _read_response(conn, stream)
            except (OSError, trio.BrokenResourceError, h11.ProtocolError) as exc:
                raise HttpError("http_io") from exc


async def _read_response(conn: h11.Connection, stream: trio.SocketStream) -> Response:
    status = 0
    headers: list[tuple[str, str]] = []
    chunks: list[bytes] = []
    size = 0
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await stream.receive_some(_READ_SIZE))
        elif isinstance(event, h11.Response):
            status = event.status_code
            headers = [(k.decode().lower(), v.decode("latin-1")) for k, v in event.headers]
        elif isinstance(event, h11.Data):
            size += len(event.data)
            if size > MAX_BODY:
                raise HttpError("http_too_large")
            chunks.append(bytes(event.data))
        elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
            break
    return Response(status, headers, b"".join(chunks).decode("utf-8", "replace"))


def parse_prometheus(text: str) -> dict[str, float]:
    """``name{labels}`` -> value for every sample line (labels kept verbatim in the key)."""
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        try:
            samples[key] = float(value)
        except ValueError:
            continue
    return samples
