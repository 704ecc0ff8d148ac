"""Start Waitroom's long-lived actors, in dependency order, under supervisors the server owns.

The supervision tree::

    root (one_for_one)            directory, system/echo, rooms, areas, outbox, admin
    rooms supervisor (one_for_one) room/<id> ... (transient: gone when their call ends)
    areas supervisor (one_for_one) area/<id> ... (permanent: restored from storage on restart)

The composition root (``waitroom.server``) calls :func:`start_actors` once storage is migrated; rooms
and connections are started on demand afterwards.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from actors.admin.outbox import OUTBOX_ADDRESS, OutboxActor
from actors.admin.reports import ADMIN_ADDRESS, AdminActor
from actors.admin.setup import SETUP_ADDRESS, SetupAdmin
from actors.staff.directory import DIRECTORY_ADDRESS, Directory
from actors.staff.signin import SIGN_IN_ADDRESS, SignInDesk
from actors.system import ECHO_ADDRESS, Echo
from actors.waiting.areas import AREAS_ADDRESS, ROOMS_ADDRESS, AreaHost
from actors.waiting.rooms import MediaPort, RoomHost
from runtime.supervisor import ChildSpec, Supervisor

if TYPE_CHECKING:
    from services.sender import Sender
    from storage.db import Store
    from storage.outbox import Channel

#: Rooms restart quickly from storage; a handful of bad messages should not take every room down.
ROOM_MAX_RESTARTS = 20


async def start_actors(
    nursery: trio.Nursery,
    root: Supervisor,
    store: Store,
    media: MediaPort | None = None,
    senders: dict[Channel, Sender] | None = None,
) -> None:
    """Start the directory and the sign-in desk, the echo probe, the room and area hosts (which restore the queues) and
    the outbox (``senders`` per channel; by default it only records, see :mod:`services.sender`)."""
    registry = root.registry
    rooms: Supervisor = await nursery.start(
        Supervisor(registry, "rooms", max_restarts=ROOM_MAX_RESTARTS).run
    )
    areas: Supervisor = await nursery.start(Supervisor(registry, "areas").run)
    await root.start_child(ChildSpec(DIRECTORY_ADDRESS, lambda: Directory(store)))
    await root.start_child(ChildSpec(SIGN_IN_ADDRESS, lambda: SignInDesk(store)))
    await root.start_child(ChildSpec(ECHO_ADDRESS, Echo))
    await root.start_child(ChildSpec(ROOMS_ADDRESS, lambda: RoomHost(store, rooms, media)))
    await root.start_child(ChildSpec(AREAS_ADDRESS, lambda: AreaHost(store, areas)))
    await root.start_child(ChildSpec(SETUP_ADDRESS, lambda: SetupAdmin(store)))
    await root.start_child(ChildSpec(OUTBOX_ADDRESS, lambda: OutboxActor(store, senders)))
    await root.start_child(ChildSpec(ADMIN_ADDRESS, lambda: AdminActor(store)))
