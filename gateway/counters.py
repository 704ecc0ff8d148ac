"""What the gateway refused, counted for ``/metrics`` (issue 15).

Plain counters, read at scrape time by :mod:`waitroom.metrics`:

* :data:`REFUSALS`: websockets the gateway closed (or served with less) for cause, by reason:
  one of :data:`REASONS`, each tied to one close code of ``docs/protocol.md``.
* :data:`ERRORS`: error frames sent, by refusal code (:mod:`actors.refusals`): a hello refused
  (``invalid_token``, ``unauthenticated``, ``unsupported_version``, ...), a frame refused
  (``malformed``, ``frame_too_large``, ``unknown_type``, ``rate_limited``, ...) or a request an
  actor refused.

Both are keyed by a fixed set of labels made here at import, never by what a client sent: a code
that is not one of :mod:`actors.refusals` counts as :data:`OTHER`, so no client can grow the
number of series. Every label is present from the start at 0, as the media plane's dropped-datagram
reasons are, so a rate over the first refusal is not lost.

Process-wide, like :data:`runtime.kernel.MESSAGES_HANDLED`: one node's process is one gateway.
An increment is one dict store, and it happens only on a refusal or a batched frame, never per
accepted message. :data:`BATCHED` counts frames that carried several events (protocol version 2).
"""

from __future__ import annotations

from actors import refusals

#: One more websocket from an address already at its limit: closed 4029 before ``hello``
#: (:mod:`gateway.connlimit`).
PER_ADDRESS_LIMIT = "per_address_limit"
#: No successful ``hello`` within the hello timeout: closed 1001.
HELLO_TIMEOUT = "hello_timeout"
#: Too many refused messages in a row: closed 1008.
TOO_MANY_REFUSED = "too_many_refused"
#: The client read its events too slowly and its outbound queue filled: closed 1013.
SLOW_READER = "slow_reader"
#: A session cookie on a cross-origin upgrade was ignored (cross-site websocket hijacking): the
#: socket is served without the staff session, so its hello is then refused as unauthenticated.
CROSS_ORIGIN_COOKIE = "cross_origin_cookie"

REASONS = (PER_ADDRESS_LIMIT, HELLO_TIMEOUT, TOO_MANY_REFUSED, SLOW_READER, CROSS_ORIGIN_COOKIE)

#: The label of an error code that is not one of :mod:`actors.refusals` (none is, today).
OTHER = "other"
#: Every refusal code a client can be sent (:mod:`actors.refusals`), and :data:`OTHER`.
CODES: tuple[str, ...] = (
    *sorted({getattr(refusals, name) for name in refusals.__all__}),
    OTHER,
)

#: Websockets refused, by reason (always every one of :data:`REASONS`).
REFUSALS: dict[str, int] = dict.fromkeys(REASONS, 0)
#: Error frames sent, by code (always every one of :data:`CODES`).
ERRORS: dict[str, int] = dict.fromkeys(CODES, 0)


#: Frames that carried several events (protocol version 2), and the events they carried: how much
#: batching saves shows as events per frame.
BATCHED: dict[str, int] = {"frames": 0, "events": 0}


#: Rooms the gateway entered again on a page's behalf after the room restarted (`gateway.connection`:
#: the room answered ``not_in_room``, or another node died).
ENTERED_AGAIN: dict[str, int] = {"rooms": 0}


def entered_again() -> None:
    ENTERED_AGAIN["rooms"] += 1


def events_batched(count: int) -> None:
    """Count one frame that carried ``count`` events."""
    BATCHED["frames"] += 1
    BATCHED["events"] += count


def refused(reason: str) -> None:
    """Count one refusal; ``reason`` is one of :data:`REASONS` (anything else is a bug here)."""
    REFUSALS[reason] += 1


def error_sent(code: str) -> None:
    """Count one error frame under its code, or :data:`OTHER` for a code of no known kind."""
    ERRORS[code if code in ERRORS else OTHER] += 1
