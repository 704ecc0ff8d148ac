"""Who is in a call, from which connection, with audio and video on or off.

Kept apart from the actor so the one list every push, limit check and media decision reads is a
plain data structure: a person is present once per connection (two tabs are two entries), and the
participant limit counts people, not tabs.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from actors.principal import Principal


class ParticipantKind(enum.StrEnum):
    """What a participant is to the call; the value is what ``room.participants`` shows."""

    STAFF = "staff"  #: a signed-in team member
    CALLER = "caller"  #: the service user the call is for
    GUEST = "guest"  #: someone invited into this one call (interpreter, family, colleague)


@dataclass
class Present:
    """One connected participant: a person present from several tabs has one entry per tab."""

    conn: str
    principal: Principal
    kind: ParticipantKind
    audio: bool = True
    video: bool = True
    #: The storage row of this person's participation, once a policy recorded it.
    participant_row: int | None = None

    @property
    def peer_id(self) -> str:
        """The media plane's id of this connection's peer (``conn/7`` -> ``conn-7``)."""
        return self.conn.replace("/", "-")

    @property
    def person(self) -> str:
        """Who this is across tabs: the token's participant id, a staff member's user id, else
        the connection (issue 15: a staff member in two tabs is one person for the limit)."""
        if self.principal.participant_id:
            return self.principal.participant_id
        if self.principal.user_id:
            return f"staff/{self.principal.user_id}"
        return self.conn

    def view(self) -> dict[str, Any]:
        return {
            "id": self.peer_id,
            "name": self.principal.display_name,
            "kind": self.kind.value,
            "audio": self.audio,
            "video": self.video,
        }


class Presence:
    """The connections in a call, in the order they entered."""

    __slots__ = ("_by_conn",)

    def __init__(self) -> None:
        self._by_conn: dict[str, Present] = {}

    def add(self, person: Present) -> None:
        """Enter (or re-enter from the same connection, which replaces the earlier entry)."""
        self._by_conn[person.conn] = person

    def remove(self, conn: str) -> Present | None:
        return self._by_conn.pop(conn, None)

    def get(self, conn: str) -> Present | None:
        return self._by_conn.get(conn)

    def by_peer(self, peer_id: str) -> Present | None:
        return next((p for p in self._by_conn.values() if p.peer_id == peer_id), None)

    def people(self) -> int:
        """How many people are in (tabs of one person count once): what the limit counts."""
        return len({p.person for p in self._by_conn.values()})

    def has_person(self, person: str) -> bool:
        """Whether this person (:attr:`Present.person`) is in already, from any tab."""
        return any(p.person == person for p in self._by_conn.values())

    def any(self, test: Callable[[Present], bool]) -> bool:
        return any(test(p) for p in self._by_conn.values())

    def views(self) -> list[dict[str, Any]]:
        return [p.view() for p in self._by_conn.values()]

    def clear(self) -> None:
        self._by_conn.clear()

    def __contains__(self, conn: object) -> bool:
        return conn in self._by_conn

    def __iter__(self) -> Iterator[Present]:
        """A snapshot: the loop body may add or remove people."""
        return iter(list(self._by_conn.values()))

    def __len__(self) -> int:
        return len(self._by_conn)
