"""The call actors of meeting rooms and user rooms (``room/<id>``): the call core on their policies.

Each runs one call of a permanent room and stops when that call ends; the ``meetings`` host
starts the next one when someone comes. Beside the core's messages they take guest tokens at the
gateway's hello (:class:`~actors.inbound.RedeemToken`), tell the host who is in (:class:`Occupants`),
wait for someone a page has let in (:class:`Expect`), and end when they are empty. A meeting room
hands out guest tokens to its guest link's users; a user room's owner invites guests by single-use
link (:mod:`actors.calls.invites`, the same invitations as a caller's room).
"""

from __future__ import annotations

from typing import Any, Final

from actors import addresses, refusals
from actors.calls import invites
from actors.calls.core import Call, wire
from actors.calls.media import MediaPort
from actors.calls.presence import ParticipantKind
from actors.calls.routing import call_id_for
from actors.calls.state import CallState
from actors.inbound import Inbound, RedeemToken
from actors.meetings.messages import CloseRoom, Expect, IssueGuestPass, Occupants
from actors.meetings.policies import (
    ARCHIVED,
    EMPTY,
    EXPECT_WINDOW,
    OWNER_GRACE,
    UNUSED,
    Emptied,
    MeetingRoomPolicy,
    PermanentRoomPolicy,
    UserRoomPolicy,
    expect_key,
    people_in,
)
from actors.messages import CheckInvite, ClaimInvite, GuestPass
from actors.principal import Principal
from runtime.errors import Refusal
from runtime.kernel import Timer, handles
from storage import audit
from storage.db import Store

#: The invite link a user room's owner shares: the same landing page as a caller room's.
INVITE_PATH: Final = "/i/"


class IdleOver:
    """The call's idle timer: nobody has come (or come back) since it was armed."""


class PermanentRoomCall(Call):
    """One call of a permanent room; see the module docstring."""

    def __init__(
        self, store: Store, room_id: str, policy: PermanentRoomPolicy, media: MediaPort | None
    ) -> None:
        super().__init__(call_id_for(addresses.room(room_id)), room_id, policy, media)
        self.store = store
        self.room = policy
        self._idle: Timer | None = None

    async def on_start(self) -> None:
        await super().on_start()
        self._arm_idle()  # a call started for someone who never connects does not linger

    def _arm_idle(self) -> None:
        if self._idle is None:
            self._idle = self.send_after(EXPECT_WINDOW, IdleOver())

    @handles(IdleOver)
    async def _idle_over(self, message: IdleOver) -> None:
        self._idle = None
        if len(self.presence) or self.state is CallState.ENDED:
            return
        if self.room.expecting():
            self._arm_idle()
            return
        await self.end(UNUSED if self.room.record_id is None else EMPTY)

    @handles(Emptied)
    async def _emptied(self, message: Emptied) -> None:
        if len(self.presence) or self.state is CallState.ENDED:
            return  # someone came (back) meanwhile
        if self.room.expecting():
            self._arm_idle()  # a page let someone in who has not connected yet
            return
        await self.end(EMPTY)

    @handles(Expect)
    async def _expect(self, message: Expect) -> None:
        if self.state is CallState.ENDED:
            raise Refusal(refusals.ENDED, "this call has ended")
        self.room.expect(message.key)

    @handles(Occupants)
    async def _occupants(self, message: Occupants) -> tuple[str, ...]:
        return people_in(self)

    @handles(RedeemToken)
    async def _redeem(self, msg: RedeemToken) -> Principal:
        return await invites.guest_principal(self.store, self.room_id, msg.secret)

    @handles(CloseRoom)
    async def _close_room(self, message: CloseRoom) -> None:
        await self.end(ARCHIVED)


class MeetingRoomCall(PermanentRoomCall):
    """``room/<id>`` of a unit's meeting room."""

    def __init__(self, store: Store, room_id: str, media: MediaPort | None) -> None:
        self.meeting = MeetingRoomPolicy(store, room_id)
        super().__init__(store, room_id, self.meeting, media)

    @handles(IssueGuestPass)
    async def _guest_pass(self, msg: IssueGuestPass) -> GuestPass:
        """Someone used the guest link: a token of their own, unless the meeting is full now."""
        if self.state is CallState.ENDED:
            raise Refusal(refusals.ENDED, "this call has ended")
        if self.presence.people() + self.meeting.guests_on_their_way() >= self.meeting.limit:
            raise Refusal(
                refusals.CALL_FULL, f"a meeting room holds at most {self.meeting.limit} people"
            )
        name = msg.name.strip()[: invites.MAX_NAME] or "Guest"
        guest = await invites.issue_guest(self.store, self.room_id, name)
        self.meeting.expect(f"guest:{guest.token_id}")
        return GuestPass(guest.token, self.room_id, self.meeting.name)


class UserRoomCall(PermanentRoomCall):
    """``room/<id>`` of one staff member's user room."""

    def __init__(
        self, store: Store, room_id: str, media: MediaPort | None, grace: float = OWNER_GRACE
    ) -> None:
        self.user_room = UserRoomPolicy(store, room_id, grace)
        super().__init__(store, room_id, self.user_room, media)

    @wire("call.invite")
    async def _invite(self, msg: Inbound) -> dict[str, Any]:
        """A single-use link for one more guest; only the owner, in the call, invites."""
        person = self.member(msg.conn)
        if not self.user_room.is_owner(person.principal):
            raise Refusal(refusals.FORBIDDEN, "only the room's owner can invite")
        link = await invites.create_invitation(
            self.store,
            self.room_id,
            self.presence.people(),
            self.user_room.limit,
            str(msg.body.get("label") or ""),
        )
        await audit.append(
            self.store,
            audit.INVITE,
            actor_user_id=int(msg.principal.user_id) if msg.principal.user_id else None,
            subject=self.room_id,
            remote_addr=msg.remote_addr,
            details={"room_kind": "user"},
        )
        return {"url": INVITE_PATH + link}

    @handles(CheckInvite)
    async def _check_invite(self, msg: CheckInvite) -> None:
        if self.state is CallState.ENDED:
            await invites.refuse_after_checking(self.store, msg.secret)
        await invites.check_invitation(self.store, self.room_id, msg.secret)

    @handles(ClaimInvite)
    async def _claim_invite(self, msg: ClaimInvite) -> GuestPass:
        if self.state is CallState.ENDED:
            await invites.refuse_after_checking(self.store, msg.secret)
        claimed = await invites.claim_invitation(
            self.store, self.room_id, msg.secret, msg.display_name
        )
        self.user_room.expect(f"guest:{claimed.token_id}")
        await audit.append(
            self.store,
            audit.INVITE_CLAIMED,
            actor_kind=ParticipantKind.GUEST.value,
            subject=self.room_id,
            remote_addr=msg.remote_addr,
            details={"room_kind": "user"},
        )
        return GuestPass(claimed.token, self.room_id, self.user_room.name)


__all__ = [
    "INVITE_PATH",
    "MeetingRoomCall",
    "PermanentRoomCall",
    "UserRoomCall",
    "expect_key",
]
