"""A stand-in for a client connection in actor tests: a real actor that accepts what actors push
to it and, given a list, records each push in it."""

from __future__ import annotations

from actors.inbound import Push
from runtime.kernel import Actor


class Inbox(Actor):
    """Accepts pushes (rooms and areas push state to connections); records them in ``events``."""

    def __init__(self, events: list[Push] | None = None) -> None:
        super().__init__()
        self.events = events

    async def handle(self, message: object) -> object:
        if not isinstance(message, Push):
            return await super().handle(message)
        if self.events is not None:
            self.events.append(message)
        return None
