"""One coredis client per node, with no retries, bounded waits and one clear error when Redis is gone.

coredis' default policy retries a command after a connection error or a timeout; for a lock, a
single-use token or a stream entry a retry can apply a write twice, so the client here retries
nothing: every caller either makes its write idempotent or lets the failure surface. Any failure to
reach Redis becomes :class:`ClusterUnavailable` (an :class:`~runtime.errors.ActorError`, so an asker
that handles runtime errors handles it too), and :class:`Health` remembers that Redis is down so
that new sends fail at once instead of each waiting for its own timeout.

The client is entered once, in the node's parent task, before its sibling tasks use it (coredis on
Trio runs through AnyIO and its pool owns a task group).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Iterator
from typing import TypeVar, cast

import coredis
import coredis.exceptions
import trio
from coredis.exceptions import RedisError
from coredis.retry import NoRetryPolicy

from runtime.errors import ActorError

log = logging.getLogger(__name__)

#: Seconds one command may take before Redis counts as unavailable (a blocking read adds its block).
COMMAND_TIMEOUT = 1.0
CONNECT_TIMEOUT = 1.0

T = TypeVar("T")

Client = coredis.Redis[bytes]


class ClusterUnavailable(ActorError):
    """Redis (the cluster's shared state) cannot be reached: nothing was placed, sent or stored."""

    def __init__(self, what: str, cause: BaseException | None = None) -> None:
        reason = f": {type(cause).__name__}: {cause}" if cause is not None else ""
        super().__init__(f"cluster unavailable ({what}){reason}")
        self.what = what


#: What a command raises when Redis is unreachable, paused or restarting.
UNREACHABLE: tuple[type[BaseException], ...] = (
    OSError,  # ConnectionError, TimeoutError
    coredis.exceptions.ConnectionError,
    coredis.exceptions.BusyLoadingError,  # restarting: loading its data
    coredis.exceptions.ReadOnlyError,  # a replica that is not (yet) the primary
    trio.TooSlowError,
    trio.BrokenResourceError,
    trio.ClosedResourceError,
)


#: What a command raises when it did nothing: unreachable, or refused by Redis.
_FAILED: tuple[type[BaseException], ...] = (*UNREACHABLE, cast(type[BaseException], RedisError))


class Health:
    """Whether Redis answered the last command: flipped down by any failure, up by any success."""

    def __init__(self) -> None:
        self.up = True
        self.since = trio.current_time()
        self.last_error = ""
        self.changed = trio.Event()
        #: When Redis last answered (trio clock): a node that idles still reads its inbox about
        #: every half second, so an answer older than a second means Redis is probably away
        #: even before a command has timed out.
        self.last_ok = self.since

    def mark(self, up: bool, error: str = "") -> None:
        if up:
            self.last_ok = trio.current_time()
        if up != self.up:
            if up:
                log.info("redis reachable again after %.1f s", trio.current_time() - self.since)
            else:
                log.warning("redis unreachable: %s", error)
            self.up = up
            self.since = trio.current_time()
            self.changed.set()
            self.changed = trio.Event()
        if error:
            self.last_error = error

    def answered_within(self, seconds: float) -> bool:
        """Up, and Redis answered within the last ``seconds`` (for fail-closed admissions)."""
        return self.up and trio.current_time() - self.last_ok <= seconds

    def check(self, what: str) -> None:
        """Raise at once while Redis is known to be down (fail closed, no waiting)."""
        if not self.up:
            raise ClusterUnavailable(what, None) from None


async def call(
    health: Health, what: str, command: Awaitable[T], timeout: float = COMMAND_TIMEOUT
) -> T:
    """Run one command once; a failure to reach Redis marks it down and raises ClusterUnavailable.

    A refusal by Redis (``OOM``, ``BUSY``, ``READONLY``) counts the same: the command did nothing.
    Consumer-group errors pass through for the stream readers to repair.

    ``timeout`` bounds the whole call (coredis' own stream timeout is the first line; this one
    makes sure no wait is unbounded, whatever the client does).
    """
    try:
        with trio.fail_after(timeout + 0.5):
            result = await command
    except coredis.exceptions.StreamConsumerError:
        raise  # NOGROUP and the like: the caller makes the group again
    except _FAILED as exc:
        # Unreachable, or reachable and refusing (out of memory, a script busy): either way
        # nothing was done, and the caller fails closed.
        health.mark(False, f"{what}: {type(exc).__name__}: {exc}")
        raise ClusterUnavailable(what, exc) from exc
    health.mark(True)
    return result


@contextlib.asynccontextmanager
async def open_client(url: str) -> AsyncIterator[Client]:
    """A connected client for ``url`` (``redis://host:port/db``) with no retry policy."""
    client: Client = coredis.Redis.from_url(
        url,
        retry_policy=NoRetryPolicy(),
        stream_timeout=COMMAND_TIMEOUT,
        connect_timeout=CONNECT_TIMEOUT,
        decode_responses=False,
    )
    try:
        async with client:
            yield client
    except BaseExceptionGroup as group:
        # coredis' pool runs its connections in a task group: a connection that cannot be made
        # comes out wrapped, beside the command that failed with it. One clear error instead.
        leaves = list(_leaves(group))
        if leaves and all(_unreachable(e) for e in leaves):
            first = next((e for e in leaves if isinstance(e, ClusterUnavailable)), None)
            raise first or ClusterUnavailable("connect", leaves[0]) from group
        raise


def _unreachable(error: BaseException) -> bool:
    """An error of reaching Redis (a deadline of the caller's own, TooSlowError, is not one)."""
    return isinstance(error, ClusterUnavailable) or (
        isinstance(error, UNREACHABLE) and not isinstance(error, trio.TooSlowError)
    )


def _leaves(group: BaseExceptionGroup[BaseException]) -> Iterator[BaseException]:
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            yield from _leaves(error)
        else:
            yield error
