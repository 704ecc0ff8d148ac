"""``group``: the group consultations desk. Creates sessions, answers their pages, lets arrivals
in through the session's link, and starts each session's call.

What it answers (``actors.group.messages``):

* staff with the provider role in a unit (on the unit or on one of its areas) and the unit's or
  organisation's administrators create a session there (title, start, capacity up to 60,
  moderators of the organisation, privacy, registrations); the creator is one of the moderators;
* the session's moderators and the unit's administrators list, see (with the link), register
  people for, rotate the link of, send the link of, and cancel a session; another organisation's
  session or unit answers exactly like a missing one (``not_found``);
* anyone with the link checks it (the landing page) and arrives (name, contact): storage creates
  the participant and their token in one transaction, refused when the session is locked or has
  ended; the arrival then waits in the session's call (``room/<room id>``).

Each session's call (:class:`~actors.group.call.GroupCall`) is started when the session is
created, and again at start-up for every session not ended, under the supervisor this desk was
given (transient: it stops when its session ends). Every change is audited (``group.*``).
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime

from actors import addresses, refusals
from actors.admin.outbox import SendMessage
from actors.calls.media import MediaPort
from actors.consult.desk import clean_recipient
from actors.group.call import EndGroup, GroupCall, start_breakouts
from actors.group.messages import (
    MAX_CAPACITY,
    MAX_CONTACT,
    MAX_MODERATORS,
    MAX_NAME,
    MAX_REGISTRATIONS,
    MAX_TITLE,
    ArriveGroup,
    BreakoutFactory,
    CancelGroupSession,
    CheckGroupLink,
    CreateGroupSession,
    GroupLinkStatus,
    GroupPass,
    GroupSessionDetail,
    GroupSessionsFor,
    GroupSetupFor,
    GroupSetupView,
    ModeratorView,
    Privacy,
    RegisterForSession,
    Registrant,
    RegistrationView,
    RemoveRegistration,
    RotateGroupLink,
    SendGroupLink,
    SessionDetail,
    SessionSummary,
    UnitChoice,
)
from actors.group.policy import CANCELLED, may_moderate, user_id_of
from actors.messages import StartAgain
from actors.principal import AreaPlace, Principal, Role
from runtime.errors import ActorError, Refusal
from runtime.kernel import Actor, handles
from runtime.supervisor import ChildSpec, Restart, Supervisor
from storage import areas as area_store
from storage import audit, group_breakouts, orgs, staff
from storage import group_sessions as groups
from storage.db import Store
from storage.errors import NotFoundError
from storage.group_sessions import GroupSession
from storage.orgs import Unit

log = logging.getLogger(__name__)

#: Links are url-safe base64 (22 characters); anything else is not ours.
_LINK = re.compile(r"[A-Za-z0-9_-]{1,64}", re.ASCII)
#: How long the desk waits for the outbox (its own SMTP timeout is 15 s).
OUTBOX_TIMEOUT = 30.0
#: How long ending a running call may take when a page cancels its session.
END_TIMEOUT = 10.0
#: Longest message the "Share link" form may send (the outbox's own limit is larger).
MAX_BODY = 2000
MAX_SUBJECT = 200


def _not_found(what: str = "group session") -> Refusal:
    return Refusal(refusals.NOT_FOUND, f"There is no such {what}.")


def _invalid(detail: str) -> Refusal:
    return Refusal(refusals.INVALID, detail)


def _staff_id(principal: Principal) -> int:
    uid = user_id_of(principal)
    if uid is None or principal.org_id is None:
        raise Refusal(refusals.FORBIDDEN, "only signed-in staff run group sessions")
    return uid


def _clean_registrants(registrants: tuple[Registrant, ...]) -> tuple[tuple[str, str], ...]:
    if len(registrants) > MAX_REGISTRATIONS:
        raise _invalid(f"at most {MAX_REGISTRATIONS} registrations")
    cleaned: list[tuple[str, str]] = []
    for registrant in registrants:
        name = " ".join(registrant.name.split())
        contact = registrant.contact.strip()
        if not name or len(name) > MAX_NAME:
            raise _invalid(f"registration: a name of 1 to {MAX_NAME} characters")
        if len(contact) > MAX_CONTACT:
            raise _invalid(f"registration: a contact of at most {MAX_CONTACT} characters")
        cleaned.append((name, contact))
    return tuple(cleaned)


class GroupDesk(Actor):
    """See the module docstring. ``calls``: the supervisor the sessions' calls run under;
    ``breakouts``: builds a session's breakout desk (``None``: no breakout rooms)."""

    def __init__(
        self,
        store: Store,
        calls: Supervisor,
        media: MediaPort | None = None,
        breakouts: BreakoutFactory | None = None,
        *,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__()
        self.store = store
        self.calls = calls
        self.media = media
        self.breakouts = breakouts
        self.now = now or (lambda: datetime.now(UTC))

    async def on_start(self) -> None:
        for session in await groups.list_open_sessions(self.store):
            await self._start_call(session)

    async def _start_call(self, session: GroupSession) -> None:
        address = addresses.room(session.room_id)
        if address in self.registry:
            return
        first = [session]

        def new_call() -> GroupCall:
            return GroupCall(
                self.store,
                session.room_id,
                self.media,
                self.calls,
                self.breakouts,
                now=self.now,
                session=first.pop() if first else None,  # a restart reads storage
            )

        await self.calls.start_child(ChildSpec(address, new_call, Restart.TRANSIENT))

    @handles(StartAgain)
    async def _start_again(self, msg: StartAgain) -> None:
        """A group session's call whose node died: start it again (here, or learn who claimed
        it), restored from the store (``GroupPolicy.restore``: waiting or running, its admitted
        participants, its timers from the stored start). For one of its open breakout rooms, the
        session's breakout desk too, which resumes the open rooms. An ended or unknown session,
        or a breakout room that closed, starts nothing."""
        session = await groups.session_for_room(self.store, msg.room_id)
        breakout = session is None
        if breakout:
            # One of a session's breakout rooms, while storage says it is open: its desk
            # resumes the session's open rooms when it starts.
            session_id = await group_breakouts.session_of_room(self.store, msg.room_id)
            if session_id is not None:
                with contextlib.suppress(NotFoundError):
                    session = await groups.get_session(self.store, session_id)
        if session is None:
            raise Refusal(refusals.NOT_FOUND, "there is no such group session")
        if session.state == "ended":
            raise Refusal(refusals.CLOSED, "this session has ended")
        await self._start_call(session)
        if breakout:
            if self.breakouts is None:
                raise Refusal(refusals.UNAVAILABLE, "breakout rooms are not available here")
            await start_breakouts(self.calls, self.breakouts, session)

    # -- rights -----------------------------------------------------------------------------------
    async def _unit(self, principal: Principal, unit_id: int) -> Unit:
        try:
            unit = await orgs.get_unit(self.store, unit_id)
        except NotFoundError:
            raise _not_found("unit") from None
        if principal.org_id != str(unit.org_id):
            raise _not_found("unit")
        return unit

    async def _may_create(self, principal: Principal, unit: Unit) -> bool:
        unit_id, org_id = str(unit.id), str(unit.org_id)
        if principal.is_admin_of_unit(unit_id, org_id):
            return True
        places = [AreaPlace("", unit_id, org_id)] + [
            AreaPlace(str(a.id), unit_id, org_id)
            for a in await area_store.list_areas(self.store, unit.id)
        ]
        return any(principal.has_role(Role.PROVIDER, place) for place in places)

    async def _session(self, principal: Principal, session_id: int) -> GroupSession:
        """The session, if ``principal`` runs it; another organisation's answers like none."""
        _staff_id(principal)
        try:
            session = await groups.get_session(self.store, session_id)
        except NotFoundError:
            raise _not_found() from None
        if principal.org_id != str(session.org_id):
            raise _not_found()
        if not may_moderate(principal, session):
            raise Refusal(refusals.FORBIDDEN, "you are not a moderator of this session")
        return session

    # -- views ------------------------------------------------------------------------------------
    def _summary(
        self, session: GroupSession, principal: Principal, registrations: int
    ) -> SessionSummary:
        uid = user_id_of(principal)
        return SessionSummary(
            id=session.id,
            unit_id=session.unit_id,
            unit_name=session.unit_name,
            title=session.title,
            starts_at=session.starts_at,
            capacity=session.capacity,
            state=session.state,
            locked=session.locked,
            room_id=session.room_id,
            registrations=registrations,
            moderating=uid is not None and uid in session.moderator_ids,
        )

    async def _detail(self, session: GroupSession, principal: Principal) -> SessionDetail:
        registrations = await groups.list_registrations(self.store, session.id)
        moderators = []
        for user_id in session.moderator_ids:
            with contextlib.suppress(NotFoundError):
                user = await staff.get_user(self.store, user_id)
                moderators.append(ModeratorView(user.id, user.display_name))
        return SessionDetail(
            summary=self._summary(session, principal, len(registrations)),
            link=session.link,
            privacy=Privacy.of(session),
            moderators=tuple(moderators),
            registrations=tuple(
                RegistrationView(r.id, r.name, r.contact, r.created_at, r.arrived)
                for r in registrations
            ),
            started_at=session.started_at,
            ended_at=session.ended_at,
            end_reason=session.end_reason,
        )

    async def _audit(
        self,
        action: str,
        principal: Principal | None,
        session: GroupSession,
        remote_addr: str,
        **details: object,
    ) -> None:
        await audit.append(
            self.store,
            action,
            actor_kind="user" if principal is not None else "guest",
            actor_user_id=None if principal is None else user_id_of(principal),
            subject=f"group:{session.id}",
            remote_addr=remote_addr,
            details=dict(details),
        )

    # -- creating and listing ---------------------------------------------------------------------
    @handles(GroupSetupFor)
    async def _setup(self, msg: GroupSetupFor) -> GroupSetupView:
        _staff_id(msg.principal)
        org_id = int(str(msg.principal.org_id))
        units = [
            UnitChoice(u.id, u.name)
            for u in await orgs.list_units(self.store, org_id)
            if await self._may_create(msg.principal, u)
        ]
        people: tuple[ModeratorView, ...] = ()
        if units:
            people = tuple(
                ModeratorView(u.id, u.display_name)
                for u in await staff.list_users(self.store, org_ids=(org_id,))
            )
        return GroupSetupView(tuple(units), people)

    @handles(CreateGroupSession)
    async def _create(self, msg: CreateGroupSession) -> SessionDetail:
        creator = _staff_id(msg.principal)
        unit = await self._unit(msg.principal, msg.unit_id)
        if not await self._may_create(msg.principal, unit):
            raise Refusal(refusals.FORBIDDEN, f"you may not run group sessions in {unit.name}")
        title = " ".join(msg.title.split())
        if not title or len(title) > MAX_TITLE:
            raise _invalid(f"title: 1 to {MAX_TITLE} characters")
        if msg.starts_at.tzinfo is None:
            raise _invalid("starts_at: a time with its time zone")
        if not 1 <= msg.capacity <= MAX_CAPACITY:
            raise _invalid(f"capacity: 1 to {MAX_CAPACITY} participants")
        moderators = tuple(dict.fromkeys((creator, *msg.moderator_ids)))
        if len(moderators) > MAX_MODERATORS:
            raise _invalid(f"moderators: at most {MAX_MODERATORS}")
        for user_id in moderators:
            try:
                user = await staff.get_user(self.store, user_id)
            except NotFoundError:
                raise _not_found("member of staff") from None
            if not user.active or (user.org_id is not None and user.org_id != unit.org_id):
                raise _not_found("member of staff")
        session = await groups.create_session(
            self.store,
            unit_id=unit.id,
            title=title,
            starts_at=msg.starts_at,
            capacity=msg.capacity,
            moderator_ids=moderators,
            first_names_only=msg.privacy.first_names_only,
            hide_participant_list=msg.privacy.hide_participant_list,
            no_private_chat=msg.privacy.no_private_chat,
            registrants=_clean_registrants(msg.registrants),
            created_by=creator,
            now=self.now(),
        )
        await self._audit(
            audit.GROUP_CREATED,
            msg.principal,
            session,
            msg.remote_addr,
            unit=unit.id,
            capacity=session.capacity,
            moderators=list(moderators),
        )
        await self._start_call(session)
        return await self._detail(session, msg.principal)

    @handles(GroupSessionsFor)
    async def _list(self, msg: GroupSessionsFor) -> tuple[SessionSummary, ...]:
        _staff_id(msg.principal)
        if msg.unit_id is not None:
            await self._unit(msg.principal, msg.unit_id)
        sessions = await groups.list_sessions(
            self.store,
            int(str(msg.principal.org_id)),
            unit_id=msg.unit_id,
            include_ended=msg.include_ended,
        )
        return tuple(
            [
                self._summary(
                    s, msg.principal, len(await groups.list_registrations(self.store, s.id))
                )
                for s in sessions
                if may_moderate(msg.principal, s)
            ]
        )

    @handles(GroupSessionDetail)
    async def _show(self, msg: GroupSessionDetail) -> SessionDetail:
        return await self._detail(await self._session(msg.principal, msg.session_id), msg.principal)

    # -- changing one -----------------------------------------------------------------------------
    @handles(RegisterForSession)
    async def _register(self, msg: RegisterForSession) -> SessionDetail:
        session = await self._session(msg.principal, msg.session_id)
        cleaned = _clean_registrants(msg.registrants)
        existing = await groups.list_registrations(self.store, session.id)
        if len(existing) + len(cleaned) > MAX_REGISTRATIONS:
            raise _invalid(f"at most {MAX_REGISTRATIONS} registrations")
        try:
            session = await groups.add_registrations(
                self.store, session.id, cleaned, now=self.now()
            )
        except NotFoundError:
            raise Refusal(refusals.ENDED, "this session has ended") from None
        await self._audit(
            audit.GROUP_CHANGED, msg.principal, session, msg.remote_addr, registered=len(cleaned)
        )
        return await self._detail(session, msg.principal)

    @handles(RemoveRegistration)
    async def _unregister(self, msg: RemoveRegistration) -> SessionDetail:
        session = await self._session(msg.principal, msg.session_id)
        try:
            await groups.remove_registration(self.store, session.id, msg.registration_id)
        except NotFoundError:
            raise _not_found("registration") from None
        await self._audit(
            audit.GROUP_CHANGED,
            msg.principal,
            session,
            msg.remote_addr,
            unregistered=msg.registration_id,
        )
        return await self._detail(session, msg.principal)

    @handles(RotateGroupLink)
    async def _rotate(self, msg: RotateGroupLink) -> SessionDetail:
        session = await self._session(msg.principal, msg.session_id)
        try:
            session = await groups.rotate_link(self.store, session.id, now=self.now())
        except NotFoundError:
            raise Refusal(refusals.ENDED, "this session has ended") from None
        await self._audit(audit.GROUP_LINK_ROTATED, msg.principal, session, msg.remote_addr)
        return await self._detail(session, msg.principal)

    @handles(SendGroupLink)
    async def _send_link(self, msg: SendGroupLink) -> object:
        session = await self._session(msg.principal, msg.session_id)
        if session.state == "ended":
            raise Refusal(refusals.ENDED, "this session has ended")
        address, hint = clean_recipient(msg.channel, msg.recipient)  # refuses ``invalid``
        if (
            session.link not in msg.body
            or len(msg.body) > MAX_BODY
            or len(msg.subject) > MAX_SUBJECT
        ):
            raise _invalid("the message must carry the session's link")
        sent = await self.ref(addresses.OUTBOX).ask(
            SendMessage(
                "sms" if msg.channel == "sms" else "email",
                address,
                msg.subject,
                msg.body,
                requested_by_user_id=user_id_of(msg.principal),
            ),
            timeout=OUTBOX_TIMEOUT,
        )
        await self._audit(
            audit.GROUP_LINK_SENT,
            msg.principal,
            session,
            msg.remote_addr,
            channel=msg.channel,
            to=hint,
        )
        return sent

    @handles(CancelGroupSession)
    async def _cancel(self, msg: CancelGroupSession) -> SessionDetail:
        session = await self._session(msg.principal, msg.session_id)
        if session.state != "ended":
            address = addresses.room(session.room_id)
            ended = False
            if address in self.registry:
                with contextlib.suppress(ActorError):
                    await self.ref(address).ask(
                        EndGroup(CANCELLED, msg.principal, msg.remote_addr), timeout=END_TIMEOUT
                    )
                    ended = True
            if not ended:
                _, first = await groups.end_session(
                    self.store, session.id, CANCELLED, now=self.now()
                )
                if first:
                    await self._audit(
                        audit.GROUP_ENDED, msg.principal, session, msg.remote_addr, reason=CANCELLED
                    )
            session = await groups.get_session(self.store, session.id)
        return await self._detail(session, msg.principal)

    # -- the link ---------------------------------------------------------------------------------
    async def _by_link(self, link: str) -> GroupSession | None:
        if _LINK.fullmatch(link) is None:
            return None
        return await groups.session_for_link(self.store, link)

    @handles(CheckGroupLink)
    async def _check(self, msg: CheckGroupLink) -> GroupLinkStatus:
        session = await self._by_link(msg.link)
        if session is None:
            return GroupLinkStatus("unknown")
        org = await orgs.get_organisation(self.store, session.org_id)
        state = "locked" if session.locked and session.state != "ended" else session.state
        return GroupLinkStatus(state, session.title, session.starts_at, session.unit_name, org.name)

    @handles(ArriveGroup)
    async def _arrive(self, msg: ArriveGroup) -> GroupPass:
        if _LINK.fullmatch(msg.link) is None:
            raise Refusal(refusals.INVALID_TOKEN, "this link is not valid")
        name = " ".join(msg.name.split())
        contact = msg.contact.strip()
        if not name or len(name) > MAX_NAME:
            raise _invalid(f"name: 1 to {MAX_NAME} characters")
        if len(contact) > MAX_CONTACT:
            raise _invalid(f"contact: at most {MAX_CONTACT} characters")
        try:
            arrival = await groups.arrive(self.store, msg.link, name, contact, now=self.now())
        except groups.ArrivalRejected as rejected:
            if rejected.reason == "locked":
                raise Refusal(
                    refusals.GROUP_LOCKED, "the moderator has locked this session"
                ) from None
            if rejected.reason == "ended":
                raise Refusal(refusals.ENDED, "this session has ended") from None
            if rejected.reason == "full":
                raise Refusal(refusals.FULL, "this session takes no more arrivals") from None
            raise Refusal(refusals.INVALID_TOKEN, "this link is not valid") from None
        session = arrival.session
        await self._audit(
            audit.GROUP_ARRIVED,
            None,
            session,
            msg.remote_addr,
            participant=arrival.participant.id,
            registered=arrival.participant.registration_id is not None,
        )
        await self._start_call(session)
        return GroupPass(
            arrival.token, session.room_id, session.id, arrival.participant.id, session.title
        )
