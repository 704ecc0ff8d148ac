"""Slowing password guessing: an address with too many failed sign-ins in a window is refused for a
while, whatever username it tries next.

The count is per address, never per username, so the refusal tells nobody whether a username
exists, and an attacker cannot lock a colleague out from elsewhere. It lives in memory (a restart
forgets it) and tracks a bounded number of addresses, dropping the stalest first.

The loopback address is never counted: behind a reverse proxy on the same host every request
comes from it, and counting it would let a stranger lock every colleague out. Such deployments
rate-limit sign-in in the proxy (docs/operations.md).
"""

from __future__ import annotations

from collections import OrderedDict, deque

import trio

#: Failed sign-ins one address may make within `WINDOW_SECONDS` before it is refused.
MAX_FAILURES = 10
#: How far back failures count: after this long without one, the address is free again.
WINDOW_SECONDS = 15 * 60.0
#: Addresses remembered at once; beyond this the least recently failing one is forgotten.
MAX_TRACKED = 10_000
#: Where a same-host reverse proxy connects from: never counted (see the module docstring). ""
#: is an in-process caller, not a client.
NEVER_COUNTED = frozenset({"", "127.0.0.1", "::1", "::ffff:127.0.0.1"})


class FailureThrottle:
    """Counts failures per address in a sliding window (Trio's clock, so tests can move it)."""

    def __init__(
        self,
        max_failures: int = MAX_FAILURES,
        window: float = WINDOW_SECONDS,
        max_tracked: int = MAX_TRACKED,
    ) -> None:
        if max_failures < 1 or window <= 0 or max_tracked < 1:
            raise ValueError("the throttle needs a positive limit, window and size")
        self.max_failures = max_failures
        self.window = window
        self.max_tracked = max_tracked
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        #: Blocked addresses whose first refusal was already reported (see `first_refusal`).
        self._reported: set[str] = set()

    def _recent(self, address: str, now: float) -> deque[float] | None:
        times = self._failures.get(address)
        if times is None:
            return None
        while times and now - times[0] >= self.window:
            times.popleft()
        if not times:
            del self._failures[address]
            return None
        return times

    def blocked(self, address: str) -> bool:
        """True while ``address`` has used up its failures in the window."""
        if address in NEVER_COUNTED:
            return False
        times = self._recent(address, trio.current_time())
        if times is not None and len(times) >= self.max_failures:
            return True
        self._reported.discard(address)
        return False

    def first_refusal(self, address: str) -> bool:
        """For a blocked address: True the first time it is asked in this block, so the audit
        log gets one row per block rather than one per rejected guess."""
        first = address not in self._reported
        self._reported.add(address)
        return first

    def failed(self, address: str) -> None:
        """Count one failed sign-in from ``address``."""
        if address in NEVER_COUNTED:
            return
        now = trio.current_time()
        times = self._recent(address, now)
        if times is None:
            times = deque(maxlen=self.max_failures)
            self._failures[address] = times
        times.append(now)
        self._failures.move_to_end(address)
        while len(self._failures) > self.max_tracked:
            forgotten, _times = self._failures.popitem(last=False)
            self._reported.discard(forgotten)
