"""What pages ask of the group desk (``group``), and what the group call and its breakout desk
tell each other (issue 12).

Kept apart from the actors so the web layer imports only these definitions, and so the group call
(``actors.group.call``) and the breakout desk (``actors.group.breakouts``) are written against one
contract. Pages know a session by its integer ``id``; a session's call runs at ``room/<room_id>``;
its participants' tokens are ``<room_id>.<secret>`` like every participant token
(``docs/protocol.md``, "Participant tokens").

**The session link.** One link per session (``/g/<link>``), shared with every registrant by email,
text message, copy or a printed leaflet, as a waiting area's link is. Staff must be able to show it
again whenever they share it, so, like a waiting area's slug and a meeting room's guest link, it is
stored as it is (128 random bits); rotating it (:class:`RotateGroupLink`) makes the old one open
nothing. What is hashed is each arrival's own participant token (``room_tokens``): a leaked link
lets nobody in without a moderator admitting them, a leaked token is one person's seat.

**People.** Every person of a session has a *member id*, the ``id`` every ``group.*`` frame names:
``p-<participant id>`` for a participant (the same from arrival, through waiting, admission,
sending back and reconnecting) and ``s-<user id>`` for a staff member (all their tabs).

**Breakouts** (``group.breakout.*`` frames). The group call forwards each such frame, as it came,
to the session's breakout desk at :func:`actors.addresses.group_breakouts` (``breakouts/<session
id>``) as a :class:`BreakoutFrame` (an ask; the desk's answer is the frame's reply, its refusal
the frame's refusal). The desk tells the group call (``room/<room_id>``) :class:`PushToMembers`
for its events and :class:`InBreakout` when people go into a breakout room and come back; the group
call tells the desk :class:`MembersChanged` whenever the admitted participants change and
:class:`GroupEnded` when the session ends. **Who starts the desk:** the group call, on the first
``group.breakout.*`` frame, under the supervisor its own desk runs calls under, from the factory
it was given (:data:`BreakoutFactory`, called with the :class:`BreakoutSetup`; transient restart).
A participant moving into a breakout room gets a fresh participant token for that room from the
breakout desk in the event ``group.breakout.move {room, token}``; the page opens a second
websocket with it (the gateway's "own room only" rule stays).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from actors.inbound import Inbound
from actors.principal import Principal

if TYPE_CHECKING:
    from runtime.kernel import Actor
    from storage.group_sessions import GroupSession

#: At most this many participants in one session (seed 002: "up to 60 participants").
MAX_CAPACITY = 60
#: At most this many moderators (staff) besides the participants.
MAX_MODERATORS = 6
#: Sessions run four hours at most from their start (seed 002).
MAX_SECONDS = 4 * 3600
#: Everyone is warned this many seconds before the end (15 and 5 minutes).
WARNINGS = (15 * 60, 5 * 60)
MAX_TITLE = 120
MAX_NAME = 80
MAX_CONTACT = 254
#: Most registrations one session keeps.
MAX_REGISTRATIONS = 200
#: ``room.state``'s ``kind`` of a group session's call.
KIND = "group"

#: Member id prefixes (see the module docstring).
PARTICIPANT_PREFIX = "p-"
STAFF_PREFIX = "s-"


def participant_member(participant_id: str) -> str:
    return f"{PARTICIPANT_PREFIX}{participant_id}"


def staff_member(user_id: object) -> str:
    return f"{STAFF_PREFIX}{user_id}"


# -- settings a session is created with -------------------------------------------------------------


@dataclass(frozen=True)
class Privacy:
    """Per-session privacy for group therapy (all off: everyone sees everyone's full name)."""

    #: Participants are shown to each other (and to themselves) by their first name only.
    first_names_only: bool = False
    #: Participants do not see who else takes part (only the moderators and themselves by name;
    #: the others' tiles carry no name).
    hide_participant_list: bool = False
    #: Participants may chat privately with the moderators only, not with each other.
    no_private_chat: bool = False

    @classmethod
    def of(cls, session: GroupSession) -> Privacy:
        """A stored session's settings."""
        return cls(session.first_names_only, session.hide_participant_list, session.no_private_chat)


@dataclass(frozen=True)
class Registrant:
    """Someone registered for the session in advance (name, and how to reach them)."""

    name: str = field(repr=False)
    contact: str = field(default="", repr=False)


# -- pages -> the desk (``group``) ------------------------------------------------------------------


@dataclass(frozen=True)
class CreateGroupSession:
    """Staff with the unit's provider role (or its admins) create a session; replies its
    :class:`SessionDetail`. ``moderator_ids`` are staff user ids of the organisation (the creator
    is added if missing). Refuses ``invalid`` (detail says which field), ``forbidden``,
    ``not_found`` (a unit or user of another organisation answers like a missing one)."""

    principal: Principal
    unit_id: int
    title: str
    starts_at: datetime
    capacity: int = MAX_CAPACITY
    moderator_ids: tuple[int, ...] = ()
    privacy: Privacy = field(default_factory=Privacy)
    registrants: tuple[Registrant, ...] = ()
    remote_addr: str = ""


@dataclass(frozen=True)
class GroupSessionsFor:
    """The sessions a staff member moderates or administers in their organisation (one unit if
    ``unit_id``), soonest first, ended ones last; replies ``tuple[SessionSummary, ...]``."""

    principal: Principal
    unit_id: int | None = None
    include_ended: bool = False


@dataclass(frozen=True)
class GroupSessionDetail:
    """One session with its link and registrations, for its moderators and the unit's admins;
    replies :class:`SessionDetail`; another organisation's id answers ``not_found``."""

    principal: Principal
    session_id: int


@dataclass(frozen=True)
class RegisterForSession:
    """Add registrants to a session not ended; replies the :class:`SessionDetail`."""

    principal: Principal
    session_id: int
    registrants: tuple[Registrant, ...]
    remote_addr: str = ""


@dataclass(frozen=True)
class RemoveRegistration:
    """Remove one registration (by its id); replies the :class:`SessionDetail`."""

    principal: Principal
    session_id: int
    registration_id: int
    remote_addr: str = ""


@dataclass(frozen=True)
class RotateGroupLink:
    """Give the session a new link (the old one opens nothing); replies :class:`SessionDetail`."""

    principal: Principal
    session_id: int
    remote_addr: str = ""


@dataclass(frozen=True)
class CancelGroupSession:
    """End a session for good (before or while it runs: everyone in its call is let go);
    replies :class:`SessionDetail`."""

    principal: Principal
    session_id: int
    remote_addr: str = ""


@dataclass(frozen=True)
class GroupSetupFor:
    """(Added by the pages helper.) What the "new session" form offers this staff member: the
    units where they may create a session (provider role there, or its admins) and the
    organisation's active staff to pick moderators from; replies :class:`GroupSetupView` (with no
    such unit, ``units`` is empty)."""

    principal: Principal


@dataclass(frozen=True)
class SendGroupLink:
    """(Added by the pages helper.) "Share link" of a session: a moderator (or the unit's admin)
    sends the session's link to one person by ``email`` or ``sms``. The desk checks the sender,
    queues the message at the outbox (``actors.admin.outbox.SendMessage``) and audits it; replies
    the outbox's ``OutboxMessage`` (its ``status`` says sent, queued or failed). ``body`` already
    carries the link (the page writes it in the recipient's language)."""

    principal: Principal
    session_id: int
    channel: str
    recipient: str = field(repr=False)
    subject: str
    body: str = field(repr=False)
    remote_addr: str = ""


@dataclass(frozen=True)
class CheckGroupLink:
    """The link's landing page (a GET; link previews fetch it too): changes nothing. Replies a
    :class:`GroupLinkStatus`, never refuses for the session's state."""

    link: str = field(repr=False)


@dataclass(frozen=True)
class ArriveGroup:
    """Someone opened the link and gave their name: a participant and their token are created,
    they wait in the group waiting area once their page enters the room. Replies a
    :class:`GroupPass`; refuses ``invalid_token`` (unknown or rotated link), ``group_locked``,
    ``ended``, ``invalid`` (no name, or a name or contact too long), ``full`` (the session has
    had 600 arrivals). (A full waiting area, 200
    people, refuses their ``room.enter`` with ``full``.)"""

    link: str = field(repr=False)
    name: str = field(repr=False)
    contact: str = field(default="", repr=False)
    remote_addr: str = ""


# -- the desk's answers -----------------------------------------------------------------------------


@dataclass(frozen=True)
class UnitChoice:
    """(Added by the pages helper.) A unit the asker may create sessions in."""

    id: int
    name: str


@dataclass(frozen=True)
class GroupSetupView:
    """(Added by the pages helper.) The answer to :class:`GroupSetupFor`."""

    units: tuple[UnitChoice, ...]
    #: The organisation's active staff (``ModeratorView`` is defined below).
    staff: tuple[ModeratorView, ...]


@dataclass(frozen=True)
class GroupLinkStatus:
    """``state``: scheduled | running | locked | ended | unknown; the rest is empty if unknown."""

    state: str
    title: str = ""
    starts_at: datetime | None = None
    unit_name: str = ""
    org_name: str = ""


@dataclass(frozen=True)
class GroupPass:
    """The arrival's participant token (for the websocket hello) and where it leads."""

    token: str = field(repr=False)
    room_id: str
    session_id: int
    participant_id: str
    title: str


@dataclass(frozen=True)
class SessionSummary:
    id: int
    unit_id: int
    unit_name: str
    title: str
    starts_at: datetime
    capacity: int
    #: scheduled | running | ended (``locked`` is :attr:`locked`).
    state: str
    locked: bool
    room_id: str
    registrations: int
    #: Whether the asker is one of its moderators (else they see it as the unit's admin).
    moderating: bool


@dataclass(frozen=True)
class RegistrationView:
    id: int
    name: str = field(repr=False)
    contact: str = field(repr=False)
    created_at: datetime
    #: The participant who arrived under this registration (matched by name), if any.
    arrived: bool


@dataclass(frozen=True)
class ModeratorView:
    user_id: int
    display_name: str


@dataclass(frozen=True)
class SessionDetail:
    """A session as its moderators see it on the page that shares it (link included)."""

    summary: SessionSummary
    #: The link's secret part: the page builds ``<base url>/g/<link>``.
    link: str = field(repr=False)
    privacy: Privacy
    moderators: tuple[ModeratorView, ...]
    registrations: tuple[RegistrationView, ...]
    started_at: datetime | None
    ended_at: datetime | None
    end_reason: str


# -- the group call <-> its breakout desk -----------------------------------------------------------


@dataclass(frozen=True)
class GroupMember:
    """An admitted participant of the main call, as the breakout desk assigns them."""

    #: The participant's member id (``p-...``), the id ``group.*`` frames name.
    participant_id: str
    display_name: str = field(repr=False)
    first_name: str = field(repr=False)


@dataclass(frozen=True)
class BreakoutFrame:
    """A ``group.breakout.*`` client frame, forwarded by the group call as it came (an ask: the
    desk's reply or refusal goes back to the client). ``is_moderator``: the sender may run the
    session; ``participants``: everyone admitted to the main call right now."""

    inbound: Inbound
    is_moderator: bool
    participants: tuple[GroupMember, ...] = field(repr=False)


@dataclass(frozen=True)
class PushToMembers:
    """Desk -> group call: push event ``type`` with ``body`` to these members' connections in
    the main call and its waiting area (member ids, staff ``s-`` ids too; ``None``: everyone)."""

    participant_ids: tuple[str, ...] | None
    type: str
    body: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class InBreakout:
    """Desk -> group call: these participants are in breakout room ``room_id`` now (their media
    in the main call is closed, the moderator sees them "in" that room), or back (``None``)."""

    participant_ids: tuple[str, ...]
    room_id: str | None
    #: The room's name as the moderator gave it ("Room 1"), shown next to them.
    room_name: str = ""


@dataclass(frozen=True)
class MembersChanged:
    """Group call -> desk: the admitted participants now (someone was admitted, sent back,
    removed or left for good)."""

    participants: tuple[GroupMember, ...] = field(repr=False)


@dataclass(frozen=True)
class GroupEnded:
    """Group call -> desk: the session has ended (``reason``); close every room and stop."""

    reason: str


@dataclass(frozen=True)
class BreakoutSetup:
    """What the breakout desk of one session is started with."""

    session_id: int
    #: The main call's room id: the desk tells ``room/<room_id>``.
    room_id: str
    org_id: int
    unit_id: int
    title: str
    privacy: Privacy
    #: Moderators' staff user ids (unit and org admins may run the session too: the group call
    #: says so per frame in :attr:`BreakoutFrame.is_moderator`).
    moderator_ids: tuple[int, ...]


#: Builds the breakout desk actor of one session (wired at boot from ``actors.group.breakouts``).
BreakoutFactory = Callable[[BreakoutSetup], "Actor"]
