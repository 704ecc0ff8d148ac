"""An area's public facts, asked of another node, kept for a moment for the next pages (issue 18).

Every arrival's form and its submission need the area's public facts (`AreaPublic`: its name,
whether it is open, its form). On one node that ask is a call in the same process. With several
nodes the area runs on one of them, and the other nodes' pages asked across Redis twice per
arrival (bench/README.md, session 23). A node now keeps what another node's area answered for up
to ``KEEP_FOR`` seconds, and never past the end of the minute in which it asked: an area opens and
closes only on a minute's boundary (``actors.waiting.hours``), so what the page says of its hours
is never older than the clock. What can be older, by ``KEEP_FOR`` at most, is an administrator's
edit made meanwhile (a new name, a form field, the area switched off); the arrival itself is
still the area's to accept or refuse, and a link replaced meanwhile is asked again
(`web.patient.find_area`). An area on this node is always asked: that costs nothing.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass

import trio

from actors.messages import AreaPublic
from runtime import Registry

#: Seconds an answer from another node's area serves this node's pages.
KEEP_FOR = 2.0
#: Areas kept per registry before the expired ones are dropped (an organisation has fewer).
MOST = 4096


@dataclass(frozen=True, slots=True)
class _Kept:
    facts: AreaPublic
    until: float  # trio clock


class RemoteAreas:
    """What areas hosted on other nodes answered, by address, each until it expires."""

    def __init__(self, wall_clock: Callable[[], float] = time.time) -> None:
        self._kept: dict[str, _Kept] = {}
        #: The clock whose minutes the area's hours follow (the trio clock measures the keeping).
        self._wall_clock = wall_clock

    def get(self, address: str) -> AreaPublic | None:
        kept = self._kept.get(address)
        if kept is None:
            return None
        if kept.until <= trio.current_time():
            del self._kept[address]
            return None
        return kept.facts

    def keep(self, address: str, facts: AreaPublic) -> None:
        now = trio.current_time()
        rest_of_minute = 60.0 - self._wall_clock() % 60.0
        if len(self._kept) >= MOST:
            self._kept = {a: k for a, k in self._kept.items() if k.until > now}
            if len(self._kept) >= MOST:
                self._kept.clear()
        self._kept[address] = _Kept(facts, now + min(KEEP_FOR, rest_of_minute))

    def forget(self, address: str) -> None:
        self._kept.pop(address, None)


_BY_REGISTRY: weakref.WeakKeyDictionary[Registry, RemoteAreas] = weakref.WeakKeyDictionary()


def remote_areas(registry: Registry) -> RemoteAreas:
    """The areas kept for pages served through ``registry`` (one set per node's registry)."""
    kept = _BY_REGISTRY.get(registry)
    if kept is None:
        kept = _BY_REGISTRY[registry] = RemoteAreas()
    return kept
