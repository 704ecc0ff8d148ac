"""The Directory actor: staff sign-in, server-side web sessions, CSRF tokens, who may see what.

One actor at :data:`DIRECTORY_ADDRESS` owns these questions so every front door (web pages, the
websocket gateway) gets the same answer. It keeps no state of its own: sessions live in the
database, so a restarted Directory (or a restarted server) keeps every staff member signed in.

Expected "no"s are :class:`~actors.errors.Refusal` replies with stable codes:
``bad_credentials`` (wrong user, wrong password or disabled account: deliberately one code, so a
sign-in form cannot be used to find out which usernames exist), ``too_many_attempts`` (this
address failed too often lately; :mod:`actors.throttle`, the only state kept in memory),
``unauthenticated`` (unknown, expired or revoked session) and ``bad_csrf``.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass

from actors.errors import Refusal
from actors.kernel import Actor
from actors.passwords import Passwords
from actors.principal import Grant, Principal, Role, Scope
from actors.throttle import FailureThrottle
from storage import audit, health, sessions, staff, staff_views
from storage.db import Store

log = logging.getLogger(__name__)

DIRECTORY_ADDRESS = "directory"

#: Longest username or password the Directory will even look at: argon2 would hash a megabyte
#: happily, and an attacker would happily send one.
MAX_CREDENTIAL_LENGTH = 1024
#: How much of a username typed at a failed sign-in the audit log keeps: enough to recognise an
#: attack on one account, not a pasted essay (or a password typed into the wrong field in full).
AUDIT_USERNAME_CHARS = 64


# -- messages ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignIn:
    """Check a username (or email) and password; reply :class:`SessionInfo` with a fresh session."""

    username: str
    password: str
    remote_addr: str = ""


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


class Directory(Actor):
    """Owns staff sign-in and sessions; see the module docstring."""

    def __init__(
        self,
        store: Store,
        passwords: Passwords | None = None,
        throttle: FailureThrottle | None = None,
    ) -> None:
        super().__init__()
        self.store = store
        self.passwords = passwords if passwords is not None else Passwords()
        self.throttle = throttle if throttle is not None else FailureThrottle()

    async def handle(self, message: object) -> object:
        match message:
            case SignIn():
                return await self._sign_in(message)
            case ResolveSession(session_id=session_id):
                return (await self._session(session_id)).principal
            case DescribeSession(session_id=session_id):
                return await self._session(session_id)
            case SignOut():
                await self._sign_out(message)
                return None
            case CheckCsrf(session_id=session_id, token=token):
                view = await self._session(session_id, refusal="bad_csrf")
                if not hmac.compare_digest(view.csrf_token.encode(), token.encode()):
                    raise Refusal("bad_csrf", "the form's security token does not match")
                return None
            case ListMyAreas(principal=principal):
                return await self._areas(principal)
            case ProbeStorage():
                return await health.probe(self.store)
        return await super().handle(message)

    async def _sign_in(self, msg: SignIn) -> SessionInfo:
        refusal = Refusal("bad_credentials", "The username or password is not right.")
        if self.throttle.blocked(msg.remote_addr):
            # Not even checked: the same answer whether the username exists or the password is
            # right. One audit row per block, not one per guess.
            log.info("sign-in from %s refused: too many failures", msg.remote_addr)
            if self.throttle.first_refusal(msg.remote_addr):
                await self._audit_failed_sign_in(msg, "throttled")
            raise Refusal(
                "too_many_attempts", "Too many failed sign-ins from this address; wait a while."
            )
        if len(msg.username) > MAX_CREDENTIAL_LENGTH or len(msg.password) > MAX_CREDENTIAL_LENGTH:
            self.throttle.failed(msg.remote_addr)
            await self._audit_failed_sign_in(msg, "too_long")
            raise refusal
        login = await staff.find_login(self.store, msg.username.strip()) if msg.username else None
        # Verify even when the user is unknown, so the reply takes as long either way.
        verdict = await self.passwords.verify(
            None if login is None else login.password_hash, msg.password
        )
        if login is None or not verdict.ok or not login.user.active:
            log.info("sign-in refused from %s", msg.remote_addr or "an unknown address")
            reason = (
                "unknown_user"
                if login is None
                else "wrong_password"
                if not verdict.ok
                else "inactive"
            )
            self.throttle.failed(msg.remote_addr)
            await self._audit_failed_sign_in(msg, reason)
            raise refusal
        user_id = login.user.id
        if verdict.needs_rehash:
            new_hash = await self.passwords.hash(msg.password)
            await staff.update_user(self.store, user_id, password_hash=new_hash)
        # A fresh random id at every sign-in: a session id planted before sign-in is worthless.
        created = await sessions.create_session(self.store, user_id)
        await audit.append(
            self.store,
            audit.SIGN_IN,
            actor_user_id=user_id,
            subject=login.user.username,
            remote_addr=msg.remote_addr,
        )
        principal = await self._principal(user_id, login.user.display_name)
        return SessionInfo(created.session_id, created.session.csrf_token, principal)

    async def _audit_failed_sign_in(self, msg: SignIn, reason: str) -> None:
        """Who tried (the username as typed, cut short; never the password), from where, and why
        it failed: for the administrators only. The client gets the same refusal whatever the
        reason, and the row is written on every path, so neither reply nor timing tells them
        whether the username exists."""
        await audit.append(
            self.store,
            audit.SIGN_IN_FAILED,
            subject=msg.username.strip()[:AUDIT_USERNAME_CHARS],
            remote_addr=msg.remote_addr,
            details={"reason": reason},
        )

    async def _session(self, session_id: str, refusal: str = "unauthenticated") -> SessionView:
        if not session_id or len(session_id) > MAX_CREDENTIAL_LENGTH:
            raise Refusal(refusal, "no session")
        session = await sessions.get_valid_session(self.store, session_id)
        if session is None:
            raise Refusal(refusal, "the session is unknown, expired or signed out")
        user = await staff.get_user(self.store, session.user_id)
        return SessionView(await self._principal(user.id, user.display_name), session.csrf_token)

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

    async def _principal(self, user_id: int, display_name: str) -> Principal:
        grants = await staff.list_grants(self.store, user_id)
        orgs = await staff_views.orgs_of_user(self.store, user_id)
        return Principal(
            kind="staff",
            display_name=display_name,
            user_id=str(user_id),
            org_id=str(orgs[0]) if orgs else None,
            grants=frozenset(
                Grant(Role(g.role), Scope(g.scope_type), str(g.scope_id)) for g in grants
            ),
        )

    async def _areas(self, principal: Principal) -> tuple[AreaSummary, ...]:
        if not principal.is_staff or principal.user_id is None:
            raise Refusal("forbidden", "only staff have waiting areas")
        listings = await staff_views.areas_for(self.store, int(principal.user_id))
        return tuple(
            AreaSummary(
                str(a.area_id), a.name, a.slug, str(a.unit_id), a.unit_name, a.kind, a.active
            )
            for a in listings
        )
