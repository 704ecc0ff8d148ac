"""Every actor address Waitroom uses, and the only place that builds one.

Kinds with an id (one actor each): ``area/<id>``, ``room/<id>``, ``call/<id>``, ``conn/<n>``.
Fixed names (one actor per node): the directory, the sign-in desk, the hosts, set-up, reports, the
outbox and the echo probe. Pages, the gateway and actors call these constructors; nobody spells
``f"room/{...}"`` by hand.
"""

from __future__ import annotations

from runtime import address as _address
from runtime.address import Address

AREA = "area"
ROOM = "room"
CALL = "call"
CONN = "conn"
SYSTEM = "system"
ONDEMAND_KIND = "ondemand"
BREAKOUTS = "breakouts"
#: A node's desk and its per-node actors (the runtime routes ``node/<id>/<name>``).
NODE_KIND = _address.NODE_KIND


def area(area_id: object) -> Address:
    """A waiting area's actor (``area/12``)."""
    return Address.of(AREA, area_id)


def room(room_id: str) -> Address:
    """A caller's room: the call actor a caller, their providers and guests talk to."""
    return Address.of(ROOM, room_id)


def call(call_id: str) -> Address:
    """A call by its own id (the media plane's events are keyed by it)."""
    return Address.of(CALL, call_id)


def ondemand(org_id: object) -> Address:
    """An organisation's on-demand queue (``ondemand/3``; issue 14)."""
    return Address.of(ONDEMAND_KIND, org_id)


def group_breakouts(session_id: object) -> Address:
    """The breakout desk of one group session (``breakouts/4``; issue 12)."""
    return Address.of(BREAKOUTS, session_id)


def node_desk(node_id: str) -> Address:
    """One cluster node's desk (``node/<id>``): other nodes hand it the areas it should host."""
    return Address.of(NODE_KIND, node_id)


def on_node(node_id: str, name: Address) -> Address:
    """The per-node actor ``name`` (``NOTICES``, ``MEETINGS``, ``CONSULT``) of one cluster node
    (``node/<id>/notices``): how a node's copy tells the copy on another node."""
    return _address.on_node(node_id, name)


def conn(number: object) -> Address:
    """One websocket connection's actor in the gateway."""
    return Address.of(CONN, number)


DIRECTORY = Address.named("directory")
SIGN_IN = Address.named("sign-in")
AREAS = Address.named("areas")
ROOMS = Address.named("rooms")
#: Meeting rooms and user rooms: starts their room/<id> calls on demand (actors/meetings).
MEETINGS = Address.named("meetings")
SETUP = Address.of("admin", "setup")
ADMIN = Address.named("admin")
OUTBOX = Address.named("outbox")
RETENTION = Address.of("admin", "retention")
ECHO = Address.of(SYSTEM, "echo")
#: The staff notice board (the bell; issue 14) and the on-demand queues' host.
NOTICES = Address.named("notices")
ONDEMAND = Address.named("ondemand")
#: The Consult Now desk: sends single-use call links, their timers, opening them (issue 13).
CONSULT = Address.named("consult")
#: Group consultations: creates sessions, hands out arrivals' tokens, starts their calls (issue 12).
GROUP = Address.named("group")
#: Invite links into rooms that are not running: refused after a live room's work (issue 15).
INVITES = Address.named("invites")
