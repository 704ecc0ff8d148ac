"""Invitations into a call: single-use links that become a guest's own token once claimed.

Every kind of call whose staff may invite someone (a caller's room, a user room) does the same
three things with the room's tokens in storage: count the invitations still open (the call's limit
counts them as people), mint one, and trade a claimed one for a guest token the guest's page keeps
for the websocket. Each call actor does this from its own mailbox and audits it with its own
context (its area, its room); the rules live here once. Links and guest tokens have the form
``<room id>.<secret>`` (``docs/protocol.md``, "Participant tokens").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final, NoReturn

from actors import refusals
from actors.calls.presence import ParticipantKind
from actors.principal import Principal
from runtime.errors import Refusal
from storage import rooms as room_store
from storage.db import Store
from storage.errors import NotFoundError, TokenRejectedError

#: An invite link stays usable this long (seconds) unless the call's room closes first.
INVITE_LIFETIME = 24 * 3600
#: Longest display name a guest may give themselves.
MAX_NAME = 80

INVITE_TOKEN_KIND: Final = "invite"
GUEST_TOKEN_KIND: Final = "guest"


@dataclass(frozen=True, slots=True)
class Claimed:
    """A guest's own token (``<room id>.<secret>``), their name, and the token's handle (the
    ``participant_id`` their :class:`~actors.principal.Principal` carries)."""

    token: str = field(repr=False)
    name: str = field(repr=False)
    token_id: str


INVITE_REFUSED: Final = "this invitation has been used, has expired or the call has ended"


def _invalid(detail: str) -> Refusal:
    return Refusal(refusals.INVALID_TOKEN, detail)


def refused() -> Refusal:
    """The one answer to an invitation that cannot be used, whatever the reason: a wrong secret,
    one used, expired or revoked, another room's, or a call that has ended. A room id is in the
    link; if a live room answered a wrong secret differently from a dead room, anyone could tell
    which calls are going on (issue 15)."""
    return _invalid(INVITE_REFUSED)


async def check_invitation(store: Store, room_id: str, secret: str) -> None:
    """Is this an open invitation into this room? Uses nothing (a link preview's GET, the
    landing page); refuses exactly as `claim_invitation` does."""
    try:
        token = await room_store.check_token(store, secret)
    except (TokenRejectedError, NotFoundError):
        raise refused() from None
    if token.room_id != room_id or token.kind != INVITE_TOKEN_KIND:
        raise refused()


#: No room has this id: checking a secret against it reads storage as a live room does, and
#: always refuses.
NO_ROOM: Final = ""


async def refuse_after_checking(store: Store, secret: str) -> NoReturn:
    """Refuse an invitation into a call that has ended or is not running, after the same work a
    live room does for a wrong secret (hash it, read storage, compare): without that read a dead
    room answered sooner than a live one, and the time told which calls are going on (issue 15).
    The one :func:`check_invitation` serves both, so neither path can drift from the other."""
    await check_invitation(store, NO_ROOM, secret)
    raise refused()  # not reached: no stored invitation belongs to NO_ROOM


async def open_invitations(store: Store, room_id: str, now: datetime | None = None) -> int:
    """Invitations into the room not used, revoked or expired yet."""
    moment = now or datetime.now(UTC)
    return sum(
        1
        for t in await room_store.list_tokens(store, room_id)
        if t.kind == INVITE_TOKEN_KIND
        and t.used_at is None
        and t.revoked_at is None
        and (t.expires_at is None or t.expires_at > moment)
    )


async def create_invitation(
    store: Store, room_id: str, present: int, limit: int, label: str
) -> str:
    """A single-use link for one more person, or refuse ``call_full`` when the people present
    and the invitations still open already fill the call. Returns ``<room id>.<secret>``."""
    now = datetime.now(UTC)
    if present + await open_invitations(store, room_id, now) >= limit:
        raise Refusal(
            refusals.CALL_FULL, f"a call holds at most {limit} people, invitations included"
        )
    token = await room_store.issue_token(
        store,
        room_id,
        INVITE_TOKEN_KIND,
        single_use=True,
        expires_at=now + timedelta(seconds=INVITE_LIFETIME),
        label=label.strip()[:MAX_NAME],
    )
    return f"{room_id}.{token.raw}"


async def claim_invitation(store: Store, room_id: str, secret: str, name: str) -> Claimed:
    """Use the invitation (once: the storage claim is atomic) and give the guest a token of
    their own; refuse (`refused`) one that is used, expired, revoked or not this room's. Another
    room's invitation is refused before it is used, so a wrong path does not spend it."""
    await check_invitation(store, room_id, secret)
    try:
        token = await room_store.redeem_token(store, secret)
    except (TokenRejectedError, NotFoundError):
        raise refused() from None
    try:
        return await issue_guest(store, room_id, name.strip()[:MAX_NAME] or token.label or "Guest")
    except Refusal:
        raise refused() from None


async def issue_guest(store: Store, room_id: str, name: str) -> Claimed:
    """A guest's token into the room (reused for reconnecting, until the room revokes it)."""
    try:
        guest = await room_store.issue_token(
            store, room_id, GUEST_TOKEN_KIND, single_use=False, label=name
        )
    except TokenRejectedError:
        raise _invalid("this room is closed") from None
    return Claimed(f"{room_id}.{guest.raw}", name, guest.token.id)


async def guest_principal(store: Store, room_id: str, secret: str) -> Principal:
    """The guest behind a guest token of this room, or refuse ``invalid_token``."""
    try:
        token = await room_store.check_token(store, secret)
    except (TokenRejectedError, NotFoundError):
        raise _invalid("this link is not valid or the call has ended") from None
    if token.room_id != room_id or token.kind != GUEST_TOKEN_KIND:
        raise _invalid("this link is not valid or the call has ended")
    return Principal(
        kind=ParticipantKind.GUEST.value,
        display_name=token.label or "Guest",
        room_id=room_id,
        participant_id=token.id,
    )
