"""The group waiting area inside a group call: who waits, from which connections, since when.

A plain structure the call keeps (one per call, changed from its mailbox only). People waiting are
not in the call's presence, so nothing the core pushes to the people present (participants,
chat, media, the speaker) ever reaches them, and they never see each other: each is told only
about themselves. A person waiting from two tabs is one entry with two connections; the
moderator's list (:meth:`Lobby.views`) is in order of arrival.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from actors.principal import Principal


@dataclass
class Waiter:
    """One participant in the waiting area (member id ``p-...``)."""

    member: str
    participant_id: str
    principal: Principal
    registered: bool
    since: datetime
    #: Sent back from the call by a moderator (shown as such on the moderator's list).
    returned: bool = False
    conns: set[str] = field(default_factory=set)

    def view(self) -> dict[str, Any]:
        return {
            "id": self.member,
            "name": self.principal.display_name,
            "registered": self.registered,
            "since": self.since.timestamp(),
            "returned": self.returned,
        }


class Lobby:
    """Waiters by member id, in the order they first came (see the module docstring)."""

    __slots__ = ("_by_member",)

    def __init__(self) -> None:
        self._by_member: dict[str, Waiter] = {}

    def add(self, waiter: Waiter, conn: str) -> Waiter:
        """Wait from ``conn``; a person already waiting keeps their place (and ``since``)."""
        known = self._by_member.setdefault(waiter.member, waiter)
        known.conns.add(conn)
        known.principal = waiter.principal
        return known

    def drop_conn(self, conn: str) -> Waiter | None:
        """``conn`` is gone; the waiter it belonged to, removed too if it was their last tab."""
        for waiter in self._by_member.values():
            if conn in waiter.conns:
                waiter.conns.discard(conn)
                if not waiter.conns:
                    del self._by_member[waiter.member]
                return waiter
        return None

    def pop(self, member: str) -> Waiter | None:
        return self._by_member.pop(member, None)

    def get(self, member: str) -> Waiter | None:
        return self._by_member.get(member)

    def by_conn(self, conn: str) -> Waiter | None:
        return next((w for w in self._by_member.values() if conn in w.conns), None)

    def members(self) -> list[str]:
        return list(self._by_member)

    def views(self) -> list[dict[str, Any]]:
        return [w.view() for w in self._by_member.values()]

    def conns(self) -> list[str]:
        return [c for w in self._by_member.values() for c in w.conns]

    def __contains__(self, member: object) -> bool:
        return member in self._by_member

    def __iter__(self) -> Iterator[Waiter]:
        return iter(list(self._by_member.values()))

    def __len__(self) -> int:
        return len(self._by_member)
