"""The call an opened Consult Now link starts: :class:`ConsultNowPolicy` on the call core.

The call exists from the moment its link is opened (``storage.consult`` created its room then)
and is running at once: no waiting area, no "join". Who may enter: the provider who sent the
link (signed in), the person who opened it (their guest token) and the people the provider
invites from the call (the core's invitations, ``actors.calls.invites``); nobody else, not even
other providers of the area. At most six, invitations included, as an individual appointment.
The call is held for its provider: it waits :data:`ANSWER_GRACE` seconds for them to answer the
ring (and to come back after a lost connection), then ends. No hold. It ends when the provider
ends it; then its room closes and every token and invitation into it is revoked.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any, Final

from actors import addresses, refusals
from actors.calls import invites
from actors.calls.core import Call, wire
from actors.calls.media import MediaPort
from actors.calls.presence import ParticipantKind, Present
from actors.calls.routing import call_id_for
from actors.calls.state import CallState
from actors.inbound import Inbound, RedeemToken
from actors.messages import CheckInvite, ClaimInvite, GuestPass, RoomSnapshot
from actors.principal import Principal
from runtime.errors import Refusal
from runtime.kernel import handles
from storage import areas as area_store
from storage import audit, calls, consult
from storage import rooms as room_store
from storage.db import Store
from storage.errors import NotFoundError

log = logging.getLogger(__name__)

#: Everyone in the call, the provider included, invitations counted (an individual appointment).
MAX_PARTICIPANTS = 6
#: Seconds the call waits for its provider: to answer the ring, or to come back.
ANSWER_GRACE = 120.0
#: Why the call ends: the provider ended it; the provider never answered or did not come back.
ENDED: Final = "ended"
UNANSWERED: Final = "unanswered"
#: ``room.state``'s ``kind`` of this call, for pages.
KIND: Final = "consult_now"

_RECORD_KIND = {
    ParticipantKind.STAFF: "staff",
    ParticipantKind.CALLER: "caller",
    ParticipantKind.GUEST: "invitee",
}


@dataclass(frozen=True)
class ConsultStart:
    """What the desk knows when it starts a new call (so the first start reads no storage)."""

    link: consult.ConsultLink
    area_name: str


def _user_id(principal: Principal) -> int | None:
    uid = principal.user_id
    return int(uid) if uid is not None and uid.isdigit() else None


class ConsultNowPolicy:
    """What a Consult Now call sets on the call core (see the module docstring)."""

    limit = MAX_PARTICIPANTS

    def __init__(
        self,
        store: Store,
        room_id: str,
        grace: float = ANSWER_GRACE,
        start: ConsultStart | None = None,
    ) -> None:
        self.store = store
        self.room_id = room_id
        self.answer_grace = grace
        self._start = start
        self.link_id = ""
        self.provider_user_id = 0
        self.area_id = 0
        self.area_name = ""
        self.record_id: str | None = None
        #: Who pressed "End call" (for the audit), if someone did.
        self._ended_by: Inbound | None = None

    @property
    def grace(self) -> float | None:
        return self.answer_grace

    async def restore(self) -> CallState:
        if self._start is not None:
            link, self.area_name = self._start.link, self._start.area_name
            self._start = None
        else:
            room = await room_store.get_room(self.store, self.room_id)
            if room.state != "open":
                raise Refusal(refusals.CLOSED, "this call has ended")
            link = await consult.link_for_room(self.store, self.room_id)
            self.area_name = (await area_store.get_area(self.store, link.area_id)).name
            active = await calls.active_call_for_room(self.store, self.room_id)
            self.record_id = active.id if active is not None else None
        self.link_id = link.id
        self.provider_user_id = link.provider_user_id
        self.area_id = link.area_id
        if self.record_id is None:
            self.record_id = (await calls.start_call(self.store, self.room_id)).id
        return CallState.IN_CALL

    def admit(self, principal: Principal, state: CallState) -> ParticipantKind:
        if principal.is_staff:
            if _user_id(principal) != self.provider_user_id:
                raise Refusal(
                    refusals.FORBIDDEN, "only the provider who sent this link enters as staff"
                )
            return ParticipantKind.STAFF
        if principal.room_id != self.room_id:
            raise Refusal(refusals.FORBIDDEN, "this is not your call")
        return ParticipantKind(principal.kind)

    def holds_for(self, person: Present) -> bool:
        return (
            person.kind is ParticipantKind.STAFF
            and _user_id(person.principal) == self.provider_user_id
        )

    def describe(self) -> dict[str, Any]:
        return {"kind": KIND, "area": self.area_name, "joining": None}

    async def entered(self, call: Call, person: Present) -> None:
        if self.record_id is None or person.participant_row is not None:
            return
        already = any(
            p.person == person.person and p.participant_row is not None for p in call.presence
        )
        row = await calls.add_participant(
            self.store,
            self.record_id,
            _RECORD_KIND[person.kind],  # type: ignore[arg-type]
            person.principal.display_name,
            user_id=_user_id(person.principal),
        )
        person.participant_row = row.id
        if not already:  # one entry per person, whatever their tabs
            await audit.append(
                self.store,
                audit.CONSULT_ENTERED,
                actor_kind="user" if person.kind is ParticipantKind.STAFF else "guest",
                actor_user_id=_user_id(person.principal),
                area_id=self.area_id,
                subject=f"consult:{self.link_id}",
                details={"as": person.kind.value},
            )

    async def left(self, call: Call, person: Present) -> None:
        if person.participant_row is not None:
            with contextlib.suppress(NotFoundError):
                await calls.participant_left(self.store, person.participant_row)

    async def hold_requested(self, call: Call, request: Inbound) -> None:
        raise Refusal(refusals.NO_HOLD, "a Consult Now call has no hold")

    async def holding(self, call: Call) -> None:
        return None

    async def held(self, call: Call) -> None:
        return None

    async def end_requested(self, call: Call, request: Inbound) -> str:
        self._ended_by = request
        return ENDED

    async def abandoned(self, call: Call) -> str:
        return UNANSWERED

    async def closing(self, call: Call, reason: str) -> None:
        await room_store.close_room(self.store, self.room_id)
        if self.record_id is not None:
            await calls.end_call(self.store, self.record_id)
        by = self._ended_by
        await audit.append(
            self.store,
            audit.CONSULT_ENDED,
            actor_kind="user" if by is not None else "system",
            actor_user_id=_user_id(by.principal) if by is not None else None,
            area_id=self.area_id,
            subject=f"consult:{self.link_id}",
            remote_addr=by.remote_addr if by is not None else "",
            details={"reason": reason},
        )

    def closed(self, call: Call, reason: str) -> None:
        return None


class ConsultCall(Call):
    """``room/<id>`` of a Consult Now call: the core on :class:`ConsultNowPolicy`, plus what only
    a call with guests receives: their tokens at hello, invitations and their claims."""

    def __init__(
        self,
        store: Store,
        room_id: str,
        media: MediaPort | None,
        grace: float = ANSWER_GRACE,
        start: ConsultStart | None = None,
    ) -> None:
        self.consult = ConsultNowPolicy(store, room_id, grace, start)
        super().__init__(call_id_for(addresses.room(room_id)), room_id, self.consult, media)
        self.store = store

    @handles(RedeemToken)
    async def _redeem(self, msg: RedeemToken) -> Principal:
        return await invites.guest_principal(self.store, self.room_id, msg.secret)

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
        await audit.append(
            self.store,
            audit.INVITE_CLAIMED,
            actor_kind="guest",
            area_id=self.consult.area_id,
            subject=f"consult:{self.consult.link_id}",
            remote_addr=msg.remote_addr,
        )
        return GuestPass(claimed.token, self.room_id, self.consult.area_name)

    @wire("call.invite")
    async def _invite(self, msg: Inbound) -> dict[str, Any]:
        """Only the provider invites; the limit counts invitations not yet used."""
        person = self.member(msg.conn)
        if not self.consult.holds_for(person):
            raise Refusal(refusals.FORBIDDEN, "only the provider of this call can invite")
        link = await invites.create_invitation(
            self.store,
            self.room_id,
            self.presence.people(),
            self.consult.limit,
            str(msg.body.get("label") or ""),
        )
        await audit.append(
            self.store,
            audit.INVITE,
            actor_user_id=_user_id(msg.principal),
            area_id=self.consult.area_id,
            subject=f"consult:{self.consult.link_id}",
            remote_addr=msg.remote_addr,
        )
        return {"url": f"/i/{link}"}

    @handles(RoomSnapshot)
    async def _snapshot(self, msg: RoomSnapshot) -> RoomSnapshot:
        return RoomSnapshot(
            self.room_id, self.state.value, self.consult.area_id, [p.peer_id for p in self.presence]
        )
