"""``consult``: the Consult Now desk. Sends links, expires them on time, opens one once.

A provider of a waiting area sends a link (:class:`~actors.consult.messages.SendConsultLink`): the
desk checks the role, stores the link (``storage.consult``), arms its expiry timer
(``send_after``, :data:`LINK_LIFETIME`) and hands the message to the ``outbox`` (which records it,
and delivers it when a sender is configured) from a task of its own, so a slow SMTP server never
holds the desk's mailbox. The provider may extend a pending link (:data:`EXTENSION` each, at most
:data:`MAX_EXTENSIONS` times) or cancel it. When the timer is due the link is marked expired.

Opening (:class:`~actors.consult.messages.OpenConsultLink`) is storage's one conditional UPDATE:
exactly one of any number of simultaneous openings wins, and only the winner's transaction creates
the call's room and the opener's guest token. The desk then starts the call
(:class:`~actors.consult.call.ConsultCall` at ``room/<id>``, under the rooms supervisor), rings the
provider through the notice board (``Notify(..., ring=True)``) and pushes ``consult.opened`` to the
provider's pages that watch their links (``consult.watch``). Every send, opening, extension,
cancellation and expiry is audited.

All times come from one clock (``now``), the same one the timers run on in tests (virtual).

In a cluster every node runs a desk, and the provider's pages may watch through any node: the
desk that changes a link tells every other node's desk (:class:`LinkChanged`), which reads the
link again, pushes the change to its own watchers and arms (or disarms) its timer. So every live
node's desk has a timer for every pending link, and the expiry is still recorded and audited
once: storage's conditional UPDATE lets exactly one desk expire it (the others find it expired
and only disarm), and it expires even if the node it was sent through has died. The ring is the
notice board's, which reaches the provider's sockets on every node.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from actors import addresses, refusals
from actors.admin.outbox import SendLink
from actors.calls.media import MediaPort
from actors.consult.call import ANSWER_GRACE, ConsultCall, ConsultStart
from actors.consult.messages import (
    LINK_MARK,
    MINUTES_MARK,
    CancelConsultLink,
    CheckConsultLink,
    ConsultPass,
    DescribeLinkTimes,
    ExtendConsultLink,
    LinkChanged,
    LinkStatus,
    LinkTimes,
    LinkView,
    MyConsultLinks,
    OpenConsultLink,
    SendConsultLink,
)
from actors.every_node import tell_every_node
from actors.inbound import ConnectionClosed, Inbound, Push
from actors.messages import StartAgain
from actors.principal import AreaPlace, Principal, Role
from actors.staff.notices import Notify, notify_quietly
from runtime.errors import ActorError, Refusal
from runtime.kernel import Actor, Pending, Timer, handles
from runtime.supervisor import ChildSpec, Restart, Supervisor
from storage import areas as area_store
from storage import audit, consult, orgs
from storage import rooms as room_store
from storage.consult import ConsultLink, ConsultLinkRejected
from storage.db import Store
from storage.errors import NotFoundError
from storage.times import utcnow

log = logging.getLogger(__name__)

#: A link is valid this long from sending (seed 002: "within five minutes of receiving it").
LINK_LIFETIME = 300.0
#: Each extension moves the expiry this much later.
EXTENSION = 300.0
#: At most this many extensions: a link is open 5 + 3 x 5 = 20 minutes at the most.
MAX_EXTENSIONS = 3
#: How long the desk's delivery task waits for the outbox (its own SMTP timeout is 15 s).
OUTBOX_TIMEOUT = 30.0
#: Languages a link's message and pages may be in (``web.i18n.LOCALES``).
LANGUAGES = ("en", "uk")
MAX_LABEL = 80
MAX_SUBJECT = 200
MAX_RECIPIENT = 254
#: Most pages one provider watches their links from (tabs); bounds the desk's memory.
MAX_WATCHERS_PER_USER = 32
#: Secrets are url-safe base64 of 32 bytes (43 characters); anything longer is not ours.
MAX_SECRET = 128
#: Longest name an opener may give.
MAX_NAME = 80

_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}", re.ASCII)
_PHONE = re.compile(r"\+?[0-9]{7,15}", re.ASCII)
_PHONE_PUNCTUATION = re.compile(r"[\s().-]")
_SECRET = re.compile(r"[A-Za-z0-9_-]{1,128}", re.ASCII)

#: Why storage refused a link -> the refusal code pages branch on.
_REJECTED = {
    "used": refusals.LINK_USED,
    "cancelled": refusals.LINK_CANCELLED,
    "expired": refusals.LINK_EXPIRED,
    "opened": refusals.LINK_USED,
    "limit": refusals.EXTENSION_LIMIT,
}
_REJECTED_TEXT = {
    refusals.LINK_USED: "this link has been used already",
    refusals.LINK_CANCELLED: "this link has been cancelled",
    refusals.LINK_EXPIRED: "this link has expired",
    refusals.EXTENSION_LIMIT: f"a link can be extended {MAX_EXTENSIONS} times",
}


@dataclass(frozen=True, slots=True)
class LinkDue:
    """Told to the desk by a link's timer when its time is up (never once cancelled)."""

    link_id: str


