"""Who is this client? A staff session cookie, or a participant token held by the browser.

Participant tokens have the form ``<room id>.<secret>``: the room part says which room actor to ask,
so the answer comes from the actor that owns the room (wherever it runs), and the secret is compared
there against a hash. Staff sessions are resolved by the directory actor.
"""

from __future__ import annotations

from actors import addresses, refusals
from actors.inbound import RedeemToken
from actors.principal import Principal
from actors.staff.directory import ResolveSession
from runtime.address import SEPARATOR
from runtime.errors import ActorNotFound, Refusal
from runtime.registry import Registry

#: Bounds a hello's wait for the directory or a room actor.
AUTH_TIMEOUT = 5.0


class Authenticator:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    async def authenticate(
        self, token: str | None, session_cookie: str | None, remote_addr: str
    ) -> Principal:
        if token:
            room_id, _, secret = token.partition(".")
            if not room_id or not secret or SEPARATOR in room_id:
                raise Refusal(refusals.INVALID_TOKEN, "this link is not valid")
            try:
                principal: Principal = await self.registry.ref(addresses.room(room_id)).ask(
                    RedeemToken(secret, remote_addr), timeout=AUTH_TIMEOUT
                )
            except ActorNotFound:
                raise Refusal(
                    refusals.INVALID_TOKEN, "this call has ended or the link is not valid"
                ) from None
            return principal
        if session_cookie:
            staff: Principal = await self.registry.ref(addresses.DIRECTORY).ask(
                ResolveSession(session_cookie), timeout=AUTH_TIMEOUT
            )
            return staff
        raise Refusal(refusals.UNAUTHENTICATED, "sign in, or open the link you were sent")
