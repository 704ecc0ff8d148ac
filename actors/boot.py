"""Start Waitroom's long-lived actors, in dependency order, under supervisors the server owns.

The supervision tree (``docs/lifecycle.md`` draws it with the server's own tasks)::

    root (one_for_one)             directory, sign-in, system/echo, rooms, areas, admin/setup,
                                   outbox, admin
    rooms supervisor (one_for_one) room/<id> ... (transient: gone when their call ends), each
                                   also reachable as call/<call id>
    areas supervisor (one_for_one) area/<id> ... (permanent: restored from storage on restart)

The composition root (``waitroom.server``) calls :func:`start_actors` once storage is migrated; rooms
and connections are started on demand afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

import trio

from actors import addresses
from actors.admin.outbox import OutboxActor
from actors.admin.reports import AdminActor
from actors.admin.retention import RetentionActor
from actors.admin.setup import SetupAdmin
from actors.calls.invite_desk import InviteDesk
from actors.calls.media import MediaPort
from actors.consult.desk import LINK_LIFETIME, ConsultDesk
from actors.group.breakout_plan import CLOSING_COUNTDOWN
from actors.group.breakouts import breakout_factory
from actors.group.desk import GroupDesk
from actors.meetings.host import MeetingHost
from actors.ondemand.queue import OnDemandHost
from actors.staff.directory import Directory
from actors.staff.notices import NoticeBoard
from actors.staff.signin import SignInDesk
from actors.system import Echo
from actors.waiting.areas import AreaHost
from actors.waiting.rooms import RoomHost
from runtime.supervisor import ChildSpec, Supervisor
from storage.sessions import DEFAULT_IDLE_TIMEOUT

if TYPE_CHECKING:
    from services.sender import Sender
    from storage.db import Store
    from storage.outbox import Channel
    from storage.retention import RetentionPolicy

#: Rooms restart quickly from storage; a handful of bad messages should not take every room down.
ROOM_MAX_RESTARTS = 20


async def start_actors(
    nursery: trio.Nursery,
    root: Supervisor,
    store: Store,
    media: MediaPort | None = None,
    senders: dict[Channel, Sender] | None = None,
    retention: RetentionPolicy | None = None,
    consult_link_seconds: float = LINK_LIFETIME,
    staff_idle_timeout: timedelta = DEFAULT_IDLE_TIMEOUT,
    supervisor: Callable[..., Supervisor] = Supervisor,
    breakout_countdown: float = CLOSING_COUNTDOWN,
) -> None:
    """Start the directory and the sign-in desk, the echo probe, the room and area hosts (which
    restore the queues), set-up, the outbox (``senders`` per channel; by default it only records,
    see :mod:`services.sender`) and the admin reports.

    ``supervisor(registry, name, **options)`` makes the supervisors of the on-demand kinds
    (rooms, areas, on-demand queues and sessions, meeting calls); a cluster node passes one that
    starts them through placement (``cluster.PlacingSupervisor``, issue 18)."""
    registry = root.registry
    rooms: Supervisor = await nursery.start(
        supervisor(registry, "rooms", max_restarts=ROOM_MAX_RESTARTS).run
    )
    areas: Supervisor = await nursery.start(supervisor(registry, "areas").run)
    ondemand_queues: Supervisor = await nursery.start(supervisor(registry, "ondemand").run)
    ondemand_sessions: Supervisor = await nursery.start(
        supervisor(registry, "ondemand-sessions", max_restarts=ROOM_MAX_RESTARTS).run
    )
    # ``staff_idle_timeout``: a staff session nobody uses for this long is over (issue 15).
    await root.start_child(
        ChildSpec(addresses.DIRECTORY, lambda: Directory(store, idle_timeout=staff_idle_timeout))
    )
    await root.start_child(
        ChildSpec(addresses.SIGN_IN, lambda: SignInDesk(store, idle_timeout=staff_idle_timeout))
    )
    await root.start_child(ChildSpec(addresses.NOTICES, lambda: NoticeBoard(store)))
    await root.start_child(ChildSpec(addresses.ECHO, Echo))
    # Invite links into rooms that are not running: the same check as a live room's (issue 15).
    await root.start_child(ChildSpec(addresses.INVITES, lambda: InviteDesk(store)))
    await root.start_child(ChildSpec(addresses.ROOMS, lambda: RoomHost(store, rooms, media)))
    await root.start_child(ChildSpec(addresses.AREAS, lambda: AreaHost(store, areas)))
    # Meeting rooms and user rooms (issue 13): their calls run under a supervisor of their own.
    meetings: Supervisor = await nursery.start(
        supervisor(registry, "meetings", max_restarts=ROOM_MAX_RESTARTS).run
    )
    await root.start_child(
        ChildSpec(addresses.MEETINGS, lambda: MeetingHost(store, meetings, media))
    )
    await root.start_child(ChildSpec(addresses.SETUP, lambda: SetupAdmin(store)))
    await root.start_child(ChildSpec(addresses.OUTBOX, lambda: OutboxActor(store, senders)))
    # Consult Now: its calls run under the rooms supervisor, as room/<id> (issue 13).
    # ``consult_link_seconds``: how long a link is valid, and what each extension adds.
    await root.start_child(
        ChildSpec(
            addresses.CONSULT,
            lambda: ConsultDesk(
                store,
                rooms,
                media,
                lifetime=consult_link_seconds,
                extension=consult_link_seconds,
            ),
        )
    )
    # Group consultations (issue 12): their calls run under the rooms supervisor, as room/<id>,
    # and so do their breakout desks and each open breakout room's call. ``breakout_countdown``:
    # the seconds every room counts down before its people are back in the main call.
    breakouts = breakout_factory(store, rooms, media, countdown=breakout_countdown)
    await root.start_child(
        ChildSpec(addresses.GROUP, lambda: GroupDesk(store, rooms, media, breakouts))
    )
    await root.start_child(ChildSpec(addresses.ADMIN, lambda: AdminActor(store)))
    # Forgets personal data as the retention policy says (issue 15).
    await root.start_child(ChildSpec(addresses.RETENTION, lambda: RetentionActor(store, retention)))
    await root.start_child(
        ChildSpec(
            addresses.ONDEMAND,
            lambda: OnDemandHost(store, ondemand_queues, ondemand_sessions, media),
        )
    )
