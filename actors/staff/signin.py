"""The sign-in desk: checks a staff member's username and password and opens a session.

Kept apart from the Directory on purpose. An argon2 verify costs tens of milliseconds of CPU by
design, and the Directory answers every page load and every websocket ``hello``: with both in one
mailbox, a burst of sign-ins (a clinic's morning shift, or a load test) made those lookups wait
behind the hashing and time out. Here sign-ins queue only behind each other.

Expected "no"s are :class:`~runtime.errors.Refusal` replies with stable codes: ``bad_credentials``
(wrong user, wrong password or disabled account: deliberately one code, so the form cannot be
used to find out which usernames exist) and ``too_many_attempts`` (this address failed too often
lately; :mod:`services.throttle`, the only state kept in memory). Every attempt is audited.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from actors import addresses, refusals
from actors.staff.directory import MAX_CREDENTIAL_LENGTH, SessionInfo, principal_of
from runtime.errors import Refusal
from runtime.kernel import Actor, handles
from services.passwords import Passwords
from services.throttle import FailureThrottle
from storage import audit, sessions, staff
from storage.db import Store

log = logging.getLogger(__name__)

#: Kept importable; the address lives in ``actors.addresses``.
SIGN_IN_ADDRESS = addresses.SIGN_IN

#: How much of a username typed at a failed sign-in the audit log keeps: enough to recognise an
#: attack on one account, not a pasted essay (or a password typed into the wrong field in full).
AUDIT_USERNAME_CHARS = 64


@dataclass(frozen=True)
class SignIn:
    """Check a username (or email) and password; reply :class:`SessionInfo` with a fresh session."""

    username: str
    password: str = field(repr=False)
    remote_addr: str = ""


class SignInDesk(Actor):
    """Owns password checks and the failure throttle; see the module docstring."""

    def __init__(
        self,
        store: Store,
        passwords: Passwords | None = None,
        throttle: FailureThrottle | None = None,
        idle_timeout: timedelta = sessions.DEFAULT_IDLE_TIMEOUT,
    ) -> None:
        super().__init__()
        self.store = store
        #: The first idle deadline of a new session (``waitroom serve --staff-idle-minutes``).
        self.session_idle = idle_timeout
        self.passwords = passwords if passwords is not None else Passwords()
        self.throttle = throttle if throttle is not None else FailureThrottle()

    @handles(SignIn)
    async def _sign_in(self, msg: SignIn) -> SessionInfo:
        refusal = Refusal(refusals.BAD_CREDENTIALS, "The username or password is not right.")
        if self.throttle.blocked(msg.remote_addr):
            # Not even checked: the same answer whether the username exists or the password is
            # right. One audit row per block, not one per guess.
            log.info("sign-in from %s refused: too many failures", msg.remote_addr)
            if self.throttle.first_refusal(msg.remote_addr):
                await self._audit_failed_sign_in(msg, "throttled")
            raise Refusal(
                refusals.TOO_MANY_ATTEMPTS,
                "Too many failed sign-ins from this address; wait a while.",
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
        created = await sessions.create_session(self.store, user_id, idle=self.session_idle)
        await audit.append(
            self.store,
            audit.SIGN_IN,
            actor_user_id=user_id,
            subject=login.user.username,
            remote_addr=msg.remote_addr,
        )
        principal = await principal_of(self.store, user_id, login.user.display_name)
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
