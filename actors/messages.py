"""Messages between the web pages, waiting areas and rooms (the gateway's are in ``inbound``).

Kept in one module so both sides of every conversation import the same definitions. Replies are
plain dataclasses or dicts (dicts when they go straight onto the wire).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from actors.principal import AreaPlace, Principal

if TYPE_CHECKING:
    from storage.callers import RoomRestore

# -- the area host ("areas") -------------------------------------------------------------------


@dataclass(frozen=True)
class FindArea:
    """Resolve a public link's slug to the area's address (``area/<id>``), or refuse not_found."""

    slug: str = field(repr=False)


@dataclass(frozen=True)
class AreasFor:
    """The waiting areas a staff member may work in (provider role), for their dashboard."""

    principal: Principal


@dataclass(frozen=True)
class AreaSummary:
    id: int
    name: str
    unit_id: int
    slug: str = field(repr=False)


@dataclass(frozen=True)
class ReloadArea:
    """Start the actor of a new area, or have a running one re-read its edited settings in place.

    Sent to the host (``areas``), which forwards it to a running ``area/<id>``: the queue and the
    providers watching it survive a settings change.
    """

    area_id: int


@dataclass(frozen=True)
class AdoptArea:
    """Start ``area/<id>`` on this node: another node handed it over (a node joined and this one
    is now the area's home), or asks for it to run here. Sent to a node's ``node/<id>`` desk,
    which passes it to its host (``areas``). ``watchers`` are the connections that watched it
    where it ran before: the area sends them ``queue.snapshot`` when it starts here."""

    area_id: int
    watchers: tuple[str, ...] = ()


@dataclass(frozen=True)
class NodeReady:
    """Asked of a node's ``node/<id>`` desk before areas are handed to it: the desk starts after
    the node's hosts, so an answer means an ``AdoptArea`` will be taken, not dropped by a node
    that joined the cluster a moment ago and is still starting (the watchers it carries would be
    lost with it). Answered with True."""


@dataclass(frozen=True)
class GiveUpArea:
    """Stop ``area/<id>`` on this node (its home is another node now); the host answers with the
    connections that watched it, for the node that takes it over."""

    area_id: int


@dataclass(frozen=True)
class ShowQueue:
    """Send ``queue.snapshot`` to these connections, which have just become the area's
    watchers while it ran (watchers handed over from another node, found it already started
    here by an arrival): without it their list would miss every caller before them."""

    conns: tuple[str, ...]


# -- a waiting area ("area/<id>") --------------------------------------------------------------


@dataclass(frozen=True)
class DescribeArea:
    """Public facts for the arrival page: name, open now, next opening, form, consent."""


@dataclass(frozen=True)
class AreaPublic:
    id: int
    name: str
    slug: str = field(repr=False)
    unit_id: int
    time_zone: str
    open_now: bool
    next_opening: str | None  # ISO-8601 UTC
    form_fields: tuple[dict[str, Any], ...]
    consent_text: str
    #: False: an administrator switched the area off; it takes no callers, whatever the hours.
    active: bool = True


@dataclass(frozen=True)
class DescribeForLeaflet:
    """What a printed caller leaflet shows; only for providers (or admins) of the area."""

    principal: Principal


@dataclass(frozen=True)
class AreaLeaflet:
    id: int
    name: str
    slug: str = field(repr=False)
    time_zone: str
    #: (weekday 0 = Monday, opens "HH:MM", closes "HH:MM") in the area's time zone.
    opening_hours: tuple[tuple[int, str, str], ...]


@dataclass(frozen=True)
class Arrive:
    """A service user submitted the arrival form. Persisted before the reply."""

    details: dict[str, str] = field(repr=False)
    remote_addr: str = ""


@dataclass(frozen=True)
class ArrivalTicket:
    caller_id: str
    room_id: str
    token: str = field(repr=False)  # "<room id>.<secret>": held by the caller's browser only


@dataclass(frozen=True)
class TransferIn:
    """Another area hands over a caller; refused unless the sender is a referrer here."""

    caller_id: str
    room_id: str
    details: dict[str, str] = field(repr=False)
    arrived_at: float
    from_area_id: int
    from_area_name: str
    from_unit_id: int
    principal: Principal


@dataclass(frozen=True)
class CallerUpdate:
    """A room reports on its caller: presence, who is with them, status, their pre-call check."""

    caller_id: str
    status: str | None = None
    connected: bool | None = None
    with_names: tuple[str, ...] | None = None
    #: ``precheck.result``'s body, checked by the gateway (issue 16).
    precheck: dict[str, Any] | None = None


@dataclass(frozen=True)
class CallerGone:
    """The caller's room ended (``ended``) or the caller left for good (``left``)."""

    caller_id: str
    reason: str


@dataclass(frozen=True)
class HoldFromCall:
    """A call puts its caller on hold: the same rules and effects as a provider's ``caller.hold``.

    Sent by the call to its area instead of forging a client frame; ``principal`` is the staff member
    who pressed hold in the call, ``remote_addr`` their address for the audit trail.
    """

    caller_id: str
    principal: Principal
    remote_addr: str = ""


# -- a room ("room/<id>") ----------------------------------------------------------------------


@dataclass(frozen=True)
class OpenRoom:
    """Asked of the room host: make sure ``room/<id>`` runs (it restores itself from storage)."""

    room_id: str


@dataclass(frozen=True)
class StartAgain:
    """Asked of the host or desk that starts a kind of call (meetings, consult, group,
    on-demand): start ``room/<id>`` again, restored from the store, under the supervisor it runs
    under; answered once it runs (here, or on the node whose claim came first: never two
    copies). Sent by a cluster node whose message for the room found no owner (its node died);
    a call that has ended, or that is not this host's kind, is refused (``closed``,
    ``not_found``) and nothing starts."""

    room_id: str


@dataclass(frozen=True)
class OpenRooms:
    """Asked of the room host by an area that admitted a batch of arrivals: start their new rooms
    together, each from the snapshot the arrival's transaction just wrote (no storage read; a
    room that restarts later restores itself from storage as always)."""

    snapshots: tuple[RoomRestore, ...]


@dataclass(frozen=True)
class ProviderJoining:
    """The area marked the caller as joined by ``name``: the caller's page says someone is coming.

    ``user_id`` is that provider's: the room lets them (and only them) in unannounced (issue 15)."""

    name: str
    user_id: str | None = None


@dataclass(frozen=True)
class HoldCaller:
    """Back to the waiting area: staff leave the call, the caller waits (and gets no media)."""


@dataclass(frozen=True)
class EndRoom:
    reason: str = "ended"


@dataclass(frozen=True)
class AreaChanged:
    """After a transfer: the room now belongs to another area."""

    area_id: int
    area_name: str
    place: AreaPlace


@dataclass(frozen=True)
class ClaimInvite:
    """An invite link was opened: consume it (single use) and issue the guest's own token."""

    secret: str = field(repr=False)
    display_name: str = field(repr=False)
    remote_addr: str = ""


@dataclass(frozen=True)
class FindRoomPage:
    """Asked of the room host by a staff page of one room (``/call/<id>``: kind ``caller``;
    ``/consult/call/<id>``: ``consult_now``; ``/ondemand/session/<id>``: ``ondemand``): answers
    None when the room is of that kind and of one of the staff member's organisations, else
    refuses ``not_found``, the same for another organisation's room as for one that does not
    exist, so no page shell is shown for either (issue 15). Entering stays the room's decision."""

    principal: Principal
    room_id: str
    kind: str


@dataclass(frozen=True)
class CheckInvite:
    """An invite link's landing page is opened: is it an open invitation into this room? Uses
    nothing; answers None, or refuses exactly as `ClaimInvite` would (one answer for every reason)."""

    secret: str = field(repr=False)


@dataclass(frozen=True)
class GuestPass:
    token: str = field(repr=False)
    room_id: str
    area_name: str


@dataclass
class RoomSnapshot:
    """What a room reports about itself (tests, the call page's first render)."""

    room_id: str
    state: str
    area_id: int
    participants: list[str] = field(default_factory=list, repr=False)


# -- the directory and staff connections (issue 15: rights as the directory holds them now) --------


@dataclass(frozen=True)
class StaffConnected:
    """Told to the directory by the gateway when a staff ``hello`` with a session cookie succeeds,
    and again once a minute (with a heartbeat, so a restarted directory knows it again): this
    connection lives on that session with that principal; close it when the session ends."""

    conn: str
    session_id: str = field(repr=False)
    principal: Principal


@dataclass(frozen=True)
class StaffActive:
    """Told to the directory (at most once a minute) while a staff connection is in use: it keeps
    the session from idling out. Registers the connection too, like :class:`StaffConnected`."""

    conn: str
    session_id: str = field(repr=False)
    principal: Principal


@dataclass(frozen=True)
class StaffDisconnected:
    """Told to the directory when a staff connection closes."""

    conn: str


@dataclass(frozen=True)
class GrantsChanged:
    """Told to the directory after a user's grants, active flag or sessions changed in storage:
    their open connections get the rights they hold now, or are closed."""

    user_id: str


@dataclass(frozen=True)
class PrincipalChanged:
    """Told by the directory to a staff connection: requests from now on carry this principal."""

    principal: Principal
