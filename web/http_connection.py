"""Quart-Trio's HTTP connection, with fewer tasks and fewer sends per request (issue 17).

Quart-Trio answers every request with a nursery and two tasks, one reading the body and one
running the view, and sends a page as three ASGI messages (the start, the body, an empty last
body), each a trip through Hypercorn's h11 layer. Nearly every request here arrives whole in
one read (the pages' forms are small; Hypercorn hands over the head, the body and its end at
once): the body is gathered and the request answered in the connection's own task, the page in
one message. A body that is still coming after `WHOLE_WITHIN` goes the usual way, and so does a
response that is not one block of bytes (a static file).

The one difference in behaviour: a view answering a request that came whole is not cancelled
if the client goes away meanwhile (Quart-Trio cancels it when the disconnect is read). Views
here are short and bounded (every ask has its timeout), and what they send after a disconnect
Hypercorn drops.
"""

from __future__ import annotations

from typing import cast

import trio
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, HTTPResponseBodyEvent
from quart.utils import encode_headers
from quart.wrappers import Response
from quart.wrappers.response import DataBody
from quart_trio.asgi import TrioASGIHTTPConnection

#: How long a request's body may take to come in before the request goes Quart-Trio's usual way
#: (where the view waits for it, up to ``BODY_TIMEOUT``). A form comes in one read, well inside.
WHOLE_WITHIN = 0.5


class LeanHTTPConnection(TrioASGIHTTPConnection):
    """Set as the app's ``asgi_http_class``."""

    async def __call__(self, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        request = self._create_request_from_scope(send)
        more = True
        with trio.move_on_after(WHOLE_WITHIN):
            while more:
                message = await receive()
                if message["type"] != "http.request":  # gone before it finished
                    return
                request.body.append(message.get("body", b""))
                more = message.get("more_body", False)
        if more:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self.handle_messages, nursery, request, receive)
                nursery.start_soon(self.handle_request, nursery, request, send)
            return
        request.body.set_complete()
        response = await self.app.handle_request(request)
        timeout = self.app.config["RESPONSE_TIMEOUT"]
        if isinstance(response, Response) and response.timeout != Ellipsis:
            timeout = cast(float | None, response.timeout)
        with trio.move_on_after(timeout if timeout is not None else float("inf")):
            await self._send_response(send, response)

    async def _send_response(self, send: ASGISendCallable, response: object) -> None:
        if isinstance(response, Response) and isinstance(response.response, DataBody):
            body = response.response
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": encode_headers(response.headers),
                }
            )
            last: HTTPResponseBodyEvent = {
                "type": "http.response.body",
                "body": body.data[body.begin : body.end],
                "more_body": False,
            }
            await send(last)
            return
        await super()._send_response(send, response)  # type: ignore[arg-type]
