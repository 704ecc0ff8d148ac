"""A minimal async HTTP/1.1 client over Trio and h11, bounded in time.

The load tester needs hundreds of requests a second without a thread per request, and no HTTP
client library is among the dependencies; h11 (which Hypercorn already brings) does the parsing.
A `Browser` opened with ``keep_alive=True`` sends its requests over one connection, as a browser
does for a page and the form posted from it; otherwise each request has a connection of its own.
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
class _Connection:
    stream: trio.SocketStream
    h11: h11.Connection
    #: Whether any byte of the current response has come (a request is only sent again if not).
    answered: bool = False


@dataclass
class Browser:
    """One simulated browser: a base URL and its cookie jar (and, with ``keep_alive``, its open
    connection: use it as ``async with Browser(url, keep_alive=True) as browser``, which closes it)."""

    base_url: str
    cookies: dict[str, str] = field(default_factory=dict)
    keep_alive: bool = False
    _open: _Connection | None = field(default=None, repr=False)

    async def __aenter__(self) -> Browser:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the kept connection, if any."""
        connection, self._open = self._open, None
        if connection is not None:
            with trio.CancelScope(shield=True):
                await connection.stream.aclose()

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
        all_headers = {"Host": self.host, **headers}
        if not self.keep_alive:
            all_headers["Connection"] = "close"
        if body or method == "POST":
            all_headers["Content-Length"] = str(len(body))
        if self.cookies:
            all_headers["Cookie"] = self.cookie_header()
        request = h11.Request(method=method, target=path, headers=list(all_headers.items()))
        kept, self._open = self._open, None
        if kept is not None:
            try:
                return await self._exchange(kept, request, body)
            except HttpError:
                # The server may close an idle kept connection at any moment; a browser then
                # sends the request again on a new one, and so does this, but only if no byte
                # of an answer came (the request was not seen).
                if kept.answered:
                    raise
        return await self._exchange(await self._connect(), request, body)

    async def _connect(self) -> _Connection:
        parts = urlsplit(self.base_url)
        try:
            stream = await trio.open_tcp_stream(parts.hostname or "", parts.port or 80)
        except OSError as exc:
            raise HttpError("http_connect") from exc
        return _Connection(stream, h11.Connection(h11.CLIENT))

    async def _exchange(
        self, connection: _Connection, request: h11.Request, body: bytes
    ) -> Response:
        conn, stream = connection.h11, connection.stream
        try:
            await stream.send_all(conn.send(request) or b"")
            if body:
                await stream.send_all(conn.send(h11.Data(data=body)) or b"")
            await stream.send_all(conn.send(h11.EndOfMessage()) or b"")
            connection.answered = False
            response = await _read_response(connection)
        except (OSError, trio.BrokenResourceError, h11.ProtocolError) as exc:
            await _close(stream)
            raise HttpError("http_io") from exc
        except BaseException:
            await _close(stream)
            raise
        if self.keep_alive and conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
            self._open = connection
        else:
            await _close(stream)
        return response


async def _close(stream: trio.SocketStream) -> None:
    with trio.CancelScope(shield=True):
        await stream.aclose()


async def _read_response(connection: _Connection) -> Response:
    conn, stream = connection.h11, connection.stream
    status = 0
    headers: list[tuple[str, str]] = []
    chunks: list[bytes] = []
    size = 0
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await stream.receive_some(_READ_SIZE)
            connection.answered = connection.answered or bool(data)
            conn.receive_data(data)
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
