"""The Directory actor: server-side web sessions, CSRF tokens, who may see what.

One actor at :data:`DIRECTORY_ADDRESS` owns these questions so every front door (web pages, the
websocket gateway) gets the same answer. It keeps no state of its own: sessions live in the
database, so a restarted Directory (or a restarted server) keeps every staff member signed in.
Checking passwords is the sign-in desk's job (:mod:`actors.staff.signin`): an argon2 verify takes tens
of milliseconds on purpose, and every page load and websocket ``hello`` asks the Directory, so
a burst of sign-ins must not queue in front of them.

Expected "no"s are :class:`~runtime.errors.Refusal` replies with stable codes:
``unauthenticated`` (unknown, expired or revoked session) and ``bad_csrf``.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass

from actors import addresses, refusals
from actors.principal import Grant, Principal, Role, Scope
from runtime.errors import Refusal
from runtime.kernel import Actor, handles
from storage import audit, health, sessions, staff, staff_views
from storage.db import Store

log = logging.getLogger(__name__)

#: Kept importable; the address lives in ``actors.addresses``.
DIRECTORY_ADDRESS = addresses.DIRECTORY

#: Longest username or password the Directory will even look at: argon2 would hash a megabyte
#: happily, and an attacker would happily send one.
MAX_CREDENTIAL_LENGTH = 1024


# -- messages ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionInfo:
    """A new session: ``session_id`` goes into the cookie, ``csrf_token`` into every form."""

    session_id: str
    csrf_token: str
    principal: Principal


@dataclass(frozen=True)
class ResolveSession:
    """Who holds this session id: reply the staff :class:`Principal` or refuse ``unauthenticated``."""

    session_id: str


@dataclass(frozen=True)
class SessionView:
    """The principal of a session together with its CSRF token, for rendering forms."""

    principal: Principal
    csrf_token: str


@dataclass(frozen=True)
class DescribeSession:
    """Like :class:`ResolveSession` but replies a :class:`SessionView` (principal + CSRF token)."""

    session_id: str


@dataclass(frozen=True)
class SignOut:
    """End a session; replies ``None`` whether or not it was still valid (signing out twice is fine)."""

    session_id: str
    remote_addr: str = ""


@dataclass(frozen=True)
class CheckCsrf:
    """Reply ``None`` if ``token`` is the CSRF token of this live session, else refuse ``bad_csrf``."""

    session_id: str
    token: str


@dataclass(frozen=True)
class AreaSummary:
    """A waiting area as the provider home page lists it."""

    area_id: str
    name: str
    slug: str
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

    def __init__(self, store: Store) -> None:
        super().__init__()
        self.store = store

    @handles(ResolveSession)
    async def _resolve(self, message: ResolveSession) -> Principal:
        return (await self._session(message.session_id)).principal

    @handles(DescribeSession)
    async def _describe(self, message: DescribeSession) -> SessionView:
        return await self._session(message.session_id)

    @handles(SignOut)
    async def _on_sign_out(self, message: SignOut) -> None:
        await self._sign_out(message)

    @handles(CheckCsrf)
    async def _check_csrf(self, message: CheckCsrf) -> None:
        view = await self._session(message.session_id, refusal=refusals.BAD_CSRF)
        if not hmac.compare_digest(view.csrf_token.encode(), message.token.encode()):
            raise Refusal(refusals.BAD_CSRF, "the form's security token does not match")

    @handles(ListMyAreas)
    async def _my_areas(self, message: ListMyAreas) -> tuple[AreaSummary, ...]:
        return await self._areas(message.principal)

    @handles(ProbeStorage)
    async def _probe(self, message: ProbeStorage) -> object:
        return await health.probe(self.store)

    async def _session(
        self, session_id: str, refusal: str = refusals.UNAUTHENTICATED
    ) -> SessionView:
        if not session_id or len(session_id) > MAX_CREDENTIAL_LENGTH:
            raise Refusal(refusal, "no session")
        session = await sessions.get_valid_session(self.store, session_id)
        if session is None:
            raise Refusal(refusal, "the session is unknown, expired or signed out")
        user = await staff.get_user(self.store, session.user_id)
        return SessionView(
            await principal_of(self.store, user.id, user.display_name), session.csrf_token
        )

    async def _sign_out(self, msg: SignOut) -> None:
        session = None
        if msg.session_id and len(msg.session_id) <= MAX_CREDENTIAL_LENGTH:
            session = await sessions.get_valid_session(self.store, msg.session_id)
        if session is None:
            return
        await sessions.revoke_session(self.store, msg.session_id)
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
