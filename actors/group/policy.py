"""What a group consultation sets on the call core: :class:`GroupPolicy`.

Who may enter: the session's moderators and the administrators of its unit (or organisation) as
staff; participants holding a token of this session's room, once a moderator admitted them (the
waiting before that is the group call's, ``actors.group.call``: the core never sees a waiting
participant). How many: the capacity (at most 60 participants, decided at admission in storage)
plus seats for the moderators (:data:`~actors.group.messages.MAX_MODERATORS`). The call is held
for nobody (no grace: it ends when the moderator ends it, or at four hours) and has no hold. The
first moderator's entry is the session's start (stored, audited, the call record opened); the
end closes the room and revokes every token in one storage transaction before anyone is told.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from actors import addresses, refusals
from actors.calls.presence import ParticipantKind, Present
from actors.calls.state import CallState
from actors.group.messages import (
    KIND,
    MAX_MODERATORS,
    MAX_SECONDS,
    participant_member,
    staff_member,
)
from actors.inbound import Inbound
from actors.principal import Principal
from runtime.errors import Refusal
from storage import audit, calls
from storage import group_sessions as groups
from storage.db import Store
from storage.errors import NotFoundError
from storage.group_sessions import GroupSession

if TYPE_CHECKING:
    from actors.calls.core import Call

log = logging.getLogger(__name__)

#: Why a group call ends: the moderator ended it; four hours; cancelled on its page.
ENDED: Final = "ended"
TIME_LIMIT: Final = "time_limit"
CANCELLED: Final = "cancelled"


def user_id_of(principal: Principal) -> int | None:
    uid = principal.user_id
    return int(uid) if principal.is_staff and uid is not None and uid.isdigit() else None


def member_of(person: Present) -> str:
    """The member id ``group.*`` frames name this person by (``p-...`` or ``s-...``)."""
    if person.principal.is_staff:
        return staff_member(person.principal.user_id)
    return participant_member(str(person.principal.participant_id))


def first_name(name: str) -> str:
    parts = name.split()
    return parts[0] if parts else name


def may_moderate(principal: Principal, session: GroupSession) -> bool:
    """A moderator of the session, or an administrator of its unit or organisation."""
    if not principal.is_staff or principal.org_id != str(session.org_id):
        return False
    uid = user_id_of(principal)
    return (uid is not None and uid in session.moderator_ids) or principal.is_admin_of_unit(
        str(session.unit_id), str(session.org_id)
    )


class GroupPolicy:
    """See the module docstring. ``session`` is read at :meth:`restore` and kept current by the
    group call (lock, start)."""

    def __init__(
        self,
        store: Store,
        room_id: str,
        now: Callable[[], datetime],
        session: GroupSession | None = None,
    ) -> None:
        self.store = store
        self.room_id = room_id
        self.now = now
        self._first = session
        self.session: GroupSession | None = None
        self.record_id: str | None = None
        #: Who ended it (for the audit), if a moderator did.
        self.ended_by: Inbound | None = None
        #: Told by the group call when the session has just started (to arm its timers).
        self.on_started: Callable[[], None] | None = None
        #: The core's limit: the participants' places and the moderators' seats.
        self.limit = groups.MAX_CAPACITY + MAX_MODERATORS

    @property
    def grace(self) -> float | None:
        return None

    @property
    def current(self) -> GroupSession:
        if self.session is None:
            raise Refusal(refusals.ENDED, "this session has ended")
        return self.session

    async def restore(self) -> CallState:
        session, self._first = self._first, None
        if session is None:
            session = await groups.session_for_room(self.store, self.room_id)
        if session is None or session.state == "ended":
            raise Refusal(refusals.CLOSED, "this session has ended")
        self.session = session
        self.limit = session.capacity + MAX_MODERATORS
        if session.state == "running":
            active = await calls.active_call_for_room(self.store, self.room_id)
            self.record_id = active.id if active is not None else None
            return CallState.IN_CALL
        return CallState.WAITING

    def admit(self, principal: Principal, state: CallState) -> ParticipantKind:
        session = self.current
        if principal.is_staff:
            if principal.org_id != str(session.org_id):
                # Exactly what the gateway answers for a room that does not exist.
                raise Refusal(
                    refusals.NOT_FOUND,
                    f"{addresses.room(self.room_id)} does not exist (any more)",
                )
            if not may_moderate(principal, session):
                raise Refusal(
                    refusals.FORBIDDEN, "only this session's moderators enter it as staff"
                )
            return ParticipantKind.STAFF
        if principal.room_id != self.room_id or not principal.participant_id:
            raise Refusal(refusals.FORBIDDEN, "this is not your session")
        return ParticipantKind.GUEST

    def holds_for(self, person: Present) -> bool:
        return person.kind is ParticipantKind.STAFF

    def describe(self) -> dict[str, Any]:
        session = self.current
        ends_at = (
            session.started_at.timestamp() + MAX_SECONDS if session.started_at is not None else None
        )
        return {
            "kind": KIND,
            "session": session.id,
            "title": session.title,
            "capacity": session.capacity,
            "locked": session.locked,
            "privacy": {
                "first_names_only": session.first_names_only,
                "hide_participant_list": session.hide_participant_list,
                "no_private_chat": session.no_private_chat,
            },
            "ends_at": ends_at,
        }

    async def entered(self, call: Call, person: Present) -> None:
        if person.kind is ParticipantKind.STAFF:
            if call.state is CallState.WAITING:
                await self._start(call, person)
            return
        already = any(p.person == person.person and p.conn != person.conn for p in call.presence)
        if not already:
            await groups.participant_entered(
                self.store, str(person.principal.participant_id), now=self.now()
            )

    async def _start(self, call: Call, person: Present) -> None:
        session = self.current
        started, first = await groups.start_session(self.store, session.id, now=self.now())
        self.session = started
        if first:
            self.record_id = (await calls.start_call(self.store, self.room_id)).id
            await audit.append(
                self.store,
                audit.GROUP_STARTED,
                actor_user_id=user_id_of(person.principal),
                subject=f"group:{session.id}",
                details={"unit": session.unit_id, "org": session.org_id},
            )
        call.set_state(CallState.IN_CALL)
        if self.on_started is not None:
            self.on_started()

    async def left(self, call: Call, person: Present) -> None:
        if person.kind is ParticipantKind.STAFF or call.presence.has_person(person.person):
            return
        with contextlib.suppress(NotFoundError):
            await groups.participant_left(
                self.store, str(person.principal.participant_id), now=self.now()
            )

    async def hold_requested(self, call: Call, request: Inbound) -> None:
        raise Refusal(refusals.NO_HOLD, "a group session has no hold: send one person back")

    async def holding(self, call: Call) -> None:
        return None

    async def held(self, call: Call) -> None:
        return None

    async def end_requested(self, call: Call, request: Inbound) -> str:
        if not may_moderate(request.principal, self.current):
            raise Refusal(refusals.NOT_MODERATOR, "only the moderator ends the session")
        self.ended_by = request
        return ENDED

    async def abandoned(self, call: Call) -> str:
        return ENDED  # never: the policy has no grace

    async def closing(self, call: Call, reason: str) -> None:
        session = self.current
        ended, first = await groups.end_session(self.store, session.id, reason, now=self.now())
        self.session = ended
        if self.record_id is not None:
            await calls.end_call(self.store, self.record_id)
        if not first:
            return
        by = self.ended_by
        await audit.append(
            self.store,
            audit.GROUP_ENDED,
            actor_kind="user" if by is not None else "system",
            actor_user_id=user_id_of(by.principal) if by is not None else None,
            subject=f"group:{session.id}",
            remote_addr=by.remote_addr if by is not None else "",
            details={"reason": reason},
        )

    def closed(self, call: Call, reason: str) -> None:
        return None
