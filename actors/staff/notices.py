"""``notices``: the staff notice board behind the bell in the portal (issue 14).

Any actor tells it :class:`Notify` (a request assigned to a provider, a request waiting too long, a
request declined); the board stores the notice first, so the bell survives a reload and a restart,
then pushes ``staff.notice`` to every open socket of that staff member that subscribed
(``notices.subscribe``). ``ring`` asks the page to play its sound and show a desktop notification;
the page script (``web/static/js/notices.js``) decides how. Reading a notice (``notices.read``)
only marks it. The wire is in ``docs/protocol.md`` ("Notices").

In a cluster every node runs a board and a staff member's sockets may be on any node: the node
that stores a notice pushes it to the sockets subscribed there and tells every other node's board
:class:`NoticeStored`, which pushes the same event to that node's subscribers and stores nothing.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from actors import addresses, refusals
from actors.every_node import tell_every_node
from actors.inbound import ConnectionClosed, Inbound, Push
from actors.principal import Principal
from runtime.errors import ActorError, Refusal
from runtime.kernel import Actor, handles
from storage import notices as notice_store
from storage.db import Store

log = logging.getLogger(__name__)

#: Kept importable; the address lives in ``actors.addresses``.
NOTICES_ADDRESS = addresses.NOTICES
MAX_KIND = 64
MAX_TEXT = 500
MAX_URL = 500
#: SQLite rowids are signed 64-bit: a larger id names no notice (and must not reach SQLite).
MAX_ROWID = 2**63
#: Most sockets one staff member subscribes from (tabs): bounds the board's memory per person.
MAX_SUBSCRIPTIONS_PER_USER = 32


@dataclass(frozen=True)
class Notify:
    """Put a notice under ``user_id``'s bell; replies the stored notice's id.

    ``url`` is a same-site path (``/ondemand``) or empty; ``ring``: sound and desktop notification.
    """

    org_id: int
    user_id: int
    kind: str
    text: str = field(repr=False)
    url: str
    ring: bool


@dataclass(frozen=True)
class NoticeStored:
    """Another node's board stored a notice for ``user_id``: push ``event`` (the body of
    ``staff.notice``, the unread count included) to this node's subscribers; nothing is stored."""

    user_id: int
    event: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class ListNotices:
    """For a page's first render of the bell: replies :class:`NoticeList`."""

    principal: Principal
    limit: int = notice_store.DEFAULT_LIMIT


@dataclass(frozen=True)
class MarkNoticeRead:
    """A page marks one of its own notices read; replies the unread count."""

    principal: Principal
    notice_id: int


@dataclass(frozen=True)
class NoticeList:
    unread: int
    notices: tuple[dict[str, Any], ...]


def notice_view(notice: notice_store.Notice) -> dict[str, Any]:
    """The wire shape of a notice (``notices.subscribe``'s list, ``staff.notice``)."""
    return {
        "id": notice.id,
        "kind": notice.kind,
        "text": notice.text,
        "url": notice.url,
        "ring": notice.ring,
        "at": notice.created_at.timestamp(),
        "read": notice.read_at is not None,
    }


def _check(message: Notify) -> None:
    if not message.kind or len(message.kind) > MAX_KIND:
        raise Refusal(refusals.BAD_FIELD, "a notice needs a short kind")
    if not message.text.strip() or len(message.text) > MAX_TEXT:
        raise Refusal(refusals.BAD_FIELD, f"a notice's text is 1-{MAX_TEXT} characters")
    url = message.url
    if url and (
        len(url) > MAX_URL
        or not url.startswith("/")
        or url.startswith("//")
        or "\\" in url
        or any(ord(c) < 0x20 for c in url)
    ):
        raise Refusal(refusals.BAD_FIELD, "a notice links to a path on this site only")


def _user_id(principal: Principal) -> int:
    if not principal.is_staff or principal.user_id is None or not principal.user_id.isdigit():
        raise Refusal(refusals.FORBIDDEN, "only signed-in staff have notices")
    return int(principal.user_id)


class NoticeBoard(Actor):
    """See the module docstring. State in memory: which sockets subscribed, per staff member."""

    def __init__(self, store: Store) -> None:
        super().__init__()
        self.store = store
        self.subscribers: dict[int, set[str]] = {}

    @handles(Notify)
    async def _notify(self, message: Notify) -> int:
        _check(message)
        notice = await notice_store.add(
            self.store,
            message.org_id,
            message.user_id,
            message.kind,
            message.text.strip(),
            message.url,
            message.ring,
        )
        peers = self.registry.peers()
        if self.subscribers.get(message.user_id) or peers:
            unread = await notice_store.unread_count(self.store, message.user_id)
            body = {**notice_view(notice), "unread": unread}
            self._push(message.user_id, body)
            if peers:
                tell_every_node(self, addresses.NOTICES, NoticeStored(message.user_id, body))
        return notice.id

    @handles(NoticeStored)
    async def _stored_elsewhere(self, message: NoticeStored) -> None:
        self._push(message.user_id, message.event)

    def _push(self, user_id: int, body: dict[str, Any]) -> None:
        conns = self.subscribers.get(user_id)
        if not conns:
            return
        event = Push("staff.notice", body)
        for conn in list(conns):
            try:
                self.ref(conn).tell(event)
            except ActorError:
                conns.discard(conn)

    @handles(ListNotices)
    async def _list(self, message: ListNotices) -> NoticeList:
        return await self._notice_list(_user_id(message.principal), message.limit)

    @handles(MarkNoticeRead)
    async def _mark(self, message: MarkNoticeRead) -> int:
        return await self._read(_user_id(message.principal), message.notice_id)

    @handles(Inbound)
    async def _inbound(self, message: Inbound) -> dict[str, Any]:
        user_id = _user_id(message.principal)
        if message.type == "notices.subscribe":
            conns = self.subscribers.setdefault(user_id, set())
            if message.conn not in conns and len(conns) >= MAX_SUBSCRIPTIONS_PER_USER:
                raise Refusal(refusals.BUSY, "too many open pages subscribe to your notices")
            conns.add(message.conn)
            listing = await self._notice_list(user_id, notice_store.DEFAULT_LIMIT)
            return {"unread": listing.unread, "notices": list(listing.notices)}
        if message.type == "notices.read":
            return {"unread": await self._read(user_id, int(message.body["id"]))}
        raise Refusal(refusals.UNKNOWN_TYPE, f"the notice board does not handle {message.type}")

    @handles(ConnectionClosed)
    async def _closed(self, message: ConnectionClosed) -> None:
        for user_id, conns in list(self.subscribers.items()):
            conns.discard(message.conn)
            if not conns:
                del self.subscribers[user_id]

    async def _notice_list(self, user_id: int, limit: int) -> NoticeList:
        items = await notice_store.list_for(self.store, user_id, limit)
        unread = await notice_store.unread_count(self.store, user_id)
        return NoticeList(unread, tuple(notice_view(n) for n in items))

    async def _read(self, user_id: int, notice_id: int) -> int:
        if not 0 < notice_id < MAX_ROWID or not await notice_store.mark_read(
            self.store, user_id, notice_id
        ):
            raise Refusal(refusals.NOT_FOUND, "there is no such notice of yours")
        return await notice_store.unread_count(self.store, user_id)


def notify_quietly(actor: Actor, message: Notify) -> None:
    """Tell the board without waiting: a notice is never worth failing the sender's request."""
    with contextlib.suppress(ActorError):
        actor.ref(addresses.NOTICES).tell(message)