@dataclass(frozen=True, slots=True)
class Delivered:
    """Told to the desk by its delivery task: the outbox took the message (or refused it)."""

    pending: Pending[object]
    link_id: str
    refusal: Refusal | None


@dataclass(frozen=True, slots=True)
class _Area:
    place: AreaPlace
    name: str


def _rejected(error: ConsultLinkRejected) -> Refusal:
    code = _REJECTED.get(error.reason)
    if code is None:
        return Refusal(refusals.INVALID_TOKEN, "this link is not valid")
    return Refusal(code, _REJECTED_TEXT[code])


def _user_id(principal: Principal) -> int:
    uid = principal.user_id
    if not principal.is_staff or uid is None or not uid.isdigit():
        raise Refusal(refusals.FORBIDDEN, "only signed-in providers send Consult Now links")
    return int(uid)


def clean_recipient(channel: str, recipient: str) -> tuple[str, str]:
    """The address to send to and the masked hint the provider's list shows; refuse
    ``invalid`` for anything that is not an email address or a phone number."""
    text = recipient.strip()
    if channel == "email":
        if len(text) > MAX_RECIPIENT or _EMAIL.fullmatch(text) is None:
            raise Refusal(refusals.INVALID, "enter a valid email address")
        local, _, domain = text.rpartition("@")
        return text, f"{local[0]}•••@{domain}"
    if channel == "sms":
        number = _PHONE_PUNCTUATION.sub("", text)
        if _PHONE.fullmatch(number) is None:
            raise Refusal(refusals.INVALID, "enter a valid mobile number")
        return number, f"•••{number[-3:]}"
    raise Refusal(refusals.INVALID, "send by email or by text message")


