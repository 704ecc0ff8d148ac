"""A stand-in for a client connection in actor tests: a real actor that accepts what actors push
to it and, given a list, records each push in it.

Given a :class:`Pushes` (a list that can be waited on), a test waits for the push it expects
instead of polling with sleeps, so it runs on a virtual clock too.
"""

from __future__ import annotations

from collections.abc import Callable

import trio

from actors.inbound import Push
from runtime.kernel import Actor, handles


class Pushes(list[Push]):
    """The pushes a connection got, in order; :meth:`wait_for` waits for one that matches."""

    def __init__(self) -> None:
        super().__init__()
        self._arrived = trio.Event()

    def append(self, push: Push) -> None:
        super().append(push)
        self._arrived.set()
        self._arrived = trio.Event()

    async def wait_for(self, matches: Callable[[Push], bool], start: int = 0) -> Push:
        """The first push from ``self[start:]`` that matches, waiting for it if need be.

        Unbounded itself: callers bound it (``trio.fail_after``, or the test's timeout on a
        virtual clock that only the test moves).
        """
        while True:
            found = next((push for push in self[start:] if matches(push)), None)
            if found is not None:
                return found
            await self._arrived.wait()


class Inbox(Actor):
    """Accepts pushes (rooms and areas push state to connections); records them in ``events``."""

    def __init__(self, events: list[Push] | None = None) -> None:
        super().__init__()
        self.events = events

    @handles(Push)
    async def _push(self, message: Push) -> None:
        if self.events is not None:
            self.events.append(message)
