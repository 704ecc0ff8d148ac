"""The Directory actor: server-side web sessions, CSRF tokens, who may see what.

One actor at :data:`DIRECTORY_ADDRESS` owns these questions so every front door (web pages, the
websocket gateway) gets the same answer. It keeps no state of its own: sessions live in the
database, so a restarted Directory (or a restarted server) keeps every staff member signed in.
Checking passwords is the sign-in desk's job (:mod:`actors.staff.signin`): an argon2 verify takes tens
of milliseconds on purpose, and every page load and websocket ``hello`` asks the Directory, so
a burst of sign-ins must not queue in front of them.

Expected "no"s are :class:`~runtime.errors.Refusal` replies with stable codes:
``unauthenticated`` (unknown, expired or revoked session) and ``bad_csrf``.

A staff websocket must not keep the rights of its ``hello`` for ever (issue 15), so the Directory
also knows which open connections live on which session: the gateway tells it
:class:`~actors.messages.StaffConnected` at hello, :class:`~actors.messages.StaffActive` while the
socket is used and :class:`~actors.messages.StaffDisconnected` at close. That map is the only state
in memory, and it heals itself: every socket says ``StaffConnected`` again once a minute (with its
heartbeat; that is not use), so a restarted Directory knows them all again within a minute. A session that ends (sign-out, expiry, the idle timeout, deactivation) closes its
sockets with :data:`CLOSE_SESSION_ENDED`: at once for a sign-out or a ``GrantsChanged``, within
:data:`RECHECK_INTERVAL` for the clock's limits. After ``GrantsChanged`` a socket whose user gained
rights gets its new principal (:class:`~actors.messages.PrincipalChanged`); one that lost any is
closed with :data:`CLOSE_RIGHTS_CHANGED`, so nothing it subscribed to with the old rights lingers
and the client reconnects with what the Directory holds now.

In a cluster every node runs a Directory and knows the sockets of its own node only, so the one
that hears a sign-out or a ``GrantsChanged`` also tells every other node's
(:class:`SignedOutElsewhere`, :class:`GrantsChangedElsewhere`): a staff member's sockets on any
node are closed (or get their new principal) at once, not at the next recheck or never.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

import trio

from actors import addresses, refusals
from actors.every_node import tell_every_node
from actors.inbound import CloseConnection
from actors.messages import (
    GrantsChanged,
    PrincipalChanged,
    StaffActive,
    StaffConnected,
    StaffDisconnected,
)
from actors.principal import Grant, Principal, Role, Scope
from runtime.errors import ActorError, Refusal
from runtime.kernel import Actor, handles
from storage import audit, health, sessions, staff, staff_views
from storage.db import Store
from storage.times import utcnow

log = logging.getLogger(__name__)

#: Kept importable; the address lives in ``actors.addresses``.
DIRECTORY_ADDRESS = addresses.DIRECTORY

#: Longest username or password the Directory will even look at: argon2 would hash a megabyte
#: happily, and an attacker would happily send one.
MAX_CREDENTIAL_LENGTH = 1024
#: Session look-ups (page loads, ``hello``, CSRF checks, area lists) answered at once, each in its
#: own task: they only read the database, so a burst of 100 staff opening dashboards is not
#: served one after another behind this mailbox (issue 17). The store batches what they ask.
MAX_CONCURRENT_LOOKUPS = 64

#: Websocket close code (docs/protocol.md): the session ended (signed out, expired, idle, the user
#: deactivated). Reconnecting cannot help until someone signs in again.
CLOSE_SESSION_ENDED = 4003
#: Websocket close code: the user lost a role. Reconnect and ``hello``: the new socket gets the
#: rights held now, and watches made with the old ones are gone.
CLOSE_RIGHTS_CHANGED = 4004
#: How often the sessions of open staff sockets are checked against the clock (expiry, idle): the
#: most a socket outlives its session's time limits by. One query for all of them.
RECHECK_INTERVAL = 15.0


# -- messages ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionInfo:
    """A new session: ``session_id`` goes into the cookie, ``csrf_token`` into every form."""

    session_id: str = field(repr=False)
    csrf_token: str = field(repr=False)
    principal: Principal


@dataclass(frozen=True)
class ResolveSession:
    """Who holds this session id: reply the staff :class:`Principal` or refuse ``unauthenticated``."""

    session_id: str = field(repr=False)


@dataclass(frozen=True)
class SessionView:
    """The principal of a session together with its CSRF token, for rendering forms."""

    principal: Principal
    csrf_token: str = field(repr=False)


@dataclass(frozen=True)
class DescribeSession:
    """Like :class:`ResolveSession` but replies a :class:`SessionView` (principal + CSRF token)."""

    session_id: str = field(repr=False)


@dataclass(frozen=True)
class SignOut:
    """End a session; replies ``None`` whether or not it was still valid (signing out twice is fine)."""

    session_id: str = field(repr=False)
    remote_addr: str = ""


@dataclass(frozen=True)
class CheckCsrf:
    """Reply ``None`` if ``token`` is the CSRF token of this live session, else refuse ``bad_csrf``."""

    session_id: str = field(repr=False)
    token: str = field(repr=False)


@dataclass(frozen=True)
class AreaSummary:
    """A waiting area as the provider home page lists it."""

    area_id: str
    name: str
    slug: str = field(repr=False)
    unit_id: str
    unit_name: str
    kind: str
    active: bool


@dataclass(frozen=True)
class ListMyAreas:
    """The waiting areas a staff member holds a grant for; replies ``tuple[AreaSummary, ...]``."""

    principal: Principal


@dataclass(frozen=True)
class ProbeStorage:
    """Health check: reply the database schema version after one real read."""


@dataclass(frozen=True)
class SignedOutElsewhere:
    """Another node's Directory ended the session with this hash: close its sockets here."""

    session_hash: str = field(repr=False)