class ConsultDesk(Actor):
    """See the module docstring. ``calls`` is the supervisor the calls run under."""

    def __init__(
        self,
        store: Store,
        calls: Supervisor,
        media: MediaPort | None = None,
        *,
        now: Callable[[], datetime] = utcnow,
        lifetime: float = LINK_LIFETIME,
        extension: float = EXTENSION,
        max_extensions: int = MAX_EXTENSIONS,
        answer_grace: float = ANSWER_GRACE,
    ) -> None:
        super().__init__()
        self.store = store
        self.calls = calls
        self.media = media
        self.now = now
        self.lifetime = timedelta(seconds=lifetime)
        self.extension = timedelta(seconds=extension)
        self.max_extensions = max_extensions
        self.answer_grace = answer_grace
        #: Pending links by id, and each one's expiry timer.
        self.links: dict[str, ConsultLink] = {}
        self.timers: dict[str, Timer] = {}
        #: Staff user id -> the connections watching their links (``consult.watch``).
        self.watchers: dict[int, set[str]] = {}
        self._areas: dict[int, _Area] = {}

    # -- lifecycle --------------------------------------------------------------------------------
    async def on_start(self) -> None:
        """After a restart: re-arm every pending link (one already due expires at once) and
        start the calls still open."""
        for link in await consult.list_pending(self.store):
            self._arm(link)
        for room in await room_store.list_open_rooms(self.store, kind="consult_now"):
            await self._start_call(room.id, None)

    def _arm(self, link: ConsultLink) -> None:
        old = self.timers.pop(link.id, None)
        if old is not None:
            old.cancel()
        self.links[link.id] = link
        delay = max((link.expires_at - self.now()).total_seconds(), 0.0)
        self.timers[link.id] = self.send_after(delay, LinkDue(link.id))

    def _disarm(self, link_id: str) -> None:
        self.links.pop(link_id, None)
        timer = self.timers.pop(link_id, None)
        if timer is not None:
            timer.cancel()

    # -- areas and views --------------------------------------------------------------------------
    async def _area(self, area_id: int) -> _Area:
        known = self._areas.get(area_id)
        if known is None:
            try:
                area = await area_store.get_area(self.store, area_id)
                unit = await orgs.get_unit(self.store, area.unit_id)
            except NotFoundError:
                raise Refusal(refusals.NOT_FOUND, "no such waiting area") from None
            known = _Area(AreaPlace(str(area.id), str(unit.id), str(unit.org_id)), area.name)
            self._areas[area_id] = known
        return known

    async def _provider_area(self, principal: Principal, area_id: int) -> _Area:
        """The area, if ``principal`` is a provider there. Another organisation's area answers
        exactly like a missing one."""
        area = await self._area(area_id)
        if principal.org_id != area.place.org_id:
            raise Refusal(refusals.NOT_FOUND, "no such waiting area")
        if not principal.has_role(Role.PROVIDER, area.place):
            raise Refusal(refusals.FORBIDDEN, f"you are not a provider in {area.name}")
        return area

    async def view(self, link: ConsultLink) -> LinkView:
        area = await self._area(link.area_id)
        left = (link.expires_at - self.now()).total_seconds() if link.state == "pending" else 0
        return LinkView(
            id=link.id,
            area_id=link.area_id,
            area_name=area.name,
            channel=link.channel,
            recipient_hint=link.recipient_hint,
            label=link.label,
            state=link.state,
            seconds_left=max(left, 0.0),
            extensions=link.extensions,
            extensions_left=max(self.max_extensions - link.extensions, 0),
            extension_seconds=self.extension.total_seconds(),
            room_id=link.room_id,
        )

    async def _own(self, principal: Principal, link_id: str) -> ConsultLink:
        """One of the principal's own links; anyone else's answers like a missing one."""
        user_id = _user_id(principal)
        try:
            link = self.links.get(link_id) or await consult.get_link(self.store, link_id)
        except NotFoundError:
            link = None
        if link is None or link.provider_user_id != user_id:
            raise Refusal(refusals.NOT_FOUND, "no such Consult Now link of yours")
        return link

    async def _tell_watchers(self, link: ConsultLink, kind: str = "consult.link") -> None:
        """Push the change to this node's watchers and tell the other nodes' desks."""
        tell_every_node(self, addresses.CONSULT, LinkChanged(link.id, kind))
        await self._push_watchers(link, kind)

    async def _push_watchers(self, link: ConsultLink, kind: str) -> None:
        conns = self.watchers.get(link.provider_user_id)
        if not conns:
            return
        event = Push(kind, (await self.view(link)).wire())
        for conn in list(conns):
            try:
                self.ref(conn).tell(event)
            except ActorError:
                conns.discard(conn)

    # -- sending ----------------------------------------------------------------------------------
    @handles(SendConsultLink)
    async def _send(self, msg: SendConsultLink) -> None:
        user_id = _user_id(msg.principal)
        await self._provider_area(msg.principal, msg.area_id)
        address, hint = clean_recipient(msg.channel, msg.recipient)
        if LINK_MARK not in msg.body or len(msg.subject) > MAX_SUBJECT:
            raise Refusal(refusals.INVALID, "the message must carry the link")
        lang = msg.lang if msg.lang in LANGUAGES else LANGUAGES[0]
        issued = await consult.create_link(
            self.store,
            area_id=msg.area_id,
            provider_user_id=user_id,
            channel=msg.channel,
            lifetime=self.lifetime,
            now=self.now(),
            recipient_hint=hint,
            label=msg.label.strip()[:MAX_LABEL],
            lang=lang,
        )
        link = issued.link
        await audit.append(
            self.store,
            audit.CONSULT_STARTED,
            actor_user_id=user_id,
            area_id=msg.area_id,
            subject=f"consult:{link.id}",
            remote_addr=msg.remote_addr,
            details={"channel": msg.channel, "valid_seconds": self.lifetime.total_seconds()},
        )
        self._arm(link)
        url = f"{msg.base_url.rstrip('/')}/c/{issued.raw}"
        outgoing = SendLink(
            msg.principal,
            msg.area_id,
            msg.channel,
            address,
            msg.subject,
            msg.body.replace(MINUTES_MARK, f"{self.lifetime.total_seconds() / 60:g}").replace(
                LINK_MARK, url
            ),
            msg.remote_addr,
        )
        self.spawn(self._deliver, self.defer_reply(), link.id, outgoing)

    async def _deliver(self, pending: Pending[object], link_id: str, outgoing: SendLink) -> None:
        """In a task of the desk: the outbox records (and maybe sends) the message."""
        refusal: Refusal | None = None
        try:
            await self.ref(addresses.OUTBOX).ask(outgoing, timeout=OUTBOX_TIMEOUT)
        except Refusal as refused:
            refusal = refused
        except ActorError as error:
            refusal = Refusal(refusals.UNAVAILABLE, f"the outbox did not take the message: {error}")
        with contextlib.suppress(ActorError):
            self.self_ref.tell(Delivered(pending, link_id, refusal))

    @handles(Delivered)
    async def _delivered(self, outcome: Delivered) -> None:
        link = self.links.get(outcome.link_id)
        if outcome.refusal is None:
            if link is None:  # opened or gone already while the outbox worked
                link = await consult.get_link(self.store, outcome.link_id)
            else:
                await self._tell_watchers(link)
            outcome.pending.reply(await self.view(link))
            return
        # Nobody received a link: it must not stay open for whoever guesses it.
        if link is not None:
            self._disarm(link.id)
            with contextlib.suppress(ConsultLinkRejected):
                await consult.cancel_link(self.store, link.id, now=self.now())
        outcome.pending.refuse(outcome.refusal)

    # -- the provider's changes -------------------------------------------------------------------
    @handles(ExtendConsultLink)
    async def _extend(self, msg: ExtendConsultLink) -> LinkView:
        link = await self._own(msg.principal, msg.link_id)
        try:
            link = await consult.extend_link(
                self.store,
                link.id,
                by=self.extension,
                max_extensions=self.max_extensions,
                now=self.now(),
            )
        except ConsultLinkRejected as error:
            raise _rejected(error) from None
        self._arm(link)
        await audit.append(
            self.store,
            audit.CONSULT_EXTENDED,
            actor_user_id=link.provider_user_id,
            area_id=link.area_id,
            subject=f"consult:{link.id}",
            remote_addr=msg.remote_addr,
            details={"extensions": link.extensions},
        )
        await self._tell_watchers(link)
        return await self.view(link)

    @handles(CancelConsultLink)
    async def _cancel(self, msg: CancelConsultLink) -> LinkView:
        link = await self._own(msg.principal, msg.link_id)
        try:
            link = await consult.cancel_link(self.store, link.id, now=self.now())
        except ConsultLinkRejected as error:
            raise _rejected(error) from None
        self._disarm(link.id)
        await audit.append(
            self.store,
            audit.CONSULT_CANCELLED,
            actor_user_id=link.provider_user_id,
            area_id=link.area_id,
            subject=f"consult:{link.id}",
            remote_addr=msg.remote_addr,
        )
        await self._tell_watchers(link)
        return await self.view(link)

    @handles(DescribeLinkTimes)
    async def _times(self, msg: DescribeLinkTimes) -> LinkTimes:
        return LinkTimes(
            self.lifetime.total_seconds(), self.extension.total_seconds(), self.max_extensions
        )

    @handles(MyConsultLinks)
    async def _mine(self, msg: MyConsultLinks) -> tuple[LinkView, ...]:
        user_id = _user_id(msg.principal)
        # From the store, not ``self.links``: a link sent through another node is listed too.
        pending = await consult.list_pending(self.store, provider_user_id=user_id)
        mine = sorted(pending, key=lambda link: (link.expires_at, link.id))
        return tuple([await self.view(link) for link in mine])

    @handles(LinkDue)
    async def _due(self, msg: LinkDue) -> None:
        self.timers.pop(msg.link_id, None)
        link = self.links.get(msg.link_id)
        if link is None:
            return
        try:
            link = await consult.expire_link(self.store, link.id, now=self.now())
        except ConsultLinkRejected as error:
            if error.reason == "pending":  # extended meanwhile, or the clocks differ: not yet
                self._arm(await consult.get_link(self.store, link.id))
            else:
                self._disarm(link.id)
            return
        self._disarm(link.id)
        await audit.append(
            self.store,
            audit.CONSULT_EXPIRED,
            actor_kind="system",
            area_id=link.area_id,
            subject=f"consult:{link.id}",
        )
        await self._tell_watchers(link)

    @handles(LinkChanged)
    async def _changed_elsewhere(self, msg: LinkChanged) -> None:
        try:
            link = await consult.get_link(self.store, msg.link_id)
        except NotFoundError:
            self._disarm(msg.link_id)
            return
        if link.state == "pending":
            self._arm(link)
        else:
            self._disarm(link.id)
        await self._push_watchers(link, msg.event)

    # -- the recipient ----------------------------------------------------------------------------
    @handles(CheckConsultLink)
    async def _check(self, msg: CheckConsultLink) -> LinkStatus:
        if _SECRET.fullmatch(msg.secret) is None:
            return LinkStatus("unknown")
        try:
            link = await consult.check_link(self.store, msg.secret, now=self.now())
        except ConsultLinkRejected as error:
            return LinkStatus(error.reason, error.lang)
        return LinkStatus("pending", link.lang)

    @handles(OpenConsultLink)
    async def _open(self, msg: OpenConsultLink) -> ConsultPass:
        if _SECRET.fullmatch(msg.secret) is None:
            raise Refusal(refusals.INVALID_TOKEN, "this link is not valid")
        name = msg.name.strip()[:MAX_NAME]
        try:
            opened = await consult.redeem_link(
                self.store, msg.secret, guest_name=name or "Guest", now=self.now()
            )
        except ConsultLinkRejected as error:
            raise _rejected(error) from None
        link = opened.link
        self._disarm(link.id)
        area = await self._area(link.area_id)
        await audit.append(
            self.store,
            audit.CONSULT_OPENED,
            actor_kind="guest",
            area_id=link.area_id,
            subject=f"consult:{link.id}",
            remote_addr=msg.remote_addr,
        )
        await self._start_call(opened.room.id, ConsultStart(link, area.name))
        who = name or link.label or link.recipient_hint
        notify_quietly(
            self,
            Notify(
                int(area.place.org_id),
                link.provider_user_id,
                "consult.opened",
                f"{who} opened your Consult Now link: answer the call",
                f"/consult/call/{opened.room.id}",
                True,
            ),
        )
        await self._tell_watchers(link, "consult.opened")
        return ConsultPass(f"{opened.room.id}.{opened.guest_secret}", opened.room.id, area.name)

    @handles(StartAgain)
    async def _start_again(self, msg: StartAgain) -> None:
        """A Consult Now call whose node died: start it again (here, or learn who claimed it),
        restored from the store as after a restart (``ConsultNowPolicy.restore``: in call, its
        call record kept). A room that is not a Consult Now call, or that has closed, starts
        nothing."""
        try:
            room = await room_store.get_room(self.store, msg.room_id)
        except NotFoundError:
            raise Refusal(refusals.NOT_FOUND, "there is no such Consult Now call") from None
        if room.kind != "consult_now":
            raise Refusal(refusals.NOT_FOUND, "there is no such Consult Now call")
        if room.state != "open":
            raise Refusal(refusals.CLOSED, "this call has ended")
        await self._start_call(room.id, None)

    async def _start_call(self, room_id: str, start: ConsultStart | None) -> None:
        address = addresses.room(room_id)
        if address in self.registry:
            return
        first = [start] if start is not None else []  # a restart reads storage

        def new_call() -> ConsultCall:
            return ConsultCall(
                self.store,
                room_id,
                self.media,
                self.answer_grace,
                first.pop() if first else None,
            )

        await self.calls.start_child(ChildSpec(address, new_call, Restart.TRANSIENT))

    # -- the provider's pages ---------------------------------------------------------------------
    @handles(Inbound)
    async def _inbound(self, msg: Inbound) -> dict[str, Any]:
        user_id = _user_id(msg.principal)
        if msg.type == "consult.watch":
            conns = self.watchers.setdefault(user_id, set())
            if msg.conn not in conns and len(conns) >= MAX_WATCHERS_PER_USER:
                raise Refusal(refusals.BUSY, "too many open pages watch your links")
            conns.add(msg.conn)
            return {
                "links": [view.wire() for view in await self._mine(MyConsultLinks(msg.principal))]
            }
        if msg.type == "consult.unwatch":
            self._unwatch(msg.conn)
            return {}
        raise Refusal(refusals.UNKNOWN_TYPE, f"the Consult Now desk does not handle {msg.type}")

    @handles(ConnectionClosed)
    async def _closed(self, msg: ConnectionClosed) -> None:
        self._unwatch(msg.conn)

    def _unwatch(self, conn: str) -> None:
        for user_id, conns in list(self.watchers.items()):
            conns.discard(conn)
            if not conns:
                del self.watchers[user_id]
