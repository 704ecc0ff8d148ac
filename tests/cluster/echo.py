"""The small typed actor the cluster tests place on one node and talk to from another."""

from __future__ import annotations

from dataclasses import dataclass

from cluster.codec import MessageTypes
from runtime import Actor, Refusal, handles


@dataclass(frozen=True)
class Ping:
    n: int
    sent_at: float = 0.0


@dataclass(frozen=True)
class Pong:
    n: int
    by: str
    sent_at: float = 0.0


@dataclass(frozen=True)
class Note:
    """A tell: the actor keeps it."""

    text: str


@dataclass(frozen=True)
class Notes:
    """An ask for what was told so far."""


@dataclass(frozen=True)
class Deny:
    """Always refused with ``code``."""

    code: str


@dataclass(frozen=True)
class Hold:
    """Never answered (the asker's timeout is what ends it)."""


@dataclass(frozen=True)
class Relay:
    """Ask ``target`` a Ping and return its Pong (an actor asking across nodes in turn)."""

    target: str
    n: int


def echo_types() -> MessageTypes:
    types = MessageTypes()
    types.register(Ping, Pong, Note, Notes, Deny, Hold, Relay)
    return types


class Echo(Actor):
    """Answers pings with the name of the node it runs on."""

    def __init__(self, node: str) -> None:
        super().__init__()
        self.node = node
        self.notes: list[str] = []

    @handles(Ping)
    async def ping(self, message: Ping) -> Pong:
        return Pong(message.n, self.node, message.sent_at)

    @handles(Note)
    async def note(self, message: Note) -> None:
        self.notes.append(message.text)

    @handles(Notes)
    async def read(self, message: Notes) -> tuple[str, ...]:
        return tuple(self.notes)

    @handles(Deny)
    async def deny(self, message: Deny) -> None:
        raise Refusal(message.code, f"refused on {self.node}")

    @handles(Hold)
    async def hold(self, message: Hold) -> None:
        self.defer_reply()

    @handles(Relay)
    async def relay(self, message: Relay) -> Pong:
        reply: Pong = await self.ref(message.target).ask(Ping(message.n), timeout=2)
        return reply
