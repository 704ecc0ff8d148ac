"""The sign-in throttle: per address, a sliding window, bounded memory."""

from __future__ import annotations

import pytest
import trio

from services.throttle import FailureThrottle


async def test_an_address_is_blocked_after_its_failures_and_freed_by_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    throttle = FailureThrottle(max_failures=3, window=60.0)
    for _ in range(2):
        throttle.failed("198.51.100.1")
    assert not throttle.blocked("198.51.100.1")
    await trio.sleep(30)
    throttle.failed("198.51.100.1")
    assert throttle.blocked("198.51.100.1")
    assert not throttle.blocked("198.51.100.2")  # per address, nobody else pays
    assert throttle.first_refusal("198.51.100.1")
    assert not throttle.first_refusal("198.51.100.1")
    await trio.sleep(31)  # the first two failures leave the window; one is left
    assert not throttle.blocked("198.51.100.1")
    throttle.failed("198.51.100.1")
    throttle.failed("198.51.100.1")
    assert throttle.blocked("198.51.100.1")
    assert throttle.first_refusal("198.51.100.1")  # a new block is reported again


@pytest.mark.parametrize("address", ["", "127.0.0.1", "::1"])
def test_in_process_callers_and_a_local_proxy_are_never_counted(address: str) -> None:
    throttle = FailureThrottle(max_failures=1)
    throttle.failed(address)
    throttle.failed(address)
    assert not throttle.blocked(address)


async def test_memory_is_bounded_by_dropping_the_stalest_address() -> None:
    throttle = FailureThrottle(max_failures=1, max_tracked=2)
    for address in ("a", "b", "c"):
        throttle.failed(address)
    assert not throttle.blocked("a")
    assert throttle.blocked("b") and throttle.blocked("c")


@pytest.mark.parametrize("args", [(0, 1.0, 1), (1, 0.0, 1), (1, 1.0, 0)])
def test_nonsense_limits_are_refused(args: tuple[int, float, int]) -> None:
    with pytest.raises(ValueError, match="positive"):
        FailureThrottle(*args)
