"""Start Waitroom's long-lived actors under the root supervisor, in dependency order.

The composition root (``waitroom.server``) calls :func:`start_actors` once storage is migrated; every
other actor (rooms, connections, calls) is started on demand by the actors started here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from actors.directory import DIRECTORY_ADDRESS, Directory
from actors.supervisor import ChildSpec, Supervisor

if TYPE_CHECKING:
    from storage.db import Store


async def start_actors(root: Supervisor, store: Store) -> None:
    """Start the directory (sign-in, sessions, grants) and then the clinic actors."""
    await root.start_child(ChildSpec(DIRECTORY_ADDRESS, lambda: Directory(store)))
