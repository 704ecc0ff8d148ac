"""``meetings``: the host of meeting rooms and user rooms, and their administration.

The rooms are permanent, their calls are not: the host starts a room's call actor
(``room/<id>``, transient, under the meetings supervisor) when someone is let in, and the actor
stops when its call ends. What the host answers:

* administrators (of the unit, or of its organisation) create, rename and archive meeting rooms,
  rotate their guest links, and create and archive user rooms; every change is audited, and an
  archived room's call ends at once;
* staff ask which meeting rooms they may enter and who is in each (the console), and for their
  own user room; entering checks the role here and again in the call (the call decides);
* guests use a meeting room's guest link: the host finds the room by its current link (a rotated
  one finds nothing) and the room's call hands out the guest's token.

Consoles watch (``meetings.watch``): every call tells the host who is in whenever that changes
(:class:`OccupancyChanged`), and the host pushes ``meetings.occupancy`` to the watchers who may
enter that room (a user room: its owner only).

Who owns which user room is kept in memory (read at start, changed only here), because every
staff page's menu asks for it.

In a cluster every node runs a host, and a call runs on one node while consoles watch through
any: the host of the call's node tells every other node's host (:class:`OccupancyHeard`), so
each keeps who is in the calls of the other live nodes, lists them on its consoles and pushes
``meetings.occupancy`` to its own watchers; a host that starts asks the others what they run
(:class:`OccupancyWanted`). Archiving a room through one node ends its call on whichever node
runs it (:class:`EndCallHere`), and a user room created or archived through one node is read
again by the others (:class:`UserRoomsChanged`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

import trio

from actors import addresses, refusals
from actors.admin import setup_rules as rules
from actors.calls.media import MediaPort
from actors.every_node import ask_every_node, tell_every_node
from actors.inbound import ConnectionClosed, Inbound, Push
from actors.meetings.messages import (
    ArchiveMeetingRoom,
    ArchiveUserRoom,
    CloseRoom,
    CreateMeetingRoom,
    CreateUserRoom,
    DescribeGuestLink,
    EndCallHere,
    EnterMeetingRoom,
    EnterUserRoom,
    Expect,
    GuestEnter,
    GuestLinkInfo,
    IssueGuestPass,
    ListMeetingSetup,
    MeetingAdminEntry,
    MeetingRoomsFor,
    MeetingRoomView,
    MeetingSetupView,
    OccupancyChanged,
    OccupancyHeard,
    OccupancyLearned,
    OccupancyWanted,
    Occupants,
    RenameMeetingRoom,
    RotateGuestLink,
    StaffChoice,
    UnitChoice,
    UserRoomAdminEntry,
    UserRoomFor,
    UserRoomsChanged,
    UserRoomView,
)
from actors.meetings.policies import OWNER_GRACE, expect_key, may_meet
from actors.meetings.rooms import MeetingRoomCall, PermanentRoomCall, UserRoomCall
from actors.messages import GuestPass, StartAgain
from actors.principal import Principal
from runtime.errors import ActorError, Refusal
from runtime.kernel import Actor, handles
from runtime.supervisor import ChildSpec, Restart, Supervisor
from storage import audit, calls, orgs, staff
from storage import meeting_rooms as store_rooms
from storage.db import Store
from storage.errors import ConflictError, NotFoundError
from storage.orgs import Unit

log = logging.getLogger(__name__)

#: A person is waiting for the page: a call that does not answer this fast is shown as unknown.
OCCUPANTS_TIMEOUT = 2.0
#: Longest guest link accepted from a URL (ours are 22 characters).
MAX_LINK = 64
#: Open pages one staff member may have watching the rooms (a console per tab).
MAX_WATCHERS_PER_USER = 20


def _forbidden() -> Refusal:
    return Refusal(refusals.FORBIDDEN, "You are not an administrator here.")


def _not_found(what: str = "meeting room") -> Refusal:
    return Refusal(refusals.NOT_FOUND, f"There is no such {what}.")


def _actor_id(principal: Principal) -> int | None:
    return int(principal.user_id) if principal.user_id else None


def _admin_entry(room: store_rooms.MeetingRoom) -> MeetingAdminEntry:
    return MeetingAdminEntry(room.id, room.unit_id, room.name, room.guest_link, room.archived)


class MeetingHost(Actor):
    """See the module docstring."""

    def __init__(
        self,
        store: Store,
        supervisor: Supervisor,
        media: MediaPort | None,
        grace: float = OWNER_GRACE,
    ) -> None:
        super().__init__()
        self.store = store
        self.supervisor = supervisor
        self.media = media
        self.grace = grace
        #: owner user id -> their open user room (read at start; changed by this actor only).
        self._user_rooms: dict[int, store_rooms.UserRoom] = {}
        #: Connections watching the rooms (``meetings.watch``) -> who is watching.
        self._watchers: dict[str, Principal] = {}
        #: room id -> (the node its call runs on, who is in it), for calls someone is in: what
        #: the consoles of this node show of calls on other nodes (see the module docstring).
        self._people_in: dict[str, tuple[str, tuple[str, ...]]] = {}

    async def on_start(self) -> None:
        await self._read_user_rooms()
        if self.registry.peers():
            self.spawn(self._learn_occupancy)

    async def _read_user_rooms(self) -> None:
        self._user_rooms = {
            r.owner_user_id: r for r in await store_rooms.list_user_rooms(self.store)
        }

    async def _learn_occupancy(self) -> None:
        """In a task: ask the other nodes' hosts who is in the calls they run."""
        replies = await ask_every_node(
            self, addresses.MEETINGS, OccupancyWanted(), OCCUPANTS_TIMEOUT
        )
        heard = tuple(h for reply in replies.values() if isinstance(reply, tuple) for h in reply)
        with contextlib.suppress(ActorError):
            self.self_ref.tell(OccupancyLearned(heard))

    # -- starting calls -------------------------------------------------------------------------
    async def _start(self, room_id: str, make: Callable[[], PermanentRoomCall]) -> str:
        address = addresses.room(room_id)
        if address not in self.registry:
            await self.supervisor.start_child(ChildSpec(address, make, Restart.TRANSIENT))
        return address

    async def _start_meeting(self, room: store_rooms.MeetingRoom) -> str:
        return await self._start(
            room.room_id, lambda: MeetingRoomCall(self.store, room.room_id, self.media)
        )

    async def _start_user_room(self, room: store_rooms.UserRoom) -> str:
        return await self._start(
            room.room_id, lambda: UserRoomCall(self.store, room.room_id, self.media, self.grace)
        )

    @handles(StartAgain)
    async def _start_again(self, msg: StartAgain) -> None:
        """A call that was running on a node that died: start it again here (or learn the node
        that claimed it first). Only a call someone was in (its call record is still open: a
        call ends its record when it ends), so a late message for a call that ended starts
        nothing; an archived room stays closed. The restarted call ends its predecessor's record
        (``close_stale_record``) and opens a new one at the first entry again."""
        if addresses.room(msg.room_id) in self.registry:
            return
        meeting = await store_rooms.meeting_room_for_room(self.store, msg.room_id)
        user_room: store_rooms.UserRoom | None = None
        if meeting is None:
            with contextlib.suppress(NotFoundError):
                user_room = await store_rooms.get_user_room(self.store, msg.room_id)
            if user_room is None:
                raise _not_found("meeting room or user room")
        if (meeting is not None and meeting.archived) or (
            user_room is not None and user_room.archived
        ):
            raise Refusal(refusals.CLOSED, "this room has been archived")
        if await calls.active_call_for_room(self.store, msg.room_id) is None:
            raise Refusal(refusals.CLOSED, "this room's call has ended")
        if meeting is not None:
            await self._start_meeting(meeting)
        elif user_room is not None:
            await self._start_user_room(user_room)

    async def _occupants(self, room_id: str) -> tuple[str, ...]:
        address = addresses.room(room_id)
        if address not in self.registry:
            return self._elsewhere(room_id)
        try:
            names: tuple[str, ...] = await self.ref(address).ask(
                Occupants(), timeout=OCCUPANTS_TIMEOUT
            )
        except (ActorError, Refusal):
            return ()
        return names

    async def _occupants_of(self, room_ids: list[str]) -> dict[str, tuple[str, ...]]:
        found: dict[str, tuple[str, ...]] = {}

        async def one(room_id: str) -> None:
            found[room_id] = await self._occupants(room_id)

        async with trio.open_nursery() as nursery:
            for room_id in room_ids:
                nursery.start_soon(one, room_id)
        return found

    def _elsewhere(self, room_id: str) -> tuple[str, ...]:
        """Who is in a call another live node runs, as its host last told; () if none."""
        known = self._people_in.get(room_id)
        if known is None or known[0] not in self.registry.peers():
            return ()  # nobody in it, or its node is gone (its call with it)
        return known[1]

    def _end_call(self, room_id: str) -> None:
        """End the room's call here, or ask every other node's host to end it where it runs.

        Not a tell to ``room/<id>`` when it is not here: a call that runs nowhere would have the
        transport hold that tell and ask for the room to be started again; the hosts answer at
        once (and a call that runs nowhere has nothing to end)."""
        if not self._end_call_on_this_node(room_id):
            tell_every_node(self, addresses.MEETINGS, EndCallHere(room_id))

    def _end_call_on_this_node(self, room_id: str) -> bool:
        """End the room's call if it runs here; whether it did."""
        address = addresses.room(room_id)
        if address not in self.registry:
            return False
        with contextlib.suppress(ActorError):
            self.ref(address).tell(CloseRoom())
        return True

    @handles(EndCallHere)
    async def _end_call_here(self, msg: EndCallHere) -> None:
        self._end_call_on_this_node(msg.room_id)

    # -- permissions ----------------------------------------------------------------------------
    async def _admin_units(self, principal: Principal) -> list[Unit]:
        if not principal.is_staff:
            return []
        return [
            u
            for u in await orgs.list_units(self.store)
            if principal.is_admin_of_unit(str(u.id), str(u.org_id))
        ]

    async def _unit_for_admin(self, principal: Principal, unit_id: int) -> Unit:
        """The unit if the sender administers it; another organisation's unit is ``forbidden``
        exactly like one that does not exist."""
        try:
            unit = await orgs.get_unit(self.store, unit_id)
        except NotFoundError:
            raise _forbidden() from None
        if not principal.is_staff or not principal.is_admin_of_unit(str(unit.id), str(unit.org_id)):
            raise _forbidden()
        return unit

    async def _meeting_for_admin(
        self, principal: Principal, meeting_id: int
    ) -> store_rooms.MeetingRoom:
        try:
            room = await store_rooms.get_meeting_room(self.store, meeting_id)
        except NotFoundError:
            raise _forbidden() from None
        await self._unit_for_admin(principal, room.unit_id)
        if room.archived:
            raise Refusal(refusals.INVALID, "This meeting room has been archived.")
        return room

    async def _audit(
        self, action: str, principal: Principal, subject: str, remote_addr: str, **details: object
    ) -> None:
        await audit.append(
            self.store,
            action,
            actor_user_id=_actor_id(principal),
            subject=subject,
            remote_addr=remote_addr,
            details=dict(details),
        )

    # -- administration -------------------------------------------------------------------------
    @handles(ListMeetingSetup)
    async def _list_setup(self, msg: ListMeetingSetup) -> MeetingSetupView:
        units = await self._admin_units(msg.principal)
        if not units:
            raise _forbidden()
        unit_ids = tuple(u.id for u in units)
        meetings = await store_rooms.list_meeting_rooms(
            self.store, unit_ids=unit_ids, include_archived=True
        )
        user_rooms = await store_rooms.list_user_rooms(self.store, unit_ids=unit_ids)
        people = await staff.list_users(self.store)
        return MeetingSetupView(
            tuple(UnitChoice(u.id, u.name) for u in units),
            tuple(_admin_entry(m) for m in meetings),
            tuple(
                UserRoomAdminEntry(r.room_id, r.unit_id, r.name, r.owner_user_id)
                for r in user_rooms
            ),
            tuple(StaffChoice(p.id, p.display_name, p.username) for p in people),
        )

    @handles(CreateMeetingRoom)
    async def _create_meeting(self, msg: CreateMeetingRoom) -> MeetingAdminEntry:
        unit = await self._unit_for_admin(msg.principal, msg.unit_id)
        name = rules.name(msg.name, "meeting room name")
        try:
            room = await store_rooms.create_meeting_room(self.store, unit.id, name)
        except ConflictError:
            raise Refusal(
                refusals.INVALID, f"The unit already has a meeting room called {name!r}."
            ) from None
        await self._audit(
            audit.MEETING_ROOM_CREATED,
            msg.principal,
            room.room_id,
            msg.remote_addr,
            meeting_id=room.id,
            name=room.name,
            unit_id=unit.id,
        )
        return _admin_entry(room)

    @handles(RenameMeetingRoom)
    async def _rename_meeting(self, msg: RenameMeetingRoom) -> MeetingAdminEntry:
        current = await self._meeting_for_admin(msg.principal, msg.meeting_id)
        name = rules.name(msg.name, "meeting room name")
        try:
            room = await store_rooms.rename_meeting_room(self.store, current.id, name)
        except ConflictError:
            raise Refusal(
                refusals.INVALID, f"The unit already has a meeting room called {name!r}."
            ) from None
        await self._audit(
            audit.MEETING_ROOM_RENAMED,
            msg.principal,
            room.room_id,
            msg.remote_addr,
            meeting_id=room.id,
            old_name=current.name,
            name=room.name,
        )
        return _admin_entry(room)

    @handles(ArchiveMeetingRoom)
    async def _archive_meeting(self, msg: ArchiveMeetingRoom) -> MeetingAdminEntry:
        current = await self._meeting_for_admin(msg.principal, msg.meeting_id)
        room = await store_rooms.archive_meeting_room(self.store, current.id)
        await self._audit(
            audit.MEETING_ROOM_ARCHIVED,
            msg.principal,
            room.room_id,
            msg.remote_addr,
            meeting_id=room.id,
            name=room.name,
        )
        self._end_call(room.room_id)
        return _admin_entry(room)

    @handles(RotateGuestLink)
    async def _rotate(self, msg: RotateGuestLink) -> MeetingAdminEntry:
        current = await self._meeting_for_admin(msg.principal, msg.meeting_id)
        room = await store_rooms.rotate_guest_link(self.store, current.id)
        await self._audit(
            audit.MEETING_LINK_ROTATED,
            msg.principal,
            room.room_id,
            msg.remote_addr,
            meeting_id=room.id,
            name=room.name,
        )
        return _admin_entry(room)

    @handles(CreateUserRoom)
    async def _create_user_room(self, msg: CreateUserRoom) -> UserRoomAdminEntry:
        unit = await self._unit_for_admin(msg.principal, msg.unit_id)
        try:
            user = await staff.get_user(self.store, msg.user_id)
        except NotFoundError:
            raise Refusal(refusals.INVALID, "There is no such staff member.") from None
        if user.id in self._user_rooms:
            raise Refusal(refusals.INVALID, f"{user.display_name} already has a user room.")
        try:
            room = await store_rooms.create_user_room(
                self.store, user.id, unit.id, user.display_name
            )
        except ConflictError:
            raise Refusal(
                refusals.INVALID, f"{user.display_name} already has a user room."
            ) from None
        self._user_rooms[user.id] = room
        tell_every_node(self, addresses.MEETINGS, UserRoomsChanged())
        await self._audit(
            audit.USER_ROOM_CREATED,
            msg.principal,
            room.room_id,
            msg.remote_addr,
            user_id=user.id,
            unit_id=unit.id,
        )
        return UserRoomAdminEntry(room.room_id, room.unit_id, room.name, room.owner_user_id)

    @handles(ArchiveUserRoom)
    async def _archive_user_room(self, msg: ArchiveUserRoom) -> bool:
        try:
            current = await store_rooms.get_user_room(self.store, msg.room_id)
        except NotFoundError:
            raise _forbidden() from None
        await self._unit_for_admin(msg.principal, current.unit_id)
        if current.archived:
            raise Refusal(refusals.INVALID, "This user room has been archived.")
        await store_rooms.archive_user_room(self.store, current.room_id)
        self._user_rooms.pop(current.owner_user_id, None)
        tell_every_node(self, addresses.MEETINGS, UserRoomsChanged())
        await self._audit(
            audit.USER_ROOM_ARCHIVED,
            msg.principal,
            current.room_id,
            msg.remote_addr,
            user_id=current.owner_user_id,
        )
        self._end_call(current.room_id)
        return True

    # -- staff ----------------------------------------------------------------------------------
    async def _views(self, principal: Principal) -> list[MeetingRoomView]:
        if not principal.is_staff:
            return []
        rooms = [
            r
            for r in await store_rooms.list_meeting_rooms(self.store)
            if may_meet(principal, r.id, r.unit_id, r.org_id)
        ]
        units = {u.id: u.name for u in await orgs.list_units(self.store)}
        people = await self._occupants_of([r.room_id for r in rooms])
        return [
            MeetingRoomView(
                r.id,
                r.room_id,
                r.name,
                r.unit_id,
                units.get(r.unit_id, ""),
                r.guest_link,
                people.get(r.room_id, ()),
            )
            for r in rooms
        ]

    @handles(MeetingRoomsFor)
    async def _rooms_for(self, msg: MeetingRoomsFor) -> tuple[MeetingRoomView, ...]:
        return tuple(await self._views(msg.principal))

    @handles(UserRoomFor)
    async def _user_room_for(self, msg: UserRoomFor) -> UserRoomView | None:
        if not msg.principal.is_staff or msg.principal.user_id is None:
            return None
        room = self._user_rooms.get(int(msg.principal.user_id))
        if room is None:
            return None
        people = await self._occupants(room.room_id)
        return UserRoomView(room.room_id, room.name, room.owner_user_id, people)

    @handles(EnterMeetingRoom)
    async def _enter_meeting(self, msg: EnterMeetingRoom) -> MeetingRoomView:
        """Start the call for a member; anyone else, another organisation's room, an archived or
        unknown one: ``not_found`` or ``forbidden``, and nothing starts."""
        try:
            room = await store_rooms.get_meeting_room(self.store, msg.meeting_id)
        except NotFoundError:
            raise _not_found() from None
        member = may_meet(msg.principal, room.id, room.unit_id, room.org_id)
        if not member and str(room.org_id) != msg.principal.org_id:
            raise _not_found()  # another organisation's room: exactly like a missing one
        if room.archived:
            raise Refusal(refusals.CLOSED, "This meeting room has been archived.")
        if not member:
            raise Refusal(
                refusals.FORBIDDEN, "You do not have the meeting room member role for this room."
            )
        address = await self._start_meeting(room)
        await self._expect(address, expect_key(msg.principal))
        unit = await orgs.get_unit(self.store, room.unit_id)
        return MeetingRoomView(
            room.id,
            room.room_id,
            room.name,
            room.unit_id,
            unit.name,
            room.guest_link,
            await self._occupants(room.room_id),
        )

    @handles(EnterUserRoom)
    async def _enter_user_room(self, msg: EnterUserRoom) -> UserRoomView:
        if not msg.principal.is_staff or msg.principal.user_id is None:
            raise _not_found("user room")
        room = self._user_rooms.get(int(msg.principal.user_id))
        if room is None:
            raise _not_found("user room")
        address = await self._start_user_room(room)
        await self._expect(address, expect_key(msg.principal))
        return UserRoomView(room.room_id, room.name, room.owner_user_id)

    async def _expect(self, address: str, key: str) -> None:
        await self.ref(address).ask(Expect(key), timeout=OCCUPANTS_TIMEOUT)

    # -- guests ---------------------------------------------------------------------------------
    async def _by_link(self, link: str) -> store_rooms.MeetingRoom:
        if not link or len(link) > MAX_LINK:
            raise Refusal(refusals.INVALID_TOKEN, "this link is not valid")
        room = await store_rooms.find_by_link(self.store, link)
        if room is None:
            raise Refusal(refusals.INVALID_TOKEN, "this link is not valid")
        return room

    @handles(DescribeGuestLink)
    async def _describe_link(self, msg: DescribeGuestLink) -> GuestLinkInfo:
        room = await self._by_link(msg.link)
        return GuestLinkInfo(room.name)

    @handles(GuestEnter)
    async def _guest_enter(self, msg: GuestEnter) -> GuestPass:
        room = await self._by_link(msg.link)
        address = await self._start_meeting(room)
        reply: GuestPass = await self.ref(address).ask(
            IssueGuestPass(msg.name, msg.remote_addr), timeout=OCCUPANTS_TIMEOUT
        )
        return reply

    # -- consoles watching --------------------------------------------------------------------
    @handles(Inbound)
    async def _inbound(self, msg: Inbound) -> dict[str, object]:
        if msg.type == "meetings.watch":
            if not msg.principal.is_staff:
                raise Refusal(refusals.FORBIDDEN, "only staff watch the meeting rooms")
            mine = [c for c, p in self._watchers.items() if p.user_id == msg.principal.user_id]
            if msg.conn not in self._watchers and len(mine) >= MAX_WATCHERS_PER_USER:
                raise Refusal(refusals.BUSY, "too many open pages watch the meeting rooms")
            self._watchers[msg.conn] = msg.principal
            own = await self._user_room_for(UserRoomFor(msg.principal))
            return {
                "rooms": [
                    {"id": v.id, "people": list(v.people)} for v in await self._views(msg.principal)
                ],
                "user_room": None if own is None else {"people": list(own.people)},
            }
        if msg.type == "meetings.unwatch":
            self._watchers.pop(msg.conn, None)
            return {}
        raise Refusal(refusals.UNKNOWN_TYPE, f"the meetings host does not handle {msg.type}")

    @handles(ConnectionClosed)
    async def _closed(self, msg: ConnectionClosed) -> None:
        self._watchers.pop(msg.conn, None)

    @handles(UserRoomsChanged)
    async def _user_rooms_changed(self, msg: UserRoomsChanged) -> None:
        await self._read_user_rooms()

    @handles(OccupancyChanged)
    async def _occupancy(self, msg: OccupancyChanged) -> None:
        """A call of this node: keep it, tell the other nodes' hosts, push to this node's."""
        heard = OccupancyHeard(msg.room_id, msg.people, self.registry.node)
        self._keep(heard)
        tell_every_node(self, addresses.MEETINGS, heard)
        await self._push_occupancy(msg.room_id, msg.people)

    @handles(OccupancyHeard)
    async def _occupancy_elsewhere(self, msg: OccupancyHeard) -> None:
        self._keep(msg)
        await self._push_occupancy(msg.room_id, msg.people)

    @handles(OccupancyWanted)
    async def _occupancy_wanted(self, msg: OccupancyWanted) -> tuple[OccupancyHeard, ...]:
        here = self.registry.node
        return tuple(
            OccupancyHeard(room_id, people, here)
            for room_id, (node, people) in sorted(self._people_in.items())
            if node == here and addresses.room(room_id) in self.registry
        )

    @handles(OccupancyLearned)
    async def _occupancy_learned(self, msg: OccupancyLearned) -> None:
        for heard in msg.heard:
            if heard.room_id not in self._people_in:  # what was told since is newer
                self._keep(heard)
                await self._push_occupancy(heard.room_id, heard.people)

    def _keep(self, heard: OccupancyHeard) -> None:
        if heard.people:
            self._people_in[heard.room_id] = (heard.node, heard.people)
        else:
            self._people_in.pop(heard.room_id, None)

    async def _push_occupancy(self, room_id: str, people: tuple[str, ...]) -> None:
        if not self._watchers:
            return
        owner = next((r for r in self._user_rooms.values() if r.room_id == room_id), None)
        if owner is not None:
            event = Push("meetings.occupancy", {"user_room": True, "people": list(people)})
            self._push(event, lambda p: p.user_id == str(owner.owner_user_id))
            return
        room = await store_rooms.meeting_room_for_room(self.store, room_id)
        if room is None:
            return
        event = Push("meetings.occupancy", {"id": room.id, "people": list(people)})
        self._push(event, lambda p: may_meet(p, room.id, room.unit_id, room.org_id))

    def _push(self, event: Push, may_see: Callable[[Principal], bool]) -> None:
        for conn, principal in list(self._watchers.items()):
            if not may_see(principal):
                continue
            try:
                self.ref(conn).tell(event)
            except ActorError:
                self._watchers.pop(conn, None)