@dataclass(frozen=True)
class GrantsChangedElsewhere:
    """Another node's Directory was told ``GrantsChanged``: the same for this node's sockets."""

    user_id: int


@dataclass(frozen=True)
class _Recheck:
    """The Directory's own timer: check the sessions of open sockets against the clock."""


@dataclass
class _Watched:
    """An open staff connection as the Directory knows it."""

    session_hash: str = field(repr=False)
    user_id: int
    principal: Principal


# -- the actor ----------------------------------------------------------------------------------


async def principal_of(store: Store, user_id: int, display_name: str) -> Principal:
    """The staff principal of a user: their grants and organisation, read fresh from storage."""
    grants = await staff.list_grants(store, user_id)
    orgs = await staff_views.orgs_of_user(store, user_id)
    return Principal(
        kind="staff",
        display_name=display_name,
        user_id=str(user_id),
        org_id=str(orgs[0]) if orgs else None,
        grants=frozenset(Grant(Role(g.role), Scope(g.scope_type), str(g.scope_id)) for g in grants),
    )


class Directory(Actor):
    """Owns staff sign-in and sessions; see the module docstring."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], datetime] = utcnow,
        ttl: timedelta = sessions.DEFAULT_SESSION_TTL,
        idle_timeout: timedelta = sessions.DEFAULT_IDLE_TIMEOUT,
        recheck_interval: float = RECHECK_INTERVAL,
    ) -> None:
        super().__init__()
        self.store = store
        self.clock = clock
        self.ttl = ttl
        self.session_idle = idle_timeout
        self.recheck_interval = recheck_interval
        #: conn address -> what it lives on; see the module docstring.
        self._conns: dict[str, _Watched] = {}
        self._lookups = trio.CapacityLimiter(MAX_CONCURRENT_LOOKUPS)

    async def on_start(self) -> None:
        self.send_after(self.recheck_interval, _Recheck())

    @handles(ResolveSession)
    async def _resolve(self, message: ResolveSession) -> None:
        self._answer_aside(partial(self._principal_of_session, message.session_id))

    @handles(DescribeSession)
    async def _describe(self, message: DescribeSession) -> None:
        self._answer_aside(partial(self._session, message.session_id))

    @handles(SignOut)
    async def _on_sign_out(self, message: SignOut) -> None:
        await self._sign_out(message)

    @handles(CheckCsrf)
    async def _check_csrf(self, message: CheckCsrf) -> None:
        self._answer_aside(partial(self._csrf, message))

    @handles(ListMyAreas)
    async def _my_areas(self, message: ListMyAreas) -> None:
        self._answer_aside(partial(self._areas, message.principal))

    def _answer_aside(self, work: Callable[[], Awaitable[object]]) -> None:
        """Answer this ask from a task of its own, so the next message is handled meanwhile.

        Only for work that reads storage and touches no actor state. A Refusal reaches the asker;
        anything else crashes the Directory as it would have in the handler."""
        pending = self.defer_reply()

        async def answer() -> None:
            async with self._lookups:
                try:
                    value = await work()
                except Refusal as refusal:
                    pending.refuse(refusal)
                    return
            pending.reply(value)

        self.spawn(answer)

    @handles(ProbeStorage)
    async def _probe(self, message: ProbeStorage) -> object:
        return await health.probe(self.store)

    # -- open staff connections -----------------------------------------------------------------

    @handles(StaffConnected)
    async def _on_connected(self, message: StaffConnected) -> None:
        await self._watch(message.conn, message.session_id, message.principal, touch=False)

    @handles(StaffActive)
    async def _on_active(self, message: StaffActive) -> None:
        await self._watch(message.conn, message.session_id, message.principal, touch=True)

    @handles(StaffDisconnected)
    async def _on_disconnected(self, message: StaffDisconnected) -> None:
        self._conns.pop(message.conn, None)

    @handles(GrantsChanged)
    async def _on_grants_changed(self, message: GrantsChanged) -> None:
        try:
            user_id = int(message.user_id)
        except ValueError:
            raise Refusal(refusals.BAD_FIELD, "user_id must be a number") from None
        tell_every_node(self, addresses.DIRECTORY, GrantsChangedElsewhere(user_id))
        await self._grants_changed(user_id)

    @handles(GrantsChangedElsewhere)
    async def _on_grants_changed_elsewhere(self, message: GrantsChangedElsewhere) -> None:
        await self._grants_changed(message.user_id)

    @handles(SignedOutElsewhere)
    async def _on_signed_out_elsewhere(self, message: SignedOutElsewhere) -> None:
        self._close_session(message.session_hash, "signed out")

    async def _grants_changed(self, user_id: int) -> None:
        watched = {c: w for c, w in self._conns.items() if w.user_id == user_id}
        if not watched:
            return
        valid = await sessions.valid_session_hashes(
            self.store, sorted({w.session_hash for w in watched.values()}), now=self.clock()
        )
        current: Principal | None = None
        for conn, w in watched.items():
            if w.session_hash not in valid:
                self._close(conn, CLOSE_SESSION_ENDED, "session ended")
                continue
            if current is None:
                current = await self._principal(user_id)
            if not w.principal.grants <= current.grants:
                self._close(conn, CLOSE_RIGHTS_CHANGED, "rights changed")
            elif current != w.principal:
                w.principal = current
                self._tell(conn, PrincipalChanged(current))

    @handles(_Recheck)
    async def _on_recheck(self, message: _Recheck) -> None:
        try:
            hashes = sorted({w.session_hash for w in self._conns.values()})
            valid = await sessions.valid_session_hashes(self.store, hashes, now=self.clock())
            for conn, w in list(self._conns.items()):
                if w.session_hash not in valid:
                    self._close(conn, CLOSE_SESSION_ENDED, "session ended")
        finally:
            self.send_after(self.recheck_interval, _Recheck())

    async def _watch(
        self, conn: str, session_id: str, principal: Principal, *, touch: bool
    ) -> None:
        """Register (or refresh) a connection on its session; close it if the session is over.

        ``principal`` is the one the connection holds (from its hello, or pushed since): what a
        later ``GrantsChanged`` compares with the rights held now."""
        session = None
        if session_id and len(session_id) <= MAX_CREDENTIAL_LENGTH:
            session = (
                await self._touch(session_id)
                if touch
                else await sessions.get_valid_session(self.store, session_id, now=self.clock())
            )
        if session is None:
            self._close(conn, CLOSE_SESSION_ENDED, "session ended")
            return
        self._conns[conn] = _Watched(session.id_hash, session.user_id, principal)

    def _close_session(self, session_hash: str, reason: str) -> None:
        for conn, w in list(self._conns.items()):
            if w.session_hash == session_hash:
                self._close(conn, CLOSE_SESSION_ENDED, reason)

    def _close(self, conn: str, code: int, reason: str) -> None:
        self._conns.pop(conn, None)
        self._tell(conn, CloseConnection(code, reason))

    def _tell(self, conn: str, message: object) -> None:
        # A connection that is gone (or too far behind) closes or has closed anyway.
        with contextlib.suppress(ActorError):
            self.ref(conn).tell(message)

    async def _principal(self, user_id: int) -> Principal:
        user = await staff.get_user(self.store, user_id)
        return await principal_of(self.store, user.id, user.display_name)

    async def _touch(self, session_id: str) -> sessions.WebSession | None:
        return await sessions.touch_session(
            self.store, session_id, ttl=self.ttl, idle=self.session_idle, now=self.clock()
        )

    async def _principal_of_session(self, session_id: str) -> Principal:
        return (await self._session(session_id)).principal

    async def _csrf(self, message: CheckCsrf) -> None:
        view = await self._session(message.session_id, refusal=refusals.BAD_CSRF)
        if not hmac.compare_digest(view.csrf_token.encode(), message.token.encode()):
            raise Refusal(refusals.BAD_CSRF, "the form's security token does not match")

    async def _session(
        self, session_id: str, refusal: str = refusals.UNAUTHENTICATED
    ) -> SessionView:
        if not session_id or len(session_id) > MAX_CREDENTIAL_LENGTH:
            raise Refusal(refusal, "no session")
        # A page request or a hello is use: the idle deadline moves on.
        session = await self._touch(session_id)
        if session is None:
            raise Refusal(refusal, "the session is unknown, expired or signed out")
        user = await staff.get_user(self.store, session.user_id)
        return SessionView(
            await principal_of(self.store, user.id, user.display_name), session.csrf_token
        )

    async def _sign_out(self, msg: SignOut) -> None:
        session = None
        if msg.session_id and len(msg.session_id) <= MAX_CREDENTIAL_LENGTH:
            session = await sessions.get_valid_session(self.store, msg.session_id, now=self.clock())
        if session is None:
            return
        await sessions.revoke_session(self.store, msg.session_id, now=self.clock())
        self._close_session(session.id_hash, "signed out")
        tell_every_node(self, addresses.DIRECTORY, SignedOutElsewhere(session.id_hash))
        await audit.append(
            self.store, audit.SIGN_OUT, actor_user_id=session.user_id, remote_addr=msg.remote_addr
        )

    async def _areas(self, principal: Principal) -> tuple[AreaSummary, ...]:
        if not principal.is_staff or principal.user_id is None:
            raise Refusal(refusals.FORBIDDEN, "only staff have waiting areas")
        listings = await staff_views.areas_for(self.store, int(principal.user_id))
        return tuple(
            AreaSummary(
                str(a.area_id), a.name, a.slug, str(a.unit_id), a.unit_name, a.kind, a.active
            )
            for a in listings
        )
